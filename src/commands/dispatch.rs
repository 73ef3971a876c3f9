//! Every command runs through [`dispatch`]: its arguments borrowed from
//! Redis, its body inside `catch_unwind` (a panic answers an error instead of
//! taking the server down), its reply written in one place.

use std::mem::ManuallyDrop;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use redis_module::{raw, Context, RedisString};

use super::keyspec::report_key_positions;
use super::Handler;
use crate::core::OAuthError;
use crate::info::{self, Counter};
use crate::reply::{self, Reply};

/// Runs a command body with panics caught, and writes its reply.
pub fn dispatch(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    handler: Handler,
) -> c_int {
    let context = Context::new(ctx);
    let keys_request = context.is_keys_position_request();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let held = BorrowedArgs::new(ctx, argv, argc);
        let args = held.as_strings();
        if keys_request {
            report_key_positions(&context, args);
            return Ok(Reply::Ok);
        }
        handler(&context, args)
    }));
    if keys_request {
        return raw::Status::Ok as c_int;
    }
    let result = result.unwrap_or_else(|_| {
        info::bump(Counter::Panics);
        Err(OAuthError::internal(
            "internal error in redis-oauth; details are in the server log",
        ))
    });
    reply::emit(&context, result);
    raw::Status::Ok as c_int
}

/// Arguments held on the stack; a longer command's go to the heap.
pub const STACK_ARGS: usize = 32;

/// The command's arguments as `RedisString`s that borrow Redis's argument
/// vector instead of taking a reference each (`decode_args` retains every
/// argument and frees it again on every call, and allocates the vector).
/// `ManuallyDrop` keeps them from being freed: Redis owns them and they
/// outlive the handler. A handler that keeps one beyond its call takes its
/// own reference with `keys::share`.
struct BorrowedArgs {
    /// The arguments of a command of up to `STACK_ARGS` of them.
    stack: [ManuallyDrop<RedisString>; STACK_ARGS],
    /// A longer command's arguments (empty, so unallocated, otherwise).
    heap: Vec<ManuallyDrop<RedisString>>,
    len: usize,
}

impl BorrowedArgs {
    fn new(
        ctx: *mut raw::RedisModuleCtx,
        argv: *mut *mut raw::RedisModuleString,
        argc: c_int,
    ) -> BorrowedArgs {
        let n = usize::try_from(argc).unwrap_or(0);
        let raw_args: &[*mut raw::RedisModuleString] = if argv.is_null() || n == 0 {
            &[]
        } else {
            // SAFETY: Redis passes argc valid argument pointers in argv,
            // alive for the whole command call.
            unsafe { std::slice::from_raw_parts(argv, n) }
        };
        let borrow = |s: &*mut raw::RedisModuleString| {
            ManuallyDrop::new(RedisString::from_redis_module_string(ctx, *s))
        };
        let mut held = BorrowedArgs {
            stack: [const {
                ManuallyDrop::new(RedisString::from_redis_module_string(
                    ptr::null_mut(),
                    ptr::null_mut(),
                ))
            }; STACK_ARGS],
            heap: Vec::new(),
            len: raw_args.len(),
        };
        if raw_args.len() > STACK_ARGS {
            held.heap = raw_args.iter().map(borrow).collect();
        } else {
            for (slot, s) in held.stack.iter_mut().zip(raw_args) {
                *slot = borrow(s);
            }
        }
        held
    }

    /// The arguments seen as plain `RedisString`s.
    fn as_strings(&self) -> &[RedisString] {
        let held: &[ManuallyDrop<RedisString>] = if self.len > STACK_ARGS {
            &self.heap
        } else {
            self.stack.get(..self.len).unwrap_or_default()
        };
        // SAFETY: ManuallyDrop<T> is #[repr(transparent)] over T, so a slice
        // of one has the layout of a slice of the other; the borrow keeps
        // `self` (which never drops its strings) alive as long as the view.
        unsafe { std::slice::from_raw_parts(held.as_ptr().cast::<RedisString>(), held.len()) }
    }
}
