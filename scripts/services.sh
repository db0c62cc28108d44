#!/usr/bin/env bash
# Make PostgreSQL + PostGIS and Redis answer on 127.0.0.1 for the tests; idempotent.
#
# Installs the Debian packages when missing, starts the PostgreSQL cluster on port 5432
# and a Redis on 6379 when they are down, makes sure user postgres can log in over TCP
# with the password "postgres" (trust auth accepts it too), and creates the database
# "helpdesk" with PostGIS. What it guarantees is the URL the Makefile's test target uses:
#
#   DATABASE_URL=postgis://postgres:postgres@127.0.0.1:5432/helpdesk
#   REDIS_URL=redis://127.0.0.1:6379/0
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PG_PORT=${SERVICES_PG_PORT:-5432} # another port only to try this script on a spare cluster
PG_PASSWORD=postgres
PG_DB=helpdesk
REDIS_PORT=6379

# --- PostgreSQL ---------------------------------------------------------------------------
apt_install_missing postgresql redis-server

# The major version: that of the cluster on our port, else the newest server installed.
pg_version=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1; exit }')
if [ -z "$pg_version" ]; then
    pg_version=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'postgresql-[0-9]*' 2>/dev/null |
        awk '$1 == "ii" && $2 ~ /^postgresql-[0-9]+$/ { sub("postgresql-", "", $2); print $2 }' |
        sort -n | tail -n1)
fi
[ -n "$pg_version" ] || die "no PostgreSQL server package found"
apt_install_missing "postgresql-$pg_version-postgis-3"

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }

if pg_ready; then
    log "PostgreSQL is accepting connections on 127.0.0.1:$PG_PORT"
else
    cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1 " " $2; exit }')
    if [ -z "$cluster" ]; then
        log "creating PostgreSQL cluster $pg_version/main on port $PG_PORT"
        as_root pg_createcluster --port "$PG_PORT" "$pg_version" main
        cluster="$pg_version main"
    fi
    log "starting PostgreSQL cluster $cluster"
    # shellcheck disable=SC2086 # "$cluster" is "VERSION NAME": two arguments
    as_root pg_ctlcluster --skip-systemctl-redirect $cluster start || true
    wait_for 60 pg_ready ||
        die "PostgreSQL did not come up on 127.0.0.1:$PG_PORT (see /var/log/postgresql/)"
    log "PostgreSQL is up"
fi

psql_tcp() {
    PGPASSWORD=$PG_PASSWORD psql -X -w -q -At -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

# Debian's packaged default is peer auth on the socket and scram over TCP, with no
# password for postgres: give it one through the socket (peer auth as the postgres user).
if ! psql_tcp -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    log "user postgres cannot log in over TCP: setting its password"
    as_root runuser -u postgres -- psql -X -q -p "$PG_PORT" -d postgres \
        -c "ALTER ROLE postgres WITH PASSWORD '$PG_PASSWORD'"
    psql_tcp -d postgres -c 'SELECT 1' >/dev/null ||
        die "still cannot log in as postgres on 127.0.0.1:$PG_PORT; check pg_hba.conf"
fi

if [ -z "$(psql_tcp -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]; then
    log "creating database $PG_DB"
    # Someone else may create it at the same moment: only the re-check below counts.
    psql_tcp -d postgres -c "CREATE DATABASE $PG_DB" || true
    [ -n "$(psql_tcp -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ] ||
        die "could not create database $PG_DB"
fi
if [ -z "$(psql_tcp -d "$PG_DB" -c "SELECT 1 FROM pg_extension WHERE extname = 'postgis'")" ]; then
    log "creating extension postgis in $PG_DB"
    psql_tcp -d "$PG_DB" -c 'CREATE EXTENSION IF NOT EXISTS postgis'
fi
log "PostgreSQL ready: postgis://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"

# --- Redis --------------------------------------------------------------------------------
redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

if redis_ready; then
    log "Redis is answering on 127.0.0.1:$REDIS_PORT"
else
    # Nothing to keep: no RDB snapshots, no AOF.
    redis_dir=/var/lib/redis
    redis_log=/var/log/redis/redis-server-helpdesk.log
    [ -d "$redis_dir" ] && [ -w "$redis_dir" ] || redis_dir=${TMPDIR:-/tmp}
    [ -d "${redis_log%/*}" ] && [ -w "${redis_log%/*}" ] || redis_log=""
    log "starting redis-server on 127.0.0.1:$REDIS_PORT"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$redis_dir" --logfile "$redis_log"
    wait_for 30 redis_ready || die "Redis did not come up on 127.0.0.1:$REDIS_PORT"
    log "Redis is up"
fi
log "Redis ready: redis://127.0.0.1:$REDIS_PORT/0"
