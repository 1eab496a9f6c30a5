"""docker-compose.yml, Dockerfile and the PostgreSQL init script, checked without a Docker engine.

1. The compose file is validated against the official Compose Specification JSON schema
   (``tests/data/compose-spec.json``: ``schema/compose-spec.json`` of the compose-spec/compose-spec
   repository, Apache-2.0, see ``tests/data/compose-spec.LICENSE``; the copy is the one vendored in
   the PyPI package check-jsonschema 0.39.0, ``check_jsonschema/builtin_schemas/vendor/``).
2. The things the schema cannot know are checked by hand: every service can be built or pulled,
   the build context and Dockerfile exist, the app services get the settings they need, publish
   their conventional ports, use their own database (created by the init SQL), and wait for
   healthy Kafka and PostgreSQL; no host port is published twice.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SCHEMA_FILE = REPO_ROOT / "tests" / "data" / "compose-spec.json"
INIT_SQL = REPO_ROOT / "deploy" / "postgres" / "init-databases.sql"
KAFKA_POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"

APP_PORTS = {"pledge": 8001, "warehouse": 8002, "dispatch": 8003, "recipient": 8004}
REQUIRED_APP_ENV = (
    "AIDTRAIL_SERVICE",
    "AIDTRAIL_DATABASE_URL",
    "AIDTRAIL_KAFKA_BOOTSTRAP",
    "AIDTRAIL_JWT_SECRET",
)

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


# --- helpers -------------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    svcs = load_compose().get("services")
    assert isinstance(svcs, dict)
    return svcs


def interpolate(value: str) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR-default}, with an empty environment."""
    return _INTERPOLATION.sub(lambda m: m.group("default") or "", value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of the two syntaxes it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: interpolate(val) for key, val in pairs}
    return {str(key): interpolate("" if val is None else str(val)) for key, val in env.items()}


