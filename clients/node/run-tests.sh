#!/usr/bin/env bash
# Installs the locked dependencies, builds the package and runs its tests: unit tests,
# then every client case (node-redis 4, 5, 6; ioredis 5, 6; RESP2 and RESP3) against a
# standalone redis-server and a 3-master Redis Cluster, each with the module loaded.
#
# Environment: REDIS_SERVER (default /usr/bin/redis-server), REDIS_CLI (default
# redis-cli), REDIS_OAUTH_MODULE (default ../../target/release/libredis_oauth.so).
# Needs node >= 20 and npm. Exits non-zero on any failure; never skips.
set -euo pipefail
cd "$(dirname "$0")"

: "${REDIS_SERVER:=/usr/bin/redis-server}"
: "${REDIS_OAUTH_MODULE:=$PWD/../../target/release/libredis_oauth.so}"
export REDIS_SERVER REDIS_OAUTH_MODULE

for tool in node npm "${REDIS_CLI:-redis-cli}"; do
  command -v "$tool" >/dev/null || { echo "run-tests.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$REDIS_SERVER" ] || { echo "run-tests.sh: redis-server is missing: $REDIS_SERVER (set REDIS_SERVER)" >&2; exit 1; }
[ -f "$REDIS_OAUTH_MODULE" ] || { echo "run-tests.sh: the module is missing: $REDIS_OAUTH_MODULE (set REDIS_OAUTH_MODULE)" >&2; exit 1; }

npm ci --no-audit --no-fund
npm run build
npm run build:test
node --test --test-reporter=spec .test-build/test/unit.test.js .test-build/test/integration.test.js
