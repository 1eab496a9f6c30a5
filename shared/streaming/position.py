"""The SSE event id: where a stream stands on every partition it reads, as a compact vector of next offsets.

    v1;b=12,5,0,7,0,0;r=3,0,0,0,0,0

`b` is the batch topic, `r` the reference topic; the n-th number is the next offset to read on partition n.
Because the id carries the whole position, a client that reconnects with `Last-Event-ID` is resumed exactly
(nothing missed, nothing repeated) by any server process, including one started after a restart: the server
keeps no session state. Partitions added to a topic later are read from their beginning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition

VERSION = "v1"
TOPIC_CODES = ("b", "r")
MAX_ID_LENGTH = 4096


class InvalidPosition(ValueError):
    """A Last-Event-ID we did not write; the message says what a valid one looks like."""


@dataclass(frozen=True)
class TopicCodes:
    """Maps the topic names of this deployment to the one-letter codes in the id."""

    batch: str
    reference: str

    def code(self, topic: str) -> str:
        return "b" if topic == self.batch else "r"

    def topic(self, code: str) -> str:
        return self.batch if code == "b" else self.reference


def encode(offsets: Mapping[TopicPartition, int], codes: TopicCodes) -> str:
    parts = [VERSION]
    for code in TOPIC_CODES:
        topic = codes.topic(code)
        numbered = sorted((tp.partition, offset) for tp, offset in offsets.items() if tp.topic == topic)
        if numbered:
            dense = [0] * (numbered[-1][0] + 1)
            for partition, offset in numbered:
                dense[partition] = offset
            parts.append(f"{code}={','.join(str(offset) for offset in dense)}")
    return ";".join(parts)


def decode(text: str, codes: TopicCodes) -> dict[TopicPartition, int]:
    """Parse an id written by `encode`; raise InvalidPosition naming what is wrong."""
    text = text.strip()
    if len(text) > MAX_ID_LENGTH:
        raise InvalidPosition(f"Last-Event-ID is longer than {MAX_ID_LENGTH} characters")
    version, *sections = text.split(";")
    if version != VERSION:
        raise InvalidPosition(f"Last-Event-ID {text[:40]!r} is not a stream position (expected {VERSION};b=...;r=...)")
    offsets: dict[TopicPartition, int] = {}
    for section in sections:
        code, _, numbers = section.partition("=")
        if code not in TOPIC_CODES or not numbers:
            raise InvalidPosition(f"Last-Event-ID section {section[:40]!r} is not b=<offsets> or r=<offsets>")
        offsets.update(_offsets(codes.topic(code), numbers.split(",")))
    return offsets


def _offsets(topic: str, numbers: Iterable[str]) -> dict[TopicPartition, int]:
    offsets = {}
    for partition, number in enumerate(numbers):
        if not number.isdigit():
            raise InvalidPosition(f"Last-Event-ID offset {number[:20]!r} is not a non-negative integer")
        offsets[TopicPartition(topic, partition)] = int(number)
    return offsets