def published_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host_ip, published, target) for every published port, short or long syntax."""
    result: list[tuple[str, int, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published") is None:
                continue
            result.append((str(entry.get("host_ip", "")), int(entry["published"]), int(entry["target"])))
            continue
        spec = interpolate(str(entry)).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:  # container port only: published on a random host port
            continue
        host_ip = parts[0] if len(parts) == 3 else ""
        published, target = parts[-2], parts[-1]
        assert "-" not in published, f"port ranges are not used here: {entry!r}"
        result.append((host_ip, int(published), int(target)))
    return result


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {str(name): dict(cfg or {}) for name, cfg in deps.items()}


def healthcheck_command(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list):
        return " ".join(str(part) for part in test)
    return str(test or "")


def init_sql_databases() -> set[str]:
    text = re.sub(r"--[^\n]*", "", INIT_SQL.read_text(encoding="utf-8"))
    return {m.lower() for m in re.findall(r'CREATE\s+DATABASE\s+"?([A-Za-z0-9_]+)"?', text, re.IGNORECASE)}


def dockerfile_cmd(dockerfile: Path) -> list[str]:
    cmds = [line for line in dockerfile.read_text(encoding="utf-8").splitlines() if line.startswith("CMD ")]
    assert len(cmds) == 1, "the Dockerfile must have exactly one CMD, on one line"
    cmd = json.loads(cmds[0][len("CMD ") :])
    assert isinstance(cmd, list) and all(isinstance(part, str) for part in cmd)
    return cmd


# --- 1. the official schema ----------------------------------------------------------------------


def test_schema_file_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_compose_file_matches_the_compose_specification_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(load_compose()), key=lambda e: list(e.absolute_path))
    messages = [f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}" for err in errors]
    assert not messages, "docker-compose.yml violates the Compose Specification:\n" + "\n".join(messages)


def test_schema_rejects_a_broken_file() -> None:
    # Guards against a schema that accepts everything (e.g. an emptied vendored file).
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    broken = load_compose()
    broken["services"]["pledge"]["ports"] = [{"no_such_key": 1}]
    broken["services"]["pledge"]["healthcheck"] = {"interval": 10}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))


# --- 2. the rules the schema does not check ------------------------------------------------------


def test_top_level_services_present() -> None:
    compose = load_compose()
    assert isinstance(compose.get("services"), dict) and compose["services"], "top-level `services` required"
    assert {"kafka", "postgres", *APP_PORTS} <= set(compose["services"])


@pytest.mark.parametrize("name", sorted(services()))
def test_every_service_has_image_or_build(name: str) -> None:
    service = services()[name]
    assert "image" in service or "build" in service, f"{name}: needs `image` or `build`"


@pytest.mark.parametrize("name", sorted(n for n, s in services().items() if "build" in s))
def test_build_context_and_dockerfile_exist(name: str) -> None:
    build = services()[name]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    context_dir = (COMPOSE_FILE.parent / context).resolve()
    assert context_dir.is_dir(), f"{name}: build context {context_dir} does not exist"
    assert (context_dir / dockerfile).is_file(), f"{name}: {context_dir / dockerfile} does not exist"


@pytest.mark.parametrize(("name", "port"), sorted(APP_PORTS.items()))
def test_app_service_settings(name: str, port: int) -> None:
    service = services()[name]
    env = environment(service)
    missing = [key for key in REQUIRED_APP_ENV if not env.get(key)]
    assert not missing, f"{name}: environment lacks {missing}"
    assert env["AIDTRAIL_SERVICE"] == name
    assert env["AIDTRAIL_KAFKA_BOOTSTRAP"] == "kafka:9092", "use the broker's internal listener"
    assert len(env["AIDTRAIL_JWT_SECRET"]) >= 32, "the default JWT secret must be long enough for HS256"
    assert "build" in service, f"{name}: app services are built from the Dockerfile"


@pytest.mark.parametrize(("name", "port"), sorted(APP_PORTS.items()))
def test_app_service_publishes_its_port_and_checks_readiness(name: str, port: int) -> None:
    service = services()[name]
    assert (port, port) in {(published, target) for _, published, target in published_ports(service)}
    check = healthcheck_command(service)
    assert f"127.0.0.1:{port}/health/ready" in check or f"localhost:{port}/health/ready" in check, check


@pytest.mark.parametrize("name", sorted(APP_PORTS))
def test_app_service_waits_for_healthy_kafka_and_postgres(name: str) -> None:
    deps = depends_on(services()[name])
    for infra in ("kafka", "postgres"):
        assert deps.get(infra, {}).get("condition") == "service_healthy", f"{name} -> {infra}"
        assert healthcheck_command(services()[infra]), f"{infra} needs a healthcheck for service_healthy"


def test_depends_on_names_exist() -> None:
    svcs = services()
    for name, service in svcs.items():
        for dep in depends_on(service):
            assert dep in svcs, f"{name} depends on unknown service {dep!r}"
            assert dep != name


def test_host_ports_are_unique() -> None:
    seen: dict[int, str] = {}
    for name, service in services().items():
        for _, published, _ in published_ports(service):
            assert published not in seen, f"host port {published} published by {seen[published]} and {name}"
            seen[published] = name


def test_each_app_service_has_its_own_database_created_by_the_init_sql() -> None:
    svcs = services()
    postgres_env = environment(svcs["postgres"])
    created = init_sql_databases()
    used: dict[str, str] = {}
    for name in APP_PORTS:
        url = make_url(environment(svcs[name])["AIDTRAIL_DATABASE_URL"])
        assert url.drivername == "postgresql+asyncpg", f"{name}: {url.drivername}"
        assert url.host in svcs, f"{name}: database host {url.host!r} is not a compose service"
        assert url.host == "postgres"
        assert (url.port or 5432) == 5432
        assert url.username == postgres_env["POSTGRES_USER"]
        assert url.password == postgres_env["POSTGRES_PASSWORD"]
        assert url.database, f"{name}: no database name"
        assert url.database.lower() in created, f"{name}: database {url.database} not created by {INIT_SQL.name}"
        assert url.database not in used, f"{name} and {used.get(url.database)} share a database"
        used[url.database] = name


def test_init_sql_is_mounted_into_the_postgres_entrypoint() -> None:
    postgres = services()["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    mounts = [str(v) for v in postgres.get("volumes") or []]
    hits = [
        m
        for m in mounts
        if m.split(":")[0].rstrip("/").endswith("deploy/postgres/init-databases.sql")
        and m.split(":")[1].startswith("/docker-entrypoint-initdb.d/")
    ]
    assert hits, f"init-databases.sql is not mounted into /docker-entrypoint-initdb.d: {mounts}"
    assert INIT_SQL.is_file()


def test_kafka_is_a_single_kraft_node_advertising_the_internal_listener() -> None:
    kafka = services()["kafka"]
    env = environment(kafka)
    image = str(kafka["image"])
    assert image.startswith("apache/kafka:4."), image
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "ZOOKEEPER" not in " ".join(env).upper()
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "CLUSTER_ID must be a base64url UUID"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1", f"{key} must be 1 on a single broker"


def test_kafka_image_matches_the_pinned_kafka_version() -> None:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text(encoding="utf-8"))
    assert match, f"no kafka.version property in {KAFKA_POM}"
    assert services()["kafka"]["image"] == f"apache/kafka:{match.group(1).strip()}"


# --- the image the app services are built from ---------------------------------------------------


def test_dockerfile_basics() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert "pip install" in text
    ignored = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for path in (".git", ".venv", ".aidtrail"):
        assert path in ignored, f".dockerignore should exclude {path}"


@pytest.mark.parametrize(("name", "port"), [*sorted(APP_PORTS.items()), ("audit", 8005)])
def test_dockerfile_cmd_serves_the_chosen_service(tmp_path: Path, name: str, port: int) -> None:
    # Run the real CMD with a stand-in `aidtrail` that prints its arguments.
    fake = tmp_path / "aidtrail"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$*"\n', encoding="utf-8")
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", "AIDTRAIL_SERVICE": name}
    cmd = dockerfile_cmd(REPO_ROOT / "Dockerfile")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=30).stdout
    assert shlex.split(out) == ["serve", name, "--host", "0.0.0.0", "--port", str(port)]


def test_dockerfile_cmd_rejects_an_unknown_service(tmp_path: Path) -> None:
    cmd = dockerfile_cmd(REPO_ROOT / "Dockerfile")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AIDTRAIL_SERVICE": "nope"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 64 and "nope" in proc.stderr
