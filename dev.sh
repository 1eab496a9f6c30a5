#!/usr/bin/env bash
# aidtrail developer entry point.
#
#   ./dev.sh demo [ARGS...]    set up, start the local Kafka broker, run `aidtrail demo ARGS...`
#   ./dev.sh test [ARGS...]    set up, start Kafka and PostgreSQL, run ruff, mypy, then pytest ARGS...
#   ./dev.sh bench [ARGS...]   set up, start Kafka, run `python -m bench ARGS...`
#   ./dev.sh setup             only check the prerequisites and create/update .venv
#
# Needs python3 >= 3.11, java and mvn (and npm for `test`). Everything else (the virtualenv, the Kafka
# jars, a PostgreSQL server and the AsyncAPI CLI for the tests) is installed by this script and the ones
# it calls.
#
# Environment:
#   PYTHON                  interpreter used to create .venv (default: python3)
#   AIDTRAIL_SKIP_LINT=1    `test` skips ruff and mypy (quicker local iterations)
#   AIDTRAIL_TEST_POSTGRES_URL
#                           when set, `test` uses that server instead of running
#                           deploy/postgres/ensure-postgres.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.aidtrail-install-stamp"
PYTHON="${PYTHON:-python3}"

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    BOLD=$'\033[1m' RED=$'\033[1;31m' RESET=$'\033[0m'
else
    BOLD="" RED="" RESET=""
fi

section() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$RESET"; }
info() { printf '    %s\n' "$*"; }
error() { printf '\n%sdev.sh: %s%s\n' "$RED" "$*" "$RESET" >&2; }
die() {
    error "$*"
    exit 1
}

usage() {
    # The comment block at the top of this file.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

# --- prerequisites ------------------------------------------------------------------------
check_prerequisites() {
    section "Checking prerequisites (python3 >= 3.11, java, mvn)"
    command -v "$PYTHON" >/dev/null 2>&1 ||
        die "$PYTHON not found: install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3 python3-venv)"
    if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
        die "$("$PYTHON" --version 2>&1) is too old: install Python 3.11 or newer (or set PYTHON=/path/to/python3.11)"
    fi
    info "$("$PYTHON" --version 2>&1) ($(command -v "$PYTHON"))"
    command -v java >/dev/null 2>&1 ||
        die "java not found: install a Java runtime, 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
    info "$(java -version 2>&1 | head -n 1)"
    command -v mvn >/dev/null 2>&1 ||
        die "mvn not found: install Apache Maven (Debian/Ubuntu: apt-get install maven)"
    info "$(mvn -v 2>/dev/null | head -n 1 | sed 's/\x1b\[[0-9;]*m//g')"
}

# --- virtualenv ---------------------------------------------------------------------------
install_fingerprint() {
    # Reinstall when pyproject.toml changes (content, not mtime: a fresh clone has new mtimes)
    # or when the venv's interpreter changes.
    {
        cat pyproject.toml
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    section "Python environment (.venv)"
    if [[ ! -x "$VENV/bin/python" ]]; then
        info "creating $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV" ||
            die "could not create $VENV: install the venv module (Debian/Ubuntu: apt-get install python3-venv)"
    fi
    local want have=""
    want="$(install_fingerprint)"
    [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
    if [[ "$want" == "$have" && -x "$VENV/bin/aidtrail" ]]; then
        info "up to date (pyproject.toml unchanged since the last install)"
    else
        info "pip install -e '.[dev]'"
        rm -f "$STAMP"
        "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q -e '.[dev]' ||
            die "pip install -e '.[dev]' failed"
        printf '%s\n' "$want" >"$STAMP"
        info "installed"
    fi
    export VIRTUAL_ENV="$VENV"
    export PATH="$VENV/bin:$PATH"
}

# --- Kafka --------------------------------------------------------------------------------
start_kafka() {
    section "Kafka: fetching the broker jars (mvn)"
    aidtrail kafka fetch || die "'aidtrail kafka fetch' failed"
    section "Kafka: starting the local broker"
    aidtrail kafka start || die "'aidtrail kafka start' failed"
}

# --- PostgreSQL ---------------------------------------------------------------------------
ensure_postgres() {
    section "PostgreSQL for the tests"
    if [[ -n "${AIDTRAIL_TEST_POSTGRES_URL:-}" ]]; then
        info "using AIDTRAIL_TEST_POSTGRES_URL from the environment"
    else
        AIDTRAIL_TEST_POSTGRES_URL="$("$ROOT/deploy/postgres/ensure-postgres.sh")" ||
            die "deploy/postgres/ensure-postgres.sh failed"
    fi
    export AIDTRAIL_TEST_POSTGRES_URL
    info "AIDTRAIL_TEST_POSTGRES_URL=$AIDTRAIL_TEST_POSTGRES_URL"
}

# --- AsyncAPI CLI (validates docs/asyncapi.yaml in the tests) ------------------------------
ensure_asyncapi_cli() {
    section "AsyncAPI CLI (npm, into .aidtrail/node)"
    command -v npm >/dev/null 2>&1 ||
        die "npm not found: install Node.js 20+ with npm (Debian/Ubuntu: apt-get install nodejs npm)"
    python -m shared.cli.contract_commands install-cli || die "installing the AsyncAPI CLI failed"
}

# --- commands -----------------------------------------------------------------------------
cmd_demo() {
    check_prerequisites
    ensure_venv
    start_kafka
    section "aidtrail demo $*"
    aidtrail demo "$@"
}

cmd_bench() {
    check_prerequisites
    ensure_venv
    start_kafka
    section "python -m bench $*"
    python -m bench "$@"
}

cmd_test() {
    check_prerequisites
    ensure_venv
    start_kafka
    ensure_postgres
    ensure_asyncapi_cli

    if [[ "${AIDTRAIL_SKIP_LINT:-0}" == 1 ]]; then
        section "ruff and mypy skipped (AIDTRAIL_SKIP_LINT=1)"
    else
        section "ruff check ."
        ruff check . || die "ruff check failed"
        section "mypy"
        mypy || die "mypy failed"
    fi

    section "pytest $*"
    local rc=0
    python -m pytest "$@" || rc=$?
    if [[ $rc -eq 0 ]]; then
        section "All checks passed"
    elif [[ $rc -eq 5 ]]; then
        error "pytest collected no tests (exit code 5): that counts as a failure"
    else
        error "pytest failed (exit code $rc)"
    fi
    return "$rc"
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        demo) cmd_demo "$@" ;;
        test) cmd_test "$@" ;;
        bench) cmd_bench "$@" ;;
        setup)
            check_prerequisites
            ensure_venv
            ;;
        -h | --help | help) usage ;;
        "")
            usage >&2
            exit 2
            ;;
        *)
            printf 'dev.sh: unknown command %q\n\n' "$cmd" >&2
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
