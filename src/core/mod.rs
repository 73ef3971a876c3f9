//! The pure domain of redis-oauth: no Redis, no I/O, no clock.
//! Every rule a command enforces lives here and is unit-tested without a server.
//! (CI checks that this directory never imports `redis_module`.)

pub mod dump;
pub mod error;
pub mod gcra;
pub mod grammar;
pub mod inventory;
pub mod pkce;
pub mod rate;
pub mod record;
pub mod sliding;
pub mod token;
pub mod validate;

pub use error::{ErrorCode, OAuthError, OResult};
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod proptests;
