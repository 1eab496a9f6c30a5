"""Builds the AsyncAPI 3.0 document of aidtrail's Kafka topics from the event registry.

One channel per topic (batch events, reference events, dead letters) with its key and partition semantics in
Kafka bindings; one message per event type and version, whose payload schema comes from the pydantic model and
whose headers are the CloudEvents ones; one `receive` operation per channel, because apps outside aidtrail only
ever read. Everything is derived from `shared.events` and the settings' defaults, so the document is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

from pydantic import TypeAdapter

from shared.contract.examples import PUBLISHERS, load_golden, message_examples
from shared.contract.headers import HEADERS_SCHEMA_NAME, headers_schema
from shared.contract.schemas import add_component, payload_components, schema_ref
from shared.events.batch_events import BATCH_PAYLOADS, Ident, Payload
from shared.events.reference_events import REFERENCE_PAYLOADS
from shared.settings import Settings

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
EVENT_TYPE_PREFIX = "org.aidtrail."
DEAD_LETTER_MESSAGE = "dead-letter"
GROUP_ID_PATTERN = r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$"


@dataclass(frozen=True)
class ContractOptions:
    """What differs between deployments. The defaults are the settings' defaults, never the environment's,
    so the committed docs/asyncapi.yaml does not depend on who generated it."""

    topic_prefix: str = Settings.model_fields["topic_prefix"].default
    partitions: int = Settings.model_fields["topic_partitions"].default
    replication: int = Settings.model_fields["topic_replication"].default
    kafka_bootstrap: str = Settings.model_fields["kafka_bootstrap"].default
    security_protocol: str = Settings.model_fields["kafka_security_protocol"].default

    @classmethod
    def from_settings(cls, settings: Settings) -> ContractOptions:
        return cls(
            topic_prefix=settings.topic_prefix,
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
            kafka_bootstrap=settings.kafka_bootstrap,
            security_protocol=settings.kafka_security_protocol,
        )


@dataclass(frozen=True)
class ChannelSpec:
    """One topic as a channel: its id in the document, its name suffix and what its key means."""

    channel_id: str
    suffix: str
    title: str
    key: str
    models: tuple[type[Payload], ...]
    description: str


CHANNELS = (
    ChannelSpec(
        "batchEvents",
        "batch-events",
        "Batch events",
        "the batch id (= ce_subject)",
        BATCH_PAYLOADS,
        "Every event of every batch, from pledge to signed receipt, whichever service wrote it. The key is the "
        "batch id, so all events of one batch are on one partition in the order they happened (total order "
        "within a batch, none across batches). Kept forever (retention.ms=-1, no compaction).",
    ),
    ChannelSpec(
        "referenceEvents",
        "reference-events",
        "Reference events",
        "the entity id (= ce_subject): donor, pledge, site, recipient, need or shipment id",
        REFERENCE_PAYLOADS,
        "Events about what batches refer to: donors, pledges, sites, recipients, needs, shipments. The key is "
        "the entity's id, so the events of one entity are ordered; nothing is ordered across entities or "
        "against the batch topic. Kept forever.",
    ),
)


def contract_version() -> str:
    try:
        return metadata.version("aidtrail")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        return "0.0.0"


def message_id(event_type: str) -> str:
    """`org.aidtrail.batch.pledged.v1` -> `batch.pledged.v1`: readable, and valid as a component key."""
    return event_type.removeprefix(EVENT_TYPE_PREFIX)


def _key_schema(description: str) -> dict[str, Any]:
    """Keys are ids, so they follow the `Ident` rules of the payloads."""
    return {**TypeAdapter(Ident).json_schema(), "description": f"Record key: {description}. It picks the partition."}


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0].strip() if text and text.strip() else None


def event_message(model: type[Payload], spec: ChannelSpec, golden: dict[str, dict[str, Any]]) -> dict[str, Any]:
    event_type = model.event_type
    message: dict[str, Any] = {
        "name": event_type,
        "title": f"{model.__name__} ({event_type.rsplit('.', 1)[-1]})",
        "summary": _first_line(model.__doc__) or f"The {event_type} event.",
        "contentType": "application/json",
        "headers": {
            "allOf": [
                schema_ref(HEADERS_SCHEMA_NAME),
                {"type": "object", "properties": {"ce_type": {"type": "string", "const": event_type}}},
            ]
        },
        "payload": schema_ref(model.__name__),
        "correlationId": {
            "description": "Shared by every event one request caused.",
            "location": "$message.header#/ce_correlationid",
        },
        "bindings": {"kafka": {"key": _key_schema(spec.key), "bindingVersion": KAFKA_BINDING_VERSION}},
        "x-aidtrail-publishers": list(PUBLISHERS[event_type]),
    }
    examples = message_examples(event_type, golden)
    if examples:
        message["examples"] = examples
    return message


def dead_letter_message() -> dict[str, Any]:
    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": "Dead letter",
        "summary": "A record some consumer could not apply, with the reason.",
        "description": (
            "The original record's headers and value, plus dlq_reason (why), dlq_consumer (which consumer "
            "group) and dlq_origin (topic/partition/offset of the original). Later events of the same batch "
            "are parked behind it by that consumer, never applied out of order."
        ),
        "headers": {
            "type": "object",
            "properties": {
                "dlq_reason": {"type": "string", "description": "Why the record could not be applied."},
                "dlq_consumer": {"type": "string", "description": "The consumer group that parked it."},
                "dlq_origin": {"type": "string", "description": "topic/partition/offset of the original record."},
            },
            "required": ["dlq_reason", "dlq_consumer", "dlq_origin"],
            "additionalProperties": {"type": "string", "description": "The original record's headers."},
        },
        "payload": {"description": "The original record value, unchanged (usually a JSON object; maybe not)."},
        "bindings": {
            "kafka": {"key": _key_schema("the original record's key"), "bindingVersion": KAFKA_BINDING_VERSION}
        },
    }


def _channel_bindings(options: ContractOptions, topic: str) -> dict[str, Any]:
    return {
        "kafka": {
            "topic": topic,
            "partitions": options.partitions,
            "replicas": options.replication,
            "topicConfiguration": {"cleanup.policy": ["delete"], "retention.ms": -1},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


def event_channel(spec: ChannelSpec, options: ContractOptions) -> dict[str, Any]:
    topic = f"{options.topic_prefix}.{spec.suffix}"
    return {
        "address": topic,
        "title": spec.title,
        "description": f"{spec.description} Partitions: {options.partitions}; key: {spec.key}.",
        "messages": {
            message_id(m.event_type): {"$ref": f"#/components/messages/{message_id(m.event_type)}"} for m in spec.models
        },
        "bindings": _channel_bindings(options, topic),
    }


def dead_letter_channel(options: ContractOptions) -> dict[str, Any]:
    topic = f"{options.topic_prefix}.dead-letter"
    return {
        "address": topic,
        "title": "Dead letters",
        "description": "Records a service's consumer could not apply, with the reason. Keyed like the original.",
        "messages": {DEAD_LETTER_MESSAGE: {"$ref": f"#/components/messages/{DEAD_LETTER_MESSAGE}"}},
        "bindings": _channel_bindings(options, topic),
    }


def receive_operation(channel_id: str, channel: dict[str, Any], summary: str) -> dict[str, Any]:
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"} for name in channel["messages"]],
        "bindings": {
            "kafka": {
                "groupId": {
                    "type": "string",
                    "description": "Your app's own consumer group, <app>.<purpose>; never a service's group.",
                    "pattern": GROUP_ID_PATTERN,
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _server(options: ContractOptions) -> dict[str, Any]:
    hosts = [host.strip() for host in options.kafka_bootstrap.split(",") if host.strip()]
    secure = options.security_protocol != "PLAINTEXT"
    return {
        "host": hosts[0],
        "protocol": "kafka-secure" if secure else "kafka",
        "description": (
            f"Bootstrap servers: {', '.join(hosts)} (AIDTRAIL_KAFKA_BOOTSTRAP); security protocol "
            f"{options.security_protocol} (AIDTRAIL_KAFKA_SECURITY_PROTOCOL)."
        ),
    }


INFO_DESCRIPTION = """\
Kafka topics of aidtrail, which follows donated relief materials from a donor's pledge through warehouses and
relay hubs to a signed receipt. Every record is a CloudEvents 1.0 event in Kafka binary mode: the attributes are
`ce_` headers, the value is the JSON payload described by the message's schema (chosen by `ce_type`).

