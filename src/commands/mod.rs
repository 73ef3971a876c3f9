//! The command layer: one file per command family (the whole story of its
//! commands), and the machinery they share:
//! [`table`] (the command table), [`register`] (feeding it to Redis at
//! load), [`dispatch`] (every call: borrowed arguments, panics caught, one
//! reply), [`keyspec`] (where a call's keys are), [`args`] and [`records`]
//! (helpers of the handlers).

use redis_module::{Context, RedisString};

use crate::core::OResult;
use crate::reply::Reply;

pub mod args;
pub mod dispatch;
pub mod keyspec;
pub mod records;
pub mod register;
pub mod table;

pub mod admin;
pub mod client;
pub mod code;
pub mod grant;
pub mod help;
pub mod ratelimit;
pub mod refresh;
pub mod state;
pub mod throttle;
pub mod token;

pub use args::{arg, bytes, expiry_at, int_arg, raw_arg};
pub use records::{create_record, record_strings};
pub use register::register;
pub use table::{CmdSpec, SPECS};

/// A command body: parse, load, decide, commit, and return the reply.
pub type Handler = fn(&Context, &[RedisString]) -> OResult<Reply>;
