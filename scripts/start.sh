#!/usr/bin/env bash
# Installs what is missing, builds redis-oauth in release mode and starts
# redis-server on 127.0.0.1 with the module loaded (settings in
# redis.conf.example), then proves it answers.
#   scripts/start.sh            # port 6379, data in ./data
#   PORT=6390 scripts/start.sh  # another port
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_deps

PORT="${PORT:-6379}"
DATA="${DATA:-$PWD/data}"
cargo build --release
mkdir -p "$DATA"

if redis-cli -p "$PORT" PING >/dev/null 2>&1; then
  echo "Something already answers on 127.0.0.1:$PORT. Stop it, or run: PORT=6390 scripts/start.sh" >&2
  exit 1
fi

# redis-server changes into --dir before loading modules, so point the
# example's relative loadmodule path at this checkout's build.
sed "s#\./target/release/libredis_oauth.so#$PWD/target/release/libredis_oauth.so#" \
  redis.conf.example > "$DATA/redis.conf"
redis-server "$DATA/redis.conf" \
  --port "$PORT" --bind 127.0.0.1 \
  --dir "$DATA" --logfile "$DATA/redis.log" --daemonize yes \
  --pidfile "$DATA/redis.pid"

for _ in $(seq 1 100); do
  redis-cli -p "$PORT" PING >/dev/null 2>&1 && break
  sleep 0.1
done
if ! redis-cli -p "$PORT" MODULE LIST | grep -q oauth; then
  echo "redis-server did not start with the module; see $DATA/redis.log:" >&2
  tail -n 20 "$DATA/redis.log" >&2 || true
  exit 1
fi
redis-cli -p "$PORT" OAUTH.HELP | head -n 3
echo
echo "redis-oauth is running on 127.0.0.1:$PORT (log: $DATA/redis.log)."
echo "Try: redis-cli -p $PORT OAUTH.HELP     Stop: redis-cli -p $PORT SHUTDOWN"
