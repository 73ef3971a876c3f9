//! `OAUTH.HELP`: one line per command, built from the command table.

use redis_module::{Context, RedisString};

use super::SPECS;
use crate::core::OResult;
use crate::reply::Reply;

pub fn help(_ctx: &Context, _args: &[RedisString]) -> OResult<Reply> {
    let mut lines = vec!["OAUTH.<command> arguments... Commands are:".to_string()];
    for s in SPECS {
        lines.push(s.syntax.to_string());
        lines.push(format!("    {}", s.summary));
    }
    Ok(Reply::Lines(lines))
}
