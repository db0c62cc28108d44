#!/usr/bin/env bash
# Install what the project needs to run, and build .venv; idempotent and fast when done.
#
#   scripts/bootstrap.sh            runtime: Debian packages for GeoDjango/SpatiaLite,
#                                   .venv from /usr/bin/python3, requirements.txt
#   scripts/bootstrap.sh --dev      also requirements-dev.txt (pytest, ruff, playwright...)
#   scripts/bootstrap.sh --browser  also Debian's chromium for the browser tests
#
# pip runs only when a requirements file changed since the last install (stamps in .venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

DEV=0
BROWSER=0
for arg in "$@"; do
    case "$arg" in
    --dev) DEV=1 ;;
    --browser) BROWSER=1 ;;
    *) die "unknown option: $arg" ;;
    esac
done

VENV=${VENV:-.venv}
# Debian's Python: the pyenv build that may come first on PATH cannot load SQLite
# extensions, and SpatiaLite is one.
SYSTEM_PYTHON=/usr/bin/python3

packages=(python3-venv gdal-bin libsqlite3-mod-spatialite)
if [ "$BROWSER" -eq 1 ]; then
    packages+=(chromium)
fi
apt_install_missing "${packages[@]}"

venv_ok() {
    [ -x "$VENV/bin/python" ] &&
        "$VENV/bin/python" -c \
            'import sqlite3; sqlite3.connect(":memory:").enable_load_extension(True)' \
            >/dev/null 2>&1
}

if ! venv_ok; then
    [ -x "$SYSTEM_PYTHON" ] || die "$SYSTEM_PYTHON not found (apt-get install python3-venv)"
    if [ -e "$VENV" ]; then
        log "$VENV is broken or cannot load SQLite extensions: rebuilding it"
    fi
    log "creating $VENV from $SYSTEM_PYTHON"
    "$SYSTEM_PYTHON" -m venv --clear "$VENV"
    venv_ok || die "$VENV still cannot load SQLite extensions"
fi

# pip_sync REQUIREMENTS [OTHER FILES IT INCLUDES...]
pip_sync() {
    local req=$1
    local stamp want
    stamp="$VENV/.installed-$(basename "$req").sha256"
    want=$(cat "$@" | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "$req: installed"
        return 0
    fi
    log "pip install -r $req"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q -r "$req"
    echo "$want" >"$stamp"
}

pip_sync requirements.txt
if [ "$DEV" -eq 1 ]; then
    pip_sync requirements-dev.txt requirements.txt
fi
