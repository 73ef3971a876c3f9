# Sourced by run.sh and run-tests.sh: makes .venv here and installs the pinned
# requirements file "$1" from PyPI plus the redis-oauth client package of this
# repository. Set PYTHON to choose the interpreter (3.11 is what was tested).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] && ! "${PYTHON:-python3}" -m venv "$venv"; then
    echo "'${PYTHON:-python3} -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 2
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/$1"
# Install a copy: building in place would leave build/ and *.egg-info in clients/python.
client_copy="$(mktemp -d)"
cp -R "$here/../../clients/python/pyproject.toml" "$here/../../clients/python/README.md" \
    "$here/../../clients/python/src" "$client_copy/"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$client_copy"
rm -rf "$client_copy"
