#!/usr/bin/env bash
# Installs what is missing, builds redis-oauth and runs every check and test:
# formatting, clippy, the pure-core import rule, unit and property tests, the
# integration tests (including the 6-node Cluster, chaos, replication and
# durability tests) against Debian's Redis 7.0, the Python and Node client
# packages' tests (redis-py, node-redis, ioredis; standalone and Cluster), the
# reference gateway's end-to-end tests (examples/gateway), a
# valgrind memcheck run, the integration tests again on Valkey 9.1 and Redis
# 7.4 (fetched by scripts/servers.sh), and the refusal of Redis 6.2. CI runs
# exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_deps

# Link-time optimization makes the shipped module faster (scripts/start.sh and
# scripts/bench.sh keep it), but linking every test binary with it doubles the
# build time of this script. The tests check behaviour, which LTO does not
# change, so they build the module and themselves without it.
export CARGO_PROFILE_RELEASE_LTO=false

echo "== redis-server: $(redis-server --version)"
echo "== format and lint"
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings

echo "== the core stays pure (no redis_module in src/core)"
if grep -rnE "(use |extern crate )?redis_module::|use redis_module" src/core; then
  echo "src/core must not import redis_module" >&2
  exit 1
fi

echo "== no NUL-unsafe string construction in src (Context::create_string panics on NUL)"
if grep -rn "create_string(" src; then
  echo "use keys::rstr instead of create_string" >&2
  exit 1
fi

echo "== build the module"
cargo build --release
export REDIS_OAUTH_MODULE="$PWD/target/release/libredis_oauth.so"

echo "== unit and integration tests (Redis $(redis-server --version | grep -oE 'v=[0-9.]+'))"
cargo test --release --lib --tests

echo "== client packages against the module (Redis 7.0, standalone and a 3-master Cluster)"
bash clients/python/run-tests.sh
bash clients/node/run-tests.sh
echo "== the reference gateway end to end (authlib over HTTP, Redis 7.0)"
bash examples/gateway/run-tests.sh

echo "== memory safety: the chaos workload under valgrind memcheck (Redis 7.0)"
bash scripts/valgrind.sh

echo "== other servers"
source scripts/servers.sh
for server in "$REDIS_VALKEY" "$REDIS_74"; do
  echo "== integration tests on $("$server" --version | cut -d' ' -f1-3)"
  REDIS_SERVER="$server" cargo test --release --tests
done
echo "== an old server refuses the module"
REDIS_OLD="$REDIS_OLD" cargo test --release --test versions -- --ignored
echo "== all checks passed in ${SECONDS}s"
