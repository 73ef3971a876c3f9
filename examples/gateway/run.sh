#!/usr/bin/env bash
# Starts the gateway on http://127.0.0.1:${PORT:-8000}, on the Redis at REDIS_URL
# (default redis://127.0.0.1:6379/0, where scripts/start.sh runs it with the module).
# Other settings: see README.md. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source ./venv.sh requirements.txt

export PORT="${PORT:-8000}"
export GATEWAY_ISSUER="${GATEWAY_ISSUER:-http://127.0.0.1:$PORT}"
exec .venv/bin/uvicorn --factory gateway.app:app_from_env --host 127.0.0.1 --port "$PORT"
