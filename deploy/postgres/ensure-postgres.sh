#!/usr/bin/env bash
# Make sure a PostgreSQL server for the aidtrail tests answers on 127.0.0.1:5432.
#
# Idempotent. In order:
#   1. If the test role can already log in to the test database, do nothing.
#   2. If no PostgreSQL server binaries are installed, install Debian's `postgresql`
#      package with apt-get (as root, or through passwordless sudo).
#   3. If nothing answers on the port, start a server: the Debian cluster on that port
#      when there is one (pg_ctlcluster, falling back to `service postgresql start`),
#      otherwise a private cluster under $AIDTRAIL_HOME/postgres (initdb'd on first
#      use, run as the `postgres` OS user when we are root, since postgres refuses
#      to run as root).
#   4. Wait (with a deadline) until pg_isready succeeds.
#   5. Create the LOGIN CREATEDB role `aidtrail` (password `aidtrail`) and the database
#      `aidtrail_test` owned by it when they are absent.
#
# Progress goes to stderr; the only thing printed on stdout is the SQLAlchemy URL of
# the test database, so callers can do: URL="$(deploy/postgres/ensure-postgres.sh)".
#
# Environment (all optional):
#   AIDTRAIL_HOME         runtime dir (default <repo>/.aidtrail); the private cluster lives
#                         in $AIDTRAIL_HOME/postgres
#   AIDTRAIL_PG_PORT      port to use (default 5432)
#   AIDTRAIL_PG_CLUSTER   auto (default) | system (Debian cluster only) | private
#   AIDTRAIL_PG_TIMEOUT   seconds to wait for the server to accept connections (default 90)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

PG_HOST=127.0.0.1
PG_PORT="${AIDTRAIL_PG_PORT:-5432}"
PG_ROLE=aidtrail
PG_PASSWORD=aidtrail
PG_DB=aidtrail_test
CLUSTER_MODE="${AIDTRAIL_PG_CLUSTER:-auto}"
WAIT_SECONDS="${AIDTRAIL_PG_TIMEOUT:-90}"
AIDTRAIL_HOME="${AIDTRAIL_HOME:-$REPO_ROOT/.aidtrail}"
PRIVATE_ROOT="$AIDTRAIL_HOME/postgres"
URL="postgresql+asyncpg://${PG_ROLE}:${PG_PASSWORD}@${PG_HOST}:${PG_PORT}/${PG_DB}"

log() { printf '[ensure-postgres] %s\n' "$*" >&2; }
die() {
    printf '[ensure-postgres] ERROR: %s\n' "$*" >&2
    exit 1
}

case "$CLUSTER_MODE" in
    auto | system | private) ;;
    *) die "AIDTRAIL_PG_CLUSTER must be auto, system or private (got '$CLUSTER_MODE')" ;;
esac

# --- privileges ---------------------------------------------------------------------------
SUDO=()
HAVE_ROOT=0
if [[ $EUID -eq 0 ]]; then
    HAVE_ROOT=1
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    HAVE_ROOT=1
    SUDO=(sudo -n)
fi

# --- locating the binaries ----------------------------------------------------------------
PGBIN=""

