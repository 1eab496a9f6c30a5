"""The AsyncAPI document: generated from the event models, valid for AsyncAPI's own CLI, current in docs/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator

from services.pledge.bootstrap import SPEC
from shared.contract import validator
from shared.contract.asyncapi import ContractOptions, build_document, message_id
from shared.contract.examples import PUBLISHERS, load_golden
from shared.contract.headers import HEADERS_SCHEMA_NAME
from shared.contract.render import DOCS_COPY, render_yaml, stale_reason
from shared.contract.schemas import SchemaConflict, add_component
from shared.events import batch_events as ev
from shared.events.envelope import Envelope, to_headers
from shared.events.registry import BATCH_EVENT_TYPES, PAYLOAD_BY_TYPE
from shared.settings import Settings
from shared.web.app_factory import create_app


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """Resolve `#/components/...` references against the document, as an AsyncAPI parser does."""
    return Draft202012Validator({**schema, "components": document["components"]})


def test_the_document_passes_the_asyncapi_cli_validator(tmp_path: Path) -> None:
    if validator.installed_version() is None:
        pytest.fail(validator.install_hint(), pytrace=False)
    path = tmp_path / "asyncapi.yaml"
    path.write_text(render_yaml(), encoding="utf-8")
    result = validator.validate(path)
    assert result.ok, f"asyncapi validate refused the generated document:\n{result.output}"


def test_the_docs_copy_is_current() -> None:
    reason = stale_reason(DOCS_COPY)
    assert reason is None, reason


def test_every_event_type_and_version_is_a_message_on_its_topic(document: dict[str, Any]) -> None:
    channels = document["channels"]
    for event_type, model in PAYLOAD_BY_TYPE.items():
        key = message_id(event_type)
        message = document["components"]["messages"][key]
        assert message["name"] == event_type
        assert message["payload"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        channel = "batchEvents" if event_type in BATCH_EVENT_TYPES else "referenceEvents"
        assert key in channels[channel]["messages"], f"{event_type} is missing from channel {channel}"
    operation_channels = {op["channel"]["$ref"] for op in document["operations"].values()}
    assert operation_channels == {f"#/channels/{name}" for name in channels}
    assert all(op["action"] == "receive" for op in document["operations"].values())


def test_payload_schemas_are_the_models_with_definitions_hoisted(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "$defs" not in str(document), "every $defs entry must be hoisted into components/schemas"
    assert schemas["Unit"]["enum"] == [unit.value for unit in ev.Unit]
    planned = schemas["ShipmentPlanned"]
    assert planned["properties"]["legs"]["items"] == {"$ref": "#/components/schemas/ShipmentLeg"}
    assert planned["additionalProperties"] is False, "extra=forbid must show in the contract"


def test_each_message_has_a_golden_example_valid_against_its_schemas(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    for event_type in PAYLOAD_BY_TYPE:
        message = messages[message_id(event_type)]
        (example,) = message["examples"]
        schema_validator(document, message["payload"]).validate(example["payload"])
        schema_validator(document, message["headers"]).validate(example["headers"])
        assert example["headers"]["ce_type"] == event_type


def test_an_invalid_payload_is_refused_by_the_published_schema(document: dict[str, Any]) -> None:
    message = document["components"]["messages"]["batch.pledged.v1"]
    payload = {**load_golden()["org.aidtrail.batch.pledged.v1"], "quantity": -5}
    assert not schema_validator(document, message["payload"]).is_valid(payload)
    assert not schema_validator(document, message["payload"]).is_valid({**payload, "quantity": 5, "extra": 1})


def test_the_headers_schema_accepts_what_the_envelope_writes(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"][HEADERS_SCHEMA_NAME]
    envelope = Envelope(
        type=ev.BatchPledged.event_type,
        source="pledge",
        subject="xiaomi-2020-01-1",
        data={},
        actor="donor:xiaomi",
        correlation_id="c-1",
        causation_id="cmd-1",
    ).chained(7, "ab" * 32)
    headers = {name: value.decode() for name, value in to_headers(envelope)}
    assert set(headers) <= set(schema["properties"]), "every header the envelope writes must be documented"
    assert set(schema["properties"]) - set(headers) == set(), "and every documented header is written"
    schema_validator(document, schema).validate(headers)
    assert not schema_validator(document, schema).is_valid({**headers, "ce_id": "not-a-uuid7"})


def test_every_event_type_names_who_publishes_it() -> None:
    assert set(PUBLISHERS) == set(PAYLOAD_BY_TYPE), "add the new event type to shared/contract/examples.py"
    services = {"pledge", "warehouse", "dispatch", "recipient"}
    assert all(set(publishers) <= services and publishers for publishers in PUBLISHERS.values())


def test_the_deployment_options_shape_topics_and_server() -> None:
    options = ContractOptions(topic_prefix="relief", partitions=12, kafka_bootstrap="k1:9093,k2:9093")
    document = build_document(options)
    batch = document["channels"]["batchEvents"]
    assert batch["address"] == "relief.batch-events"
    assert batch["bindings"]["kafka"]["partitions"] == 12
    assert document["servers"]["kafka"]["host"] == "k1:9093"


def test_a_name_clash_between_different_schemas_is_refused() -> None:
    components: dict[str, Any] = {"Unit": {"type": "string"}}
    add_component(components, "Unit", {"type": "string"})
    with pytest.raises(SchemaConflict, match="Unit"):
        add_component(components, "Unit", {"type": "integer"})


async def test_every_service_serves_its_own_contract() -> None:
    app = create_app(SPEC, Settings(topic_prefix="served", topic_partitions=3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pledge") as http:
        as_json = (await http.get("/asyncapi.json")).json()
        as_yaml = yaml.safe_load((await http.get("/asyncapi.yaml")).text)
    assert as_json == as_yaml
    assert as_json["channels"]["referenceEvents"]["address"] == "served.reference-events"
    assert as_json["channels"]["batchEvents"]["bindings"]["kafka"]["partitions"] == 3
