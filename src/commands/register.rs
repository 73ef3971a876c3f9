//! Registration at load: each `SPECS` entry becomes a command
//! (`RedisModule_CreateCommand`) with its command info
//! (`RedisModule_SetCommandInfo`: arity, key specs, docs).

use std::ffi::CString;
use std::os::raw::c_int;
use std::ptr;

use redis_module::{raw, Context};

use super::table::{Begin, CmdSpec, Find, KeyDef, SPECS};

/// Whether a command needs the keys-position API (its keys are not one range).
fn needs_getkeys_api(keys: &[KeyDef]) -> bool {
    keys.iter().skip(1).any(|_| true)
        || keys
            .iter()
            .any(|k| matches!(k.begin, Begin::Keyword(..)) || matches!(k.find, Find::Keynum { .. }))
}

/// Creates every command and sets its command info (arity, key specs, docs).
pub fn register(ctx: &Context) -> Result<(), String> {
    for spec in SPECS {
        let name = CString::new(spec.name).map_err(|e| e.to_string())?;
        let flags = if needs_getkeys_api(spec.keys) {
            format!("{} getkeys-api", spec.flags)
        } else {
            spec.flags.to_string()
        };
        let flags = CString::new(flags).map_err(|e| e.to_string())?;
        let (first, last, step) = legacy_range(spec.keys);
        // SAFETY: called from OnLoad with the module context; strings outlive the calls.
        unsafe {
            let create =
                raw::RedisModule_CreateCommand.ok_or("RedisModule_CreateCommand missing")?;
            if create(
                ctx.get_raw(),
                name.as_ptr(),
                Some(spec.entry),
                flags.as_ptr(),
                first,
                last,
                step,
            ) == raw::Status::Err as c_int
            {
                return Err(format!("could not create command {}", spec.name));
            }
            let get = raw::RedisModule_GetCommand.ok_or("RedisModule_GetCommand missing")?;
            let cmd = get(ctx.get_raw(), name.as_ptr());
            if cmd.is_null() {
                return Err(format!("could not find command {}", spec.name));
            }
            set_info(cmd, spec)?;
        }
    }
    Ok(())
}

fn legacy_range(keys: &[KeyDef]) -> (c_int, c_int, c_int) {
    if needs_getkeys_api(keys) {
        return (0, 0, 0);
    }
    match keys.first() {
        Some(KeyDef {
            begin: Begin::Index(p),
            find: Find::Range(0),
            ..
        }) => (*p, *p, 1),
        Some(KeyDef {
            begin: Begin::Index(p),
            find: Find::Range(last),
            ..
        }) if *last < 0 => (*p, *last, 1),
        _ => (0, 0, 0),
    }
}

/// # Safety
/// `cmd` must be a command of this module, during OnLoad.
unsafe fn set_info(cmd: *mut raw::RedisModuleCommand, spec: &CmdSpec) -> Result<(), String> {
    let set = raw::RedisModule_SetCommandInfo.ok_or("RedisModule_SetCommandInfo missing")?;
    // Strings referenced by the raw specs; kept alive until SetCommandInfo copied them.
    let mut keep: Vec<CString> = Vec::new();
    let mut cstr = |s: &str| -> Result<*const std::os::raw::c_char, String> {
        let c = CString::new(s).map_err(|e| e.to_string())?;
        let p = c.as_ptr();
        keep.push(c);
        Ok(p)
    };
    let mut specs: Vec<raw::RedisModuleCommandKeySpec> = Vec::with_capacity(spec.keys.len() + 1);
    for k in spec.keys {
        // SAFETY: an all-zero key spec is the documented terminator and a valid start.
        let mut ks: raw::RedisModuleCommandKeySpec = std::mem::zeroed();
        ks.notes = cstr(k.notes)?;
        ks.flags = u64::from(k.flags);
        match k.begin {
            Begin::Index(pos) => {
                ks.begin_search_type =
                    raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
                ks.bs.index.pos = pos;
            }
            Begin::Keyword(word, startfrom) => {
                ks.begin_search_type =
                    raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_KEYWORD;
                ks.bs.keyword.keyword = cstr(word)?;
                ks.bs.keyword.startfrom = startfrom;
            }
        }
        match k.find {
            Find::Range(last) => {
                ks.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
                ks.fk.range.lastkey = last;
                ks.fk.range.keystep = 1;
                ks.fk.range.limit = 0;
            }
            Find::Keynum {
                keynumidx,
                first,
                step,
            } => {
                ks.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_KEYNUM;
                ks.fk.keynum.keynumidx = keynumidx;
                ks.fk.keynum.firstkey = first;
                ks.fk.keynum.keystep = step;
            }
        }
        specs.push(ks);
    }
    specs.push(std::mem::zeroed());
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    let info = raw::RedisModuleCommandInfo {
        version: &version,
        summary: cstr(spec.summary)?,
        complexity: cstr(spec.complexity)?,
        since: cstr("0.1.0")?,
        history: ptr::null_mut(),
        tips: ptr::null(),
        arity: spec.arity,
        key_specs: if spec.keys.is_empty() {
            ptr::null_mut()
        } else {
            specs.as_mut_ptr()
        },
        args: ptr::null_mut(),
    };
    if set(cmd, &info) == raw::Status::Err as c_int {
        return Err(format!("could not set command info for {}", spec.name));
    }
    drop(keep);
    Ok(())
}
