//! Argument helpers shared by the handlers: bytes of the arguments, one
//! argument, integers, checked expiry times.

use redis_module::RedisString;
use smallvec::SmallVec;

use super::dispatch::STACK_ARGS;
use crate::core::validate::parse_i64;
use crate::core::{OAuthError, OResult};

/// The raw bytes of every argument.
pub fn bytes(args: &[RedisString]) -> SmallVec<[&[u8]; STACK_ARGS]> {
    args.iter().map(RedisString::as_slice).collect()
}

/// Argument `i`, or an error naming the command's syntax.
pub fn arg<'a>(a: &[&'a [u8]], i: usize) -> OResult<&'a [u8]> {
    a.get(i)
        .copied()
        .ok_or_else(|| OAuthError::invalid_request("wrong number of arguments"))
}

pub use crate::core::validate::expiry_at;

/// Argument `i` as bytes (the error of [`arg`] when it is missing), without
/// collecting the others.
pub fn raw_arg(args: &[RedisString], i: usize) -> OResult<&[u8]> {
    args.get(i)
        .map(RedisString::as_slice)
        .ok_or_else(|| OAuthError::invalid_request("wrong number of arguments"))
}

/// An integer argument; `what` names it in the error.
pub fn int_arg(raw: &[u8], what: &str) -> OResult<i64> {
    parse_i64(raw).ok_or_else(|| OAuthError::invalid_request(format!("{what} is not an integer")))
}