find_pgbin() {
    PGBIN=""
    local candidate best=""
    # Debian/Ubuntu layout: /usr/lib/postgresql/<major>/bin; take the newest major.
    for candidate in /usr/lib/postgresql/*/bin; do
        if [[ -x "$candidate/postgres" && -x "$candidate/initdb" ]]; then
            if [[ -z "$best" ]] || [[ "$(basename "$(dirname "$candidate")")" -gt "$(basename "$(dirname "$best")")" ]] 2>/dev/null; then
                best="$candidate"
            fi
        fi
    done
    if [[ -z "$best" ]]; then
        # Other layouts (Homebrew, distro packages that put the server on PATH).
        local pg
        if pg="$(command -v postgres 2>/dev/null)" && [[ -x "$(dirname "$pg")/initdb" ]]; then
            best="$(dirname "$pg")"
        fi
    fi
    PGBIN="$best"
    [[ -n "$PGBIN" ]]
}

# Client tools: prefer the ones next to the server, else whatever is on PATH.
client() {
    local tool="$1"
    shift
    if [[ -n "$PGBIN" && -x "$PGBIN/$tool" ]]; then
        "$PGBIN/$tool" "$@"
    else
        "$tool" "$@"
    fi
}

have_client() {
    [[ -n "$PGBIN" && -x "$PGBIN/$1" ]] || command -v "$1" >/dev/null 2>&1
}

role_can_login() {
    have_client psql || return 1
    PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 client psql -X -q -A -t \
        -h "$PG_HOST" -p "$PG_PORT" -U "$PG_ROLE" -d "$PG_DB" -c 'SELECT 1' >/dev/null 2>&1
}

# pg_isready's exit code: 0 accepting, 1 rejecting (e.g. starting up), 2 no response, 3 no attempt.
server_state() {
    have_client pg_isready || return 2
    client pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3 >/dev/null 2>&1
}

server_answers() {
    server_state
}

server_running() {
    local rc=0
    server_state || rc=$?
    [[ $rc -eq 0 || $rc -eq 1 ]]
}

# --- running commands as the postgres OS user ---------------------------------------------
# The server must not run as root. When we are root (or have sudo) we use the `postgres`
# account that Debian's packages create; an unprivileged user runs its own private cluster.
PG_OS_USER=""

as_pg() {
    if [[ -z "$PG_OS_USER" ]]; then
        "$@"
    elif [[ $EUID -eq 0 ]]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u "$PG_OS_USER" -- "$@"
        else
            su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")"
        fi
    else
        sudo -n -u "$PG_OS_USER" -- "$@"
    fi
}

# --- installation -------------------------------------------------------------------------
install_postgres() {
    if ! command -v apt-get >/dev/null 2>&1; then
        die "no PostgreSQL server found and apt-get is not available: install PostgreSQL (server and client, version 13 or newer) with your package manager and re-run this script"
    fi
    if [[ $HAVE_ROOT -ne 1 ]]; then
        die "no PostgreSQL server found; installing it needs root: run 'sudo apt-get install postgresql' (or run this script as root / with passwordless sudo)"
    fi
    log "no PostgreSQL server binaries found: installing Debian package 'postgresql' with apt-get"
    local apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update -q >&2 ||
        die "apt-get update failed"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -q \
        --no-install-recommends postgresql postgresql-client >&2 ||
        die "apt-get install postgresql failed"
    find_pgbin || die "apt-get installed postgresql but no server binaries were found under /usr/lib/postgresql"
}

# --- Debian cluster (postgresql-common) ---------------------------------------------------
SYSTEM_VERSION=""
SYSTEM_CLUSTER=""

find_system_cluster() {
    SYSTEM_VERSION=""
    SYSTEM_CLUSTER=""
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    # Columns: Ver Cluster Port Status Owner Data-directory Log-file
    local ver name port rest
    while read -r ver name port rest; do
        if [[ "$port" == "$PG_PORT" && -x "/usr/lib/postgresql/$ver/bin/postgres" ]]; then
            SYSTEM_VERSION="$ver"
            SYSTEM_CLUSTER="$name"
            return 0
        fi
    done < <(pg_lsclusters -h 2>/dev/null || true)
    return 1
}

start_system_cluster() {
    log "starting Debian cluster $SYSTEM_VERSION/$SYSTEM_CLUSTER on port $PG_PORT"
    if "${SUDO[@]}" pg_ctlcluster "$SYSTEM_VERSION" "$SYSTEM_CLUSTER" start >&2; then
        return 0
    fi
    log "pg_ctlcluster failed; trying 'service postgresql start'"
    if command -v service >/dev/null 2>&1 && "${SUDO[@]}" service postgresql start >&2; then
        return 0
    fi
    local logfile="/var/log/postgresql/postgresql-${SYSTEM_VERSION}-${SYSTEM_CLUSTER}.log"
    if [[ -r "$logfile" ]]; then
        log "last lines of $logfile:"
        tail -n 20 "$logfile" >&2 || true
    fi
    die "could not start the Debian PostgreSQL cluster $SYSTEM_VERSION/$SYSTEM_CLUSTER"
}

# --- private cluster under $AIDTRAIL_HOME/postgres ----------------------------------------
PRIVATE_DATA=""
PRIVATE_RUN=""
PRIVATE_LOG=""

private_fallback_root() {
    printf '/var/tmp/aidtrail-postgres-%s\n' "$(printf '%s' "$REPO_ROOT" | cksum | cut -d' ' -f1)"
}

choose_private_root() {
    # The postgres OS user has to be able to reach the directory; a repository under a
    # home directory that is 0700 (e.g. /root) is not reachable, so fall back to /var/tmp.
    mkdir -p "$AIDTRAIL_HOME"
    if [[ -n "$PG_OS_USER" ]] && ! as_pg test -x "$AIDTRAIL_HOME"; then
        local fallback
        fallback="$(private_fallback_root)"
        log "user '$PG_OS_USER' cannot reach $AIDTRAIL_HOME; using $fallback for the private cluster"
        PRIVATE_ROOT="$fallback"
    fi
    PRIVATE_DATA="$PRIVATE_ROOT/data"
    PRIVATE_RUN="$PRIVATE_ROOT/run"
    PRIVATE_LOG="$PRIVATE_ROOT/postgres.log"
}

start_private_cluster() {
    if [[ $EUID -eq 0 ]] || [[ ${#SUDO[@]} -gt 0 ]]; then
        getent passwd postgres >/dev/null 2>&1 ||
            die "the 'postgres' OS user does not exist; PostgreSQL refuses to run as root. Install Debian's postgresql package, or run this script as an unprivileged user"
        PG_OS_USER=postgres
    fi
    choose_private_root

    mkdir -p "$PRIVATE_ROOT"
    if [[ -n "$PG_OS_USER" ]]; then
        chown "$PG_OS_USER:" "$PRIVATE_ROOT" 2>/dev/null || "${SUDO[@]}" chown "$PG_OS_USER:" "$PRIVATE_ROOT"
    fi
    as_pg chmod 700 "$PRIVATE_ROOT"
    as_pg mkdir -p "$PRIVATE_RUN"

    if [[ ! -s "$PRIVATE_DATA/PG_VERSION" ]]; then
        log "initialising a private cluster in $PRIVATE_DATA ($("$PGBIN/postgres" --version))"
        local pwfile
        pwfile="$(as_pg mktemp "$PRIVATE_ROOT/.pw.XXXXXX")"
        as_pg sh -c "printf '%s\n' postgres > '$pwfile'"
        as_pg "$PGBIN/initdb" -D "$PRIVATE_DATA" -U postgres --pwfile="$pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >&2 ||
            as_pg "$PGBIN/initdb" -D "$PRIVATE_DATA" -U postgres --pwfile="$pwfile" \
                --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >&2 ||
            die "initdb failed"
        as_pg rm -f "$pwfile"
        # Test server: listen on loopback only; trade durability for speed.
        as_pg sh -c "cat >> '$PRIVATE_DATA/postgresql.conf'" <<EOF

# --- added by aidtrail deploy/postgres/ensure-postgres.sh ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PRIVATE_RUN'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fi

    log "starting private cluster $PRIVATE_DATA on $PG_HOST:$PG_PORT (log: $PRIVATE_LOG)"
    if ! as_pg "$PGBIN/pg_ctl" -D "$PRIVATE_DATA" -l "$PRIVATE_LOG" -w -t "$WAIT_SECONDS" start >&2; then
        tail -n 20 "$PRIVATE_LOG" >&2 2>/dev/null || true
        die "could not start the private PostgreSQL cluster in $PRIVATE_DATA"
    fi
}

wait_until_ready() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    until server_answers; do
        if ((SECONDS >= deadline)); then
            die "PostgreSQL did not accept connections on $PG_HOST:$PG_PORT within ${WAIT_SECONDS}s"
        fi
        sleep 1
    done
    log "PostgreSQL accepts connections on $PG_HOST:$PG_PORT"
}

# --- provisioning the role and database ---------------------------------------------------
# Superuser access goes through a Unix socket (peer/trust auth as the postgres OS user).
SUPER_SOCKET_DIR=""

find_super_socket() {
    SUPER_SOCKET_DIR=""
    local dir
    for dir in "$PRIVATE_RUN" "$PRIVATE_ROOT/run" /var/run/postgresql /run/postgresql /tmp; do
        if [[ -n "$dir" && -S "$dir/.s.PGSQL.$PG_PORT" ]]; then
            SUPER_SOCKET_DIR="$dir"
            return 0
        fi
    done
    return 1
}

super_psql() {
    as_pg "$(command -v "$PGBIN/psql" || command -v psql)" -X -q -A -t -v ON_ERROR_STOP=1 \
        -h "$SUPER_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres "$@"
}

provision() {
    if [[ -z "$PG_OS_USER" ]] && { [[ $EUID -eq 0 ]] || [[ ${#SUDO[@]} -gt 0 ]]; }; then
        getent passwd postgres >/dev/null 2>&1 && PG_OS_USER=postgres
    fi
    find_super_socket ||
        die "a server answers on $PG_HOST:$PG_PORT but its Unix socket was not found, so the role '$PG_ROLE' cannot be created. Create it yourself: CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD'; CREATE DATABASE $PG_DB OWNER $PG_ROLE;"
    log "ensuring role '$PG_ROLE' and database '$PG_DB' (as superuser via $SUPER_SOCKET_DIR)"
    super_psql <<SQL >&2 || die "could not create role '$PG_ROLE' as the postgres superuser"
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '$PG_ROLE') THEN
        CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    ELSE
        ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    END IF;
END
\$\$;
SQL
    local exists
    exists="$(super_psql -c "SELECT 1 FROM pg_catalog.pg_database WHERE datname = '$PG_DB'")" ||
        die "could not query pg_database"
    if [[ "$exists" != "1" ]]; then
        super_psql -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE" >&2 || die "could not create database '$PG_DB'"
    fi
}

# --- main ---------------------------------------------------------------------------------
main() {
    find_pgbin || true

    if role_can_login; then
        log "PostgreSQL already answers on $PG_HOST:$PG_PORT with role '$PG_ROLE'"
        printf '%s\n' "$URL"
        return 0
    fi

    if [[ -z "$PGBIN" ]]; then
        install_postgres
    fi
    log "server binaries: $PGBIN"

    if server_running; then
        log "a server is already running on $PG_HOST:$PG_PORT"
        # If that is our private cluster, remember where its socket is.
        choose_private_root_quiet
    else
        local use_system=0
        if [[ "$CLUSTER_MODE" != private ]] && [[ $HAVE_ROOT -eq 1 ]] && find_system_cluster; then
            use_system=1
        elif [[ "$CLUSTER_MODE" == system ]]; then
            die "AIDTRAIL_PG_CLUSTER=system but there is no Debian cluster on port $PG_PORT (or no root to start it)"
        fi
        if [[ $use_system -eq 1 ]]; then
            start_system_cluster
        else
            start_private_cluster
        fi
    fi

    wait_until_ready
    provision

    if ! role_can_login; then
        die "role '$PG_ROLE' still cannot log in over TCP to $PG_HOST:$PG_PORT/$PG_DB; check pg_hba.conf allows password (scram-sha-256/md5) logins from 127.0.0.1"
    fi
    log "ready: $URL"
    printf '%s\n' "$URL"
}

choose_private_root_quiet() {
    PRIVATE_DATA="$PRIVATE_ROOT/data"
    PRIVATE_RUN="$PRIVATE_ROOT/run"
    if [[ ! -S "$PRIVATE_RUN/.s.PGSQL.$PG_PORT" ]]; then
        local fallback
        fallback="$(private_fallback_root)"
        if [[ -S "$fallback/run/.s.PGSQL.$PG_PORT" ]]; then
            PRIVATE_ROOT="$fallback"
            PRIVATE_DATA="$PRIVATE_ROOT/data"
            PRIVATE_RUN="$PRIVATE_ROOT/run"
        fi
    fi
}

main "$@"
