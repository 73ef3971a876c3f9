//! Module settings: `loadmodule ... name value` arguments and
//! `CONFIG SET/GET oauth.<name>`, with ranges enforced by Redis.
//! Handlers take one [`Limits`] snapshot per call.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use redis_module::configuration::{
    register_bool_configuration, register_i64_configuration, ConfigurationFlags,
};
use redis_module::{Context, RedisString};

use crate::core::validate::Limits;

pub struct IntSetting {
    pub name: &'static str,
    pub value: &'static AtomicI64,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    pub doc: &'static str,
}

pub struct BoolSetting {
    pub name: &'static str,
    pub value: &'static AtomicBool,
    pub default: bool,
    pub doc: &'static str,
}

static CODE_MAX_TTL: AtomicI64 = AtomicI64::new(Limits::DEFAULT.code_max_ttl);
static TOKEN_MAX_TTL: AtomicI64 = AtomicI64::new(Limits::DEFAULT.token_max_ttl);
static STATE_MAX_TTL: AtomicI64 = AtomicI64::new(Limits::DEFAULT.state_max_ttl);
static CODE_MAX_ATTEMPTS: AtomicI64 = AtomicI64::new(Limits::DEFAULT.code_max_attempts);
static RECORD_MAX_FIELDS: AtomicI64 = AtomicI64::new(Limits::DEFAULT.record_max_fields);
static RECORD_MAX_BYTES: AtomicI64 = AtomicI64::new(Limits::DEFAULT.record_max_bytes);
static REFRESH_MAX_TTL: AtomicI64 = AtomicI64::new(Limits::DEFAULT.refresh_max_ttl);
static REFRESH_GRACE_MAX: AtomicI64 = AtomicI64::new(Limits::DEFAULT.refresh_grace_max);
static REFRESH_GRACE_USES: AtomicI64 = AtomicI64::new(Limits::DEFAULT.refresh_grace_uses);
static CLIENT_MAX_TTL: AtomicI64 = AtomicI64::new(Limits::DEFAULT.client_max_ttl);
static REQUIRE_PKCE: AtomicBool = AtomicBool::new(Limits::DEFAULT.require_pkce);
static ALLOW_PLAIN_PKCE: AtomicBool = AtomicBool::new(Limits::DEFAULT.allow_plain_pkce);

const YEAR: i64 = 366 * 24 * 3600;

pub static INT_SETTINGS: &[IntSetting] = &[
    IntSetting {
        name: "code-max-ttl",
        value: &CODE_MAX_TTL,
        default: Limits::DEFAULT.code_max_ttl,
        min: 1,
        max: 86_400,
        doc: "longest authorization-code ttl in seconds",
    },
    IntSetting {
        name: "token-max-ttl",
        value: &TOKEN_MAX_TTL,
        default: Limits::DEFAULT.token_max_ttl,
        min: 1,
        max: 10 * YEAR,
        doc: "longest token ttl in seconds",
    },
    IntSetting {
        name: "state-max-ttl",
        value: &STATE_MAX_TTL,
        default: Limits::DEFAULT.state_max_ttl,
        min: 1,
        max: 86_400,
        doc: "longest state/nonce ttl in seconds",
    },
    IntSetting {
        name: "code-max-attempts",
        value: &CODE_MAX_ATTEMPTS,
        default: Limits::DEFAULT.code_max_attempts,
        min: 1,
        max: 1000,
        doc: "failed exchanges that burn a code",
    },
    IntSetting {
        name: "record-max-fields",
        value: &RECORD_MAX_FIELDS,
        default: Limits::DEFAULT.record_max_fields,
        min: 1,
        max: 4096,
        doc: "most caller fields in one record",
    },
    IntSetting {
        name: "record-max-bytes",
        value: &RECORD_MAX_BYTES,
        default: Limits::DEFAULT.record_max_bytes,
        min: 64,
        max: 16 * 1024 * 1024,
        doc: "most bytes of caller field names and values in one record",
    },
    IntSetting {
        name: "refresh-max-ttl",
        value: &REFRESH_MAX_TTL,
        default: Limits::DEFAULT.refresh_max_ttl,
        min: 1,
        max: 10 * YEAR,
        doc: "longest refresh-token ttl in seconds",
    },
    IntSetting {
        name: "refresh-grace-max",
        value: &REFRESH_GRACE_MAX,
        default: Limits::DEFAULT.refresh_grace_max,
        min: 0,
        max: 3600,
        doc: "longest GRACE window of OAUTH.ROTATE in seconds",
    },
    IntSetting {
        name: "refresh-grace-uses",
        value: &REFRESH_GRACE_USES,
        default: Limits::DEFAULT.refresh_grace_uses,
        min: 1,
        max: 100,
        doc: "replays of a rotated refresh token allowed within its grace window",
    },
    IntSetting {
        name: "client-max-ttl",
        value: &CLIENT_MAX_TTL,
        default: Limits::DEFAULT.client_max_ttl,
        min: 1,
        max: 100 * YEAR,
        doc: "longest client-registration ttl in seconds (also the ttl when none is given)",
    },
    IntSetting {
        name: "census-batch",
        value: &crate::census::BATCH,
        default: crate::core::inventory::DEFAULT_CENSUS_BATCH,
        min: 0,
        max: 100_000,
        doc: "keys the census looks at per server tick for INFO oauth_census (0 stops it)",
    },
];

