# Helpers shared by scripts/*.sh. Source it; don't run it.
# shellcheck shell=bash

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "needs root: $* (run as root, or install sudo)"
    fi
}

pkg_installed() {
    dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'
}

_APT_UPDATED=0

# Install the Debian packages that are not installed yet. Asks apt nothing (not even
# `apt-get update`) when all are present, so a second run is fast and works offline.
apt_install_missing() {
    local missing=() pkg
    if ! command -v dpkg-query >/dev/null 2>&1; then
        log "not a Debian system: make sure these are installed: $*"
        return 0
    fi
    for pkg in "$@"; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600)
    if [ "$_APT_UPDATED" -eq 0 ]; then
        log "apt-get update (missing: ${missing[*]})"
        as_root "${apt[@]}" update
        _APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
}

# Poll a command until it succeeds or SECONDS pass; quiet while waiting.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.5
    done
}
