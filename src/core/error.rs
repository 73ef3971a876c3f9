//! The module's error type: a machine-readable code word and a human sentence.
//!
//! Only `crate::reply` turns an [`OAuthError`] into a Redis error reply, as
//! `"<CODE> <sentence>"`. Messages never contain a code, verifier, token or secret.

use std::borrow::Cow;
use std::fmt;

/// The first word of every error reply the module sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A grant check failed: unknown or used code, client, redirect URI or PKCE.
    InvalidGrant,
    /// A malformed argument: bad number, bad option, oversized value, reserved field.
    InvalidRequest,
    /// A refresh asked for a scope wider than the grant's (RFC 6749 §6).
    InvalidScope,
    /// A create found the key already present.
    Exists,
    /// The key holds another Redis type, or a record of another kind.
    WrongType,
    /// The caller's ACL does not allow a key the command found (the admin
    /// commands, whose keys are not declared).
    NoPerm,
    /// A bug inside the module (a caught panic); the data was not changed.
    Internal,
}

impl ErrorCode {
    pub fn word(self) -> &'static str {
        match self {
            ErrorCode::InvalidGrant => "INVALID_GRANT",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::InvalidScope => "INVALID_SCOPE",
            ErrorCode::Exists => "EXISTS",
            ErrorCode::WrongType => "WRONGTYPE",
            ErrorCode::NoPerm => "NOPERM",
            ErrorCode::Internal => "ERR",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            code,
            message: message.into(),
        }
    }
    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
    pub fn invalid_grant(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, message)
    }
    pub fn exists() -> Self {
        Self::new(ErrorCode::Exists, "key already exists")
    }
    pub fn wrong_type(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::WrongType, message)
    }
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.word(), self.message)
    }
}

impl std::error::Error for OAuthError {}

pub type OResult<T> = Result<T, OAuthError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_starts_with_code_word() {
        let e = OAuthError::invalid_grant("authorization code already used");
        assert_eq!(
            e.to_string(),
            "INVALID_GRANT authorization code already used"
        );
        assert_eq!(
            OAuthError::exists().to_string(),
            "EXISTS key already exists"
        );
    }
}
