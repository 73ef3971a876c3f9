//! PKCE (RFC 7636): syntax of verifiers and challenges, the S256 transform,
//! constant-time comparison and the downgrade rules of RFC 9700 §2.1.1.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How the code challenge was derived from the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    S256,
    Plain,
}

impl Method {
    /// RFC 7636 §4.3: an absent method means `plain`. Names are case-sensitive.
    pub fn parse(raw: Option<&[u8]>) -> Option<Method> {
        match raw {
            None | Some(b"plain") => Some(Method::Plain),
            Some(b"S256") => Some(Method::S256),
            Some(_) => None,
        }
    }
}

/// Why a PKCE check failed. The sentence never quotes the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceFailure {
    /// The code was issued with a challenge and no verifier was given.
    VerifierMissing,
    /// A verifier was given for a code issued without a challenge (downgrade).
    VerifierUnexpected,
    /// The verifier is not 43-128 unreserved characters.
    VerifierMalformed,
    /// The verifier does not match the challenge.
    Mismatch,
}

impl PkceFailure {
    pub fn sentence(self) -> &'static str {
        match self {
            PkceFailure::VerifierMissing => "code_verifier is required for this authorization code",
            PkceFailure::VerifierUnexpected => {
                "code_verifier given for an authorization code issued without code_challenge"
            }
            PkceFailure::VerifierMalformed => {
                "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~"
            }
            PkceFailure::Mismatch => "code_verifier does not match code_challenge",
        }
    }
}

/// RFC 7636 §4.1 / §4.2: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`.
pub fn is_valid_syntax(value: &[u8]) -> bool {
    (43..=128).contains(&value.len())
        && value
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
}

/// Length of an S256 challenge: 32 bytes in unpadded base64url.
const S256_LEN: usize = 43;

/// BASE64URL(SHA-256(ASCII(verifier))) without padding, on the stack
/// (verification runs on every exchange).
pub fn s256_challenge(verifier: &[u8]) -> [u8; S256_LEN] {
    let mut out = [0u8; S256_LEN];
    // 32 bytes always encode to exactly 43 characters; were it otherwise,
    // the zeros left in `out` would match no challenge.
    let _ = URL_SAFE_NO_PAD.encode_slice(Sha256::digest(verifier), &mut out);
    out
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The stored PKCE binding of an authorization code, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub challenge: &'a [u8],
    pub method: Method,
}

/// Verify a token request's `code_verifier` (empty = absent) against the code's binding.
pub fn verify(binding: Option<Binding<'_>>, verifier: &[u8]) -> Result<(), PkceFailure> {
    match binding {
        None if verifier.is_empty() => Ok(()),
        None => Err(PkceFailure::VerifierUnexpected),
        Some(_) if verifier.is_empty() => Err(PkceFailure::VerifierMissing),
        Some(_) if !is_valid_syntax(verifier) => Err(PkceFailure::VerifierMalformed),
        Some(b) => {
            let ok = match b.method {
                Method::S256 => ct_eq(&s256_challenge(verifier), b.challenge),
                Method::Plain => ct_eq(verifier, b.challenge),
            };
            if ok {
                Ok(())
            } else {
                Err(PkceFailure::Mismatch)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &[u8] = b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &[u8] = b"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(&s256_challenge(VERIFIER)[..], CHALLENGE);
        let b = Binding {
            challenge: CHALLENGE,
            method: Method::S256,
        };
        assert_eq!(verify(Some(b), VERIFIER), Ok(()));
    }

    #[test]
    fn mismatch_and_syntax() {
        let b = Binding {
            challenge: CHALLENGE,
            method: Method::S256,
        };
        let mut other = VERIFIER.to_vec();
        other[0] = b'e';
        assert_eq!(verify(Some(b), &other), Err(PkceFailure::Mismatch));
        assert_eq!(
            verify(Some(b), b"short"),
            Err(PkceFailure::VerifierMalformed)
        );
        let mut bad = VERIFIER.to_vec();
        bad[5] = b'+';
        assert_eq!(verify(Some(b), &bad), Err(PkceFailure::VerifierMalformed));
        assert_eq!(
            verify(Some(b), &[b'a'; 129]),
            Err(PkceFailure::VerifierMalformed)
        );
        assert_eq!(verify(Some(b), &[b'a'; 128]), Err(PkceFailure::Mismatch));
    }

    #[test]
    fn plain_compares_verbatim() {
        let b = Binding {
            challenge: VERIFIER,
            method: Method::Plain,
        };
        assert_eq!(verify(Some(b), VERIFIER), Ok(()));
        let b = Binding {
            challenge: CHALLENGE,
            method: Method::Plain,
        };
        assert_eq!(verify(Some(b), VERIFIER), Err(PkceFailure::Mismatch));
    }

    #[test]
    fn downgrade_rules() {
        assert_eq!(verify(None, b""), Ok(()));
        assert_eq!(verify(None, VERIFIER), Err(PkceFailure::VerifierUnexpected));
        let b = Binding {
            challenge: CHALLENGE,
            method: Method::S256,
        };
        assert_eq!(verify(Some(b), b""), Err(PkceFailure::VerifierMissing));
    }

    #[test]
    fn method_names() {
        assert_eq!(Method::parse(None), Some(Method::Plain));
        assert_eq!(Method::parse(Some(b"plain")), Some(Method::Plain));
        assert_eq!(Method::parse(Some(b"S256")), Some(Method::S256));
        assert_eq!(Method::parse(Some(b"s256")), None);
        assert_eq!(Method::parse(Some(b"")), None);
    }

    #[test]
    fn syntax_bounds() {
        assert!(is_valid_syntax(&[b'~'; 43]));
        assert!(!is_valid_syntax(&[b'~'; 42]));
        assert!(!is_valid_syntax(b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"));
    }
}