pub static BOOL_SETTINGS: &[BoolSetting] = &[
    BoolSetting {
        name: "require-pkce",
        value: &REQUIRE_PKCE,
        default: Limits::DEFAULT.require_pkce,
        doc: "codes must carry code_challenge",
    },
    BoolSetting {
        name: "allow-plain-pkce",
        value: &ALLOW_PLAIN_PKCE,
        default: Limits::DEFAULT.allow_plain_pkce,
        doc: "accept code_challenge_method plain",
    },
];

impl Limits {
    /// A snapshot of the settings for one command.
    pub fn load() -> Limits {
        Limits {
            code_max_ttl: CODE_MAX_TTL.load(Ordering::Relaxed),
            token_max_ttl: TOKEN_MAX_TTL.load(Ordering::Relaxed),
            state_max_ttl: STATE_MAX_TTL.load(Ordering::Relaxed),
            code_max_attempts: CODE_MAX_ATTEMPTS.load(Ordering::Relaxed),
            require_pkce: REQUIRE_PKCE.load(Ordering::Relaxed),
            allow_plain_pkce: ALLOW_PLAIN_PKCE.load(Ordering::Relaxed),
            record_max_fields: RECORD_MAX_FIELDS.load(Ordering::Relaxed),
            record_max_bytes: RECORD_MAX_BYTES.load(Ordering::Relaxed),
            refresh_max_ttl: REFRESH_MAX_TTL.load(Ordering::Relaxed),
            refresh_grace_max: REFRESH_GRACE_MAX.load(Ordering::Relaxed),
            refresh_grace_uses: REFRESH_GRACE_USES.load(Ordering::Relaxed),
            client_max_ttl: CLIENT_MAX_TTL.load(Ordering::Relaxed),
        }
    }
}

/// Reads `name value` pairs given to `loadmodule`, refusing unknown names and
/// values out of range, so a typo fails the load instead of being ignored.
pub fn parse_module_args(args: &[RedisString]) -> Result<Vec<(&'static str, String)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let name = String::from_utf8_lossy(name.as_slice()).to_ascii_lowercase();
        let value = it
            .next()
            .map(|v| String::from_utf8_lossy(v.as_slice()).into_owned())
            .ok_or_else(|| format!("module argument '{name}' has no value"))?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("module argument '{name}' is given twice"));
        }
        if let Some(s) = INT_SETTINGS.iter().find(|s| s.name == name) {
            match value.parse::<i64>() {
                Ok(v) if (s.min..=s.max).contains(&v) => out.push((s.name, value)),
                _ => {
                    return Err(format!(
                        "module argument '{name}' must be an integer from {} to {}",
                        s.min, s.max
                    ))
                }
            }
        } else if let Some(s) = BOOL_SETTINGS.iter().find(|s| s.name == name) {
            match value.to_ascii_lowercase().as_str() {
                v @ ("yes" | "no") => out.push((s.name, v.to_string())),
                _ => return Err(format!("module argument '{name}' must be yes or no")),
            }
        } else {
            return Err(format!("unknown module argument '{name}'"));
        }
    }
    Ok(out)
}

/// Registers every setting with its default (or the loadmodule value).
pub fn register(ctx: &Context, given: &[(&'static str, String)]) {
    let lookup = |name: &str| {
        given
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    for s in INT_SETTINGS {
        let default = lookup(s.name)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(s.default);
        s.value.store(default, Ordering::Relaxed);
        register_i64_configuration(
            ctx,
            s.name,
            s.value,
            default,
            s.min,
            s.max,
            ConfigurationFlags::DEFAULT,
            None,
        );
    }
    for s in BOOL_SETTINGS {
        let default = lookup(s.name).map_or(s.default, |v| v == "yes");
        s.value.store(default, Ordering::Relaxed);
        register_bool_configuration(
            ctx,
            s.name,
            s.value,
            default,
            ConfigurationFlags::DEFAULT,
            None,
        );
    }
}
