#!/usr/bin/env bash
# Installs what building and testing redis-oauth needs on Debian/Ubuntu:
# redis-server and redis-tools (the server, redis-cli, redis-benchmark) and
# libclang-dev (the redis-module crate runs bindgen at build time),
# valgrind (scripts/valgrind.sh, the memory-safety check), and Python 3 with
# venv, Node.js and npm (the client packages' tests).
# Sourced by start.sh and test.sh; safe to run again.

have_libclang() {
  ldconfig -p 2>/dev/null | grep -q 'libclang' && ls /usr/lib/llvm-*/lib/clang/*/include/stddef.h >/dev/null 2>&1
}

ensure_deps() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  have_libclang || missing+=(libclang-dev)
  command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
  # The client packages' tests (clients/python, clients/node).
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: install the Rust toolchain (https://rustup.rs) first." >&2
    exit 1
  }
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing: ${missing[*]}. Run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # The package starts a system redis-server on port 6379 that nothing here
  # asked for; stop it so it does not hold the port.
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    (systemctl disable --now redis-server || service redis-server stop) >/dev/null 2>&1 || true
  fi
}
