#!/usr/bin/env bash
# Runs the package's tests against the real module, once per pinned redis-py
# version, each in its own fresh venv (.venv-redis5, .venv-redis8 here).
# Uses REDIS_SERVER and REDIS_OAUTH_MODULE (defaults below). Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export REDIS_SERVER="${REDIS_SERVER:-/usr/bin/redis-server}"
export REDIS_OAUTH_MODULE="${REDIS_OAUTH_MODULE:-$here/../../target/release/libredis_oauth.so}"
PYTHON="${PYTHON:-python3}"
PYTEST_VERSION=9.0.2
REDIS_PY_VERSIONS=(5.0.8 8.2.0)

[ -x "$REDIS_SERVER" ] || command -v "$REDIS_SERVER" >/dev/null || { echo "redis-server not found: $REDIS_SERVER (set REDIS_SERVER)" >&2; exit 2; }
[ -f "$REDIS_OAUTH_MODULE" ] || { echo "module not found: $REDIS_OAUTH_MODULE (set REDIS_OAUTH_MODULE)" >&2; exit 2; }

failed=()
for version in "${REDIS_PY_VERSIONS[@]}"; do
    venv="$here/.venv-redis${version%%.*}"
    echo "== redis-py $version ($venv)"
    if ! "$PYTHON" -m venv --clear "$venv"; then
        echo "'$PYTHON -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 2
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "pytest==$PYTEST_VERSION" "redis==$version" "$here"
    # Installing from the source tree leaves a build directory behind.
    rm -rf "$here/build" "$here"/src/*.egg-info
    if ! (cd "$here" && PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pytest -p no:cacheprovider -q); then
        failed+=("$version")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED with redis-py ${failed[*]}" >&2
    exit 1
fi
echo "All tests passed with redis-py ${REDIS_PY_VERSIONS[*]}"