* Ordering: the batch topic is keyed by batch id, so one batch's events are totally ordered; there is no order
  across batches or topics.
* Delivery is at-least-once: drop a record whose `ce_id` you have already processed.
* Old versions of an event type stay on the log forever; read them through an upcaster to the newest version.
* Apps without Kafka can follow the same events over Server-Sent Events: `GET /events/stream` (docs/streaming.md).

Generated from the event models by `aidtrail contract asyncapi`; do not edit by hand.
"""


def build_document(options: ContractOptions | None = None) -> dict[str, Any]:
    """The whole AsyncAPI document as plain data, ready for YAML or JSON."""
    options = options or ContractOptions()
    golden = load_golden()
    channels: dict[str, Any] = {spec.channel_id: event_channel(spec, options) for spec in CHANNELS}
    channels["deadLetters"] = dead_letter_channel(options)
    messages = {
        message_id(model.event_type): event_message(model, spec, golden) for spec in CHANNELS for model in spec.models
    }
    messages[DEAD_LETTER_MESSAGE] = dead_letter_message()
    schemas = payload_components(model for spec in CHANNELS for model in spec.models)
    add_component(schemas, HEADERS_SCHEMA_NAME, headers_schema())
    summaries = {
        "batchEvents": "Follow every batch's events.",
        "referenceEvents": "Follow donors, pledges, sites, recipients, needs and shipments.",
        "deadLetters": "Watch records that some consumer could not apply.",
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:org:aidtrail:events",
        "info": {
            "title": "aidtrail events",
            "version": contract_version(),
            "description": INFO_DESCRIPTION,
            "tags": [{"name": "cloudevents"}, {"name": "kafka"}],
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": _server(options)},
        "channels": channels,
        "operations": {
            f"receive{cid[0].upper()}{cid[1:]}": receive_operation(cid, channel, summaries[cid])
            for cid, channel in channels.items()
        },
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
    }
