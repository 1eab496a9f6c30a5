"""schemathesis against every service's own OpenAPI document, in-process, on the real broker and a real database.

For every operation, generated requests (valid ones, then schema-violating ones) are sent with an admin token, and
each answer must be no 5xx, with a status code, content type and body the document declares. The examples per
operation are bounded and derandomized (the same cases every run), so the suite is deterministic and fits in CI;
shrinking is off because a failure is reported with the request that caused it, as a curl command.

Valid requests run on SQLite and, with half the examples, on PostgreSQL (odd text and numbers reach both drivers);
schema-violating ones are refused before any SQL, so they run on SQLite only, with half the examples too.
schemathesis drives the app from its own event-loop thread, so these tests are synchronous and let schemathesis
run the app's lifespan (migrations, Kafka consumers).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.settings import Settings
from shared.web.auth import Role, mint_token
from tests.fixtures.databases import sqlite_url
from tests.harness import build_app, service_settings

pytestmark = [
    pytest.mark.kafka,
    # schemathesis's own strategies trip this Hypothesis deprecation; it is theirs to fix, not a finding here.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

DATA_SERVICES = ("pledge", "warehouse", "dispatch", "recipient")
# Examples per operation for valid requests on SQLite; a deeper run sets e.g. AIDTRAIL_FUZZ_EXAMPLES=200.
EXAMPLES = int(os.environ.get("AIDTRAIL_FUZZ_EXAMPLES", "20"))
SECOND_PASS_EXAMPLES = max(1, EXAMPLES // 2)  # invalid requests, and the PostgreSQL pass over valid ones
AUDIT_EXAMPLES = max(1, EXAMPLES // 4)  # each audit call replays the (empty) log, and its routes take few inputs
STREAM_EXAMPLES = 3  # each call of an event stream starts a Kafka reader (seconds); its inputs are few filters
READY_DEADLINE_SECONDS = 60.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@contextmanager
def loaded_schema(service: str, settings_: Settings) -> Iterator[Any]:
    """The app's OpenAPI document, loaded through the running app; the app is stopped again on the way out."""
    app = build_app(service, settings_)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
        wait_ready(app)
        yield schema
    finally:
        shutdown_lifespans()


def wait_ready(app: Any) -> None:
    """Fuzz a service that is up: until Kafka is connected, /health/ready rightly answers 503."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    with get_client(app) as client:
        while client.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, f"not ready within {READY_DEADLINE_SECONDS:.0f}s"
            time.sleep(0.2)


def fuzz_operation(operation: Any, mode: schemathesis.GenerationMode, examples: int, headers: dict[str, str]) -> None:
    """Raise the first failing case of one operation, or return when `examples` cases all passed."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def failures_of(schema: Any, mode: schemathesis.GenerationMode, examples: int, token: str) -> list[str]:
    """Every operation is fuzzed even after one fails, so a run reports all of them at once."""
    headers = {"Authorization": f"Bearer {token}"}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            fuzz_operation(operation, mode, min(examples, STREAM_EXAMPLES) if streams(operation) else examples, headers)
        except pytest.skip.Exception:
            raise
        except BaseException as failure:  # schemathesis reports through BaseExceptionGroup
            if _is_unsatisfiable(failure):
                continue  # nothing to negate in an operation without inputs
            failures.append(f"--- {operation.label} ({mode.value}):\n{str(failure)[:3000]}")
    return failures


def streams(operation: Any) -> bool:
    ok = operation.definition.raw.get("responses", {}).get("200", {})
    return "text/event-stream" in ok.get("content", {})


def _is_unsatisfiable(failure: BaseException) -> bool:
    return type(failure).__name__ == "Unsatisfiable"


def fuzz(service: str, settings_: Settings, modes: list[schemathesis.GenerationMode], examples: int) -> None:
    token = mint_token("schemathesis", Role.admin, settings=settings_)
    with loaded_schema(service, settings_) as schema:
        failures = [failure for mode in modes for failure in failures_of(schema, mode, examples, token)]
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("service", DATA_SERVICES)
def test_valid_requests_get_documented_answers(
    service: str, database_url: str, topic_prefix: str, kafka_bootstrap: str
) -> None:
    settings_ = service_settings(service, database_url, topic_prefix, kafka_bootstrap)
    examples = EXAMPLES if database_url.startswith("sqlite") else SECOND_PASS_EXAMPLES
    fuzz(service, settings_, [schemathesis.GenerationMode.POSITIVE], examples)


@pytest.mark.parametrize("service", DATA_SERVICES)
def test_invalid_requests_get_documented_refusals(
    service: str, tmp_path: Path, topic_prefix: str, kafka_bootstrap: str
) -> None:
    settings_ = service_settings(service, sqlite_url(tmp_path), topic_prefix, kafka_bootstrap)
    fuzz(service, settings_, [schemathesis.GenerationMode.NEGATIVE], SECOND_PASS_EXAMPLES)


def test_audit_answers_as_documented(tmp_path: Path, topic_prefix: str, kafka_bootstrap: str) -> None:
    settings_ = service_settings("audit", sqlite_url(tmp_path), topic_prefix, kafka_bootstrap)
    fuzz("audit", settings_, list(schemathesis.GenerationMode), AUDIT_EXAMPLES)
