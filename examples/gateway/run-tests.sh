#!/usr/bin/env bash
# Runs the end-to-end tests: authlib over HTTP against the gateway (uvicorn on
# 127.0.0.1) and a redis-server with the module, both started by the tests.
# Uses REDIS_SERVER (default: redis-server on PATH) and REDIS_OAUTH_MODULE
# (default: ../../target/release/libredis_oauth.so, from cargo build --release).
# Exits non-zero on any failure. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export REDIS_SERVER="${REDIS_SERVER:-redis-server}"
export REDIS_OAUTH_MODULE="${REDIS_OAUTH_MODULE:-$PWD/../../target/release/libredis_oauth.so}"
command -v "$REDIS_SERVER" >/dev/null || { echo "redis-server not found: $REDIS_SERVER (set REDIS_SERVER)" >&2; exit 2; }
[ -f "$REDIS_OAUTH_MODULE" ] || { echo "module not found: $REDIS_OAUTH_MODULE (set REDIS_OAUTH_MODULE)" >&2; exit 2; }

source ./venv.sh requirements-test.txt
PYTHONDONTWRITEBYTECODE=1 exec .venv/bin/python -m pytest -p no:cacheprovider -q "$@"
