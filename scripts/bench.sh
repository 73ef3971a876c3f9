#!/usr/bin/env bash
# The project benchmark (issues 4 and 5; results and findings in docs/benchmarks.md).
#
#   scripts/bench.sh                 default run: every scenario, 1k/100k/1M live records (< 3 min)
#   scripts/bench.sh --quick         smoke run: shorter rows, 1k/10k/100k live records (< 30 s)
#   scripts/bench.sh --instructions  instructions per operation under callgrind (about 2 min;
#                                    with --quick, fewer operations per row)
#
# Builds the module in release (target/release/libredis_oauth.so), then runs
# `cargo bench --bench throughput`, which starts its own redis-server on a unix
# socket and prints the results as Markdown tables on stdout (progress on stderr).
# Tuning through the environment: BENCH_CONNS, BENCH_PIPELINE, BENCH_SECONDS,
# BENCH_REPS, BENCH_INSTR_OPS, BENCH_ONLY (see benches/throughput/main.rs).
# BENCH_ONLY=limits runs the rate limiters against INCR, their Lua scripts and
# a minimal C module command (benches/floor/floor.c), AOF off and everysec, one
# hot key and 100k random keys, with allocations per call (issue 17).
set -euo pipefail

cd "$(dirname "$0")/.."

args=()
for arg in "$@"; do
    case "$arg" in
        --quick | --instructions) args+=("$arg") ;;
        -h | --help)
            sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (expected --quick and/or --instructions)" >&2
            exit 2
            ;;
    esac
done

# Installs what is missing, when we are root: redis-server, redis-tools
# (redis-benchmark, the cross-check) and valgrind (--instructions).
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
if [[ " ${args[*]-} " == *" --instructions "* ]]; then
    command -v valgrind >/dev/null || need+=(valgrind)
fi
if [ "${#need[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
    apt-get update && apt-get install -y "${need[@]}"
fi
if ! command -v redis-server >/dev/null; then
    echo "redis-server not found: install redis-server and redis-tools (apt-get install -y redis-server redis-tools)" >&2
    exit 1
fi
command -v redis-benchmark >/dev/null ||
    echo "note: redis-benchmark not found; the load-generator cross-check will be skipped" >&2

cargo build --release --lib
cargo bench --bench throughput --no-run

module="${CARGO_TARGET_DIR:-target}/release/libredis_oauth.so"

# The floor of a fixed-window limiter (issue 17): a minimal C module command,
# bench-only, built against the redismodule.h that the redis-module crate ships.
floor="$(dirname "$module")/floor.so"
header="$(cargo metadata --format-version 1 2>/dev/null | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "redis-module":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "src", "include"))
' 2>/dev/null || true)"
if [ -n "$header" ] && command -v cc >/dev/null &&
    cc -O2 -shared -fPIC -I"$header" benches/floor/floor.c -o "$floor"; then
    export BENCH_FLOOR_MODULE="$(cd "$(dirname "$floor")" && pwd)/floor.so"
else
    echo "note: could not build benches/floor/floor.c; the floor row will be skipped" >&2
fi

REDIS_OAUTH_MODULE="$(cd "$(dirname "$module")" && pwd)/$(basename "$module")" \
    exec cargo bench --bench throughput -- "${args[@]}"
