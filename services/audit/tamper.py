"""Verifies every service's hash chain and names what breaks it: a gap, a reordered event, a changed payload,
an injected event. Exact duplicates (the relay may publish an event twice after a crash) are dropped, not flagged.

Each service numbers its events 1, 2, 3 ... (`ce_sequence`) and stores in each the content hash of its previous
event (`ce_prevhash`). The events of one service are spread over partitions and topics, so they arrive nearly,
not exactly, in sequence order: a bounded window buffers early arrivals until the missing number shows up, and
declares a gap when the window overflows or the log ends. Memory is bounded by the windows, not the log.

How a broken link is named: if event k's `ce_prevhash` does not match the recomputed hash of event k-1, either
k-1 was changed or k is not genuine. The next event decides: if k+1 links to k, k is confirmed and k-1 is the
changed one; otherwise k is named injected. What this cannot prove is written in services/audit/README.md.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum

from services.audit.findings import FindingLog
from services.audit.records import LogRecord, slot_builder
from shared.events.envelope import GENESIS_HASH

DEFAULT_SOURCES = ("pledge", "warehouse", "dispatch", "recipient")


@dataclass(frozen=True, slots=True)
class Link:
    """What the chain keeps of one event: enough to check the next link and to name the event in a finding."""

    sequence: int
    event_id: str
    content_hash: str
    prev_hash: str
    topic: str
    partition: int
    offset: int

    @property
    def where(self) -> str:
        """Spelled out only for a finding: formatting it for every event cost more than keeping its parts."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


_link = slot_builder(Link)


class _Arrival(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    FLAGGED = "flagged"


@dataclass(slots=True)
class _Suspect:
    event: Link
    predecessor: Link | None


@dataclass(slots=True)
class SourceChain:
    source: str
    expected: int = 1
    last: Link | None = None
    anchored: bool = True  # False right after a gap or when starting mid-log: the next link cannot be checked
    pending: dict[int, Link] = field(default_factory=dict)
    recent: OrderedDict[int, Link] = field(default_factory=OrderedDict)
    suspect: _Suspect | None = None
    events: int = 0
    duplicates: int = 0

    @property
    def head_hash(self) -> str:
        return self.last.content_hash if self.last else GENESIS_HASH

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "events": self.events,
            "duplicates_dropped": self.duplicates,
            "head_sequence": self.last.sequence if self.last else 0,
            "head_hash": self.head_hash,
        }


class ChainVerifier:
    """Feed it every readable record in merged log order; `observe` returns False for an exact duplicate."""

    def __init__(
        self,
        findings: FindingLog,
        known_sources: Collection[str] | None = DEFAULT_SOURCES,
        reorder_window: int = 10_000,
        duplicate_window: int = 10_000,
        starts_mid_log: bool = False,
        anchors: Mapping[str, tuple[int, str]] | None = None,
    ):
        self.findings = findings
        self.known_sources = frozenset(known_sources) if known_sources is not None else None
        self.reorder_window = reorder_window
        self.duplicate_window = duplicate_window
        self.starts_mid_log = starts_mid_log
        self.anchors = dict(anchors or {})
        self.chains: dict[str, SourceChain] = {}
        self._partition_heads: dict[tuple[str, str, int], Link] = {}
        self._unchained: OrderedDict[str, str] = OrderedDict()

    def observe(self, record: LogRecord) -> bool:
        envelope = record.envelope
        assert envelope is not None and record.content_hash is not None
        if self.known_sources is not None and envelope.source not in self.known_sources:
            return self._unknown_source(record)
        if envelope.sequence is None or envelope.prev_hash is None:
            return self._unchained_event(record, f"event from {envelope.source} carries no ce_sequence/ce_prevhash")
        link = _link(
            envelope.sequence,
            envelope.id,
            record.content_hash,
            envelope.prev_hash,
            record.topic,
            record.partition,
            record.offset,
        )
        chain = self.chains.get(envelope.source) or self._new_chain(envelope.source, link.sequence)
        verdict = self._classify_arrival(chain, link)
        if verdict is _Arrival.DUPLICATE:
            chain.duplicates += 1
            return False
        if verdict is _Arrival.NEW:
            self._check_partition_order(chain, record, link)
            chain.pending[link.sequence] = link
            self._advance(chain)
        return True

    def finish(self) -> dict[str, SourceChain]:
        """At the end of the log: what is still waiting is behind a gap; an unresolved suspect is named."""
        for chain in self.chains.values():
            while chain.pending:
                self._declare_gap(chain)
            if chain.suspect is not None:
                self._name_injected(chain, chain.suspect, at_head=True)
                chain.suspect = None
            self._check_anchor_reached(chain)
        for source, (sequence, _) in self.anchors.items():
            if source not in self.chains:
                self.findings.add(
                    "chain-truncated",
                    f"{source}: anchored head is sequence {sequence}, but no event of it is in the log",
                )
        return self.chains

    # --- arrival ---------------------------------------------------------------------------------------------

    def _new_chain(self, source: str, first_sequence: int) -> SourceChain:
        chain = SourceChain(source)
        if self.starts_mid_log:
            chain.expected, chain.anchored = first_sequence, False
        self.chains[source] = chain
        return chain

    def _unknown_source(self, record: LogRecord) -> bool:
        envelope = record.envelope
        assert envelope is not None
        known = ", ".join(sorted(self.known_sources or ()))
        return self._unchained_event(record, f"event from unknown source {envelope.source!r} (known: {known})")

    def _unchained_event(self, record: LogRecord, why: str) -> bool:
        """Events outside every known chain cannot be verified; dedup them by id within a bounded window."""
        envelope = record.envelope
        assert envelope is not None and record.content_hash is not None
        seen = self._unchained.get(envelope.id)
        if seen == record.content_hash:
            return False
        self._unchained[envelope.id] = record.content_hash
        if len(self._unchained) > self.duplicate_window:
            self._unchained.popitem(last=False)
        self.findings.add("chain-injected", f"{why}, at {record.where}", [envelope.id], envelope.subject)
        return True

    def _classify_arrival(self, chain: SourceChain, link: Link) -> _Arrival:
        """Same sequence and same content hash (which covers the id) as an event already seen: a republication.
        The same sequence with other content, or a number the chain has long passed, is flagged as injected."""
        seen = chain.pending.get(link.sequence) or chain.recent.get(link.sequence)
        if seen is not None:
            if seen.content_hash == link.content_hash:
                return _Arrival.DUPLICATE
            self.findings.add(
                "chain-injected",
                f"{chain.source}: sequence {link.sequence} is used twice with different content: {link.event_id} at "
                f"{link.where} duplicates the number of {seen.event_id} at {seen.where}",
                [link.event_id, seen.event_id],
            )
            return _Arrival.FLAGGED
        if link.sequence < chain.expected:
            self.findings.add(
                "chain-injected",
                f"{chain.source}: sequence {link.sequence} arrives after the chain passed {chain.expected - 1}, at "
                f"{link.where}; beyond the {self.duplicate_window}-event duplicate window it cannot be compared",
                [link.event_id],
            )
            return _Arrival.FLAGGED
        return _Arrival.NEW

    def _check_partition_order(self, chain: SourceChain, record: LogRecord, link: Link) -> None:
        key = (chain.source, record.topic, record.partition)
        before = self._partition_heads.get(key)
        if before is not None and link.sequence < before.sequence:
            self.findings.add(
                "chain-reordered",
                f"{chain.source}: sequence {link.sequence} ({link.event_id}) comes after sequence {before.sequence} "
                f"({before.event_id}) in {record.topic}[{record.partition}], at {link.where}",
                [link.event_id, before.event_id],
            )
            return
        self._partition_heads[key] = link

    # --- linking ---------------------------------------------------------------------------------------------

    def _advance(self, chain: SourceChain) -> None:
        while chain.expected in chain.pending:
            self._link(chain, chain.pending.pop(chain.expected))
        if len(chain.pending) > self.reorder_window:
            self._declare_gap(chain)

    def _link(self, chain: SourceChain, link: Link) -> None:
        expected_prev = chain.head_hash
        if chain.suspect is not None:
            self._resolve_suspect(chain, confirmed=link.prev_hash == expected_prev)
        elif chain.anchored and link.prev_hash != expected_prev:
            chain.suspect = _Suspect(link, chain.last)
        chain.anchored = True
        self._accept(chain, link)

    def _resolve_suspect(self, chain: SourceChain, confirmed: bool) -> None:
        suspect = chain.suspect
        assert suspect is not None
        chain.suspect = None
        if confirmed:
            self._name_changed(chain, suspect)
        else:
            self._name_injected(chain, suspect, at_head=False)

    def _accept(self, chain: SourceChain, link: Link) -> None:
        chain.last = link
        chain.expected = link.sequence + 1
        chain.events += 1
        chain.recent[link.sequence] = link
        if len(chain.recent) > self.duplicate_window:
            chain.recent.popitem(last=False)
        anchor = self.anchors.get(chain.source)
        if anchor is not None and anchor[0] == link.sequence and anchor[1] != link.content_hash:
            self.findings.add(
                "chain-truncated",
                f"{chain.source}: sequence {link.sequence} ({link.event_id}) hashes to {link.content_hash[:16]}..., "
                f"not to the anchored head {anchor[1][:16]}...; the chain was rewritten",
                [link.event_id],
            )

    def _declare_gap(self, chain: SourceChain) -> None:
        first_after = min(chain.pending)
        after = f" after {chain.last.event_id}" if chain.last else " at the start of the chain"
        missing = f"{chain.expected}" if first_after == chain.expected + 1 else f"{chain.expected}..{first_after - 1}"
        self.findings.add(
            "chain-gap",
            f"{chain.source}: sequence {missing} missing{after}; the chain resumes at {first_after} "
            f"({chain.pending[first_after].event_id} at {chain.pending[first_after].where})",
            [chain.last.event_id if chain.last else None, chain.pending[first_after].event_id],
        )
        if chain.suspect is not None:
            self._name_injected(chain, chain.suspect, at_head=True)
            chain.suspect = None
        chain.expected, chain.anchored = first_after, False
        self._advance(chain)

    def _check_anchor_reached(self, chain: SourceChain) -> None:
        anchor = self.anchors.get(chain.source)
        head = chain.last.sequence if chain.last else 0
        if anchor is not None and head < anchor[0]:
            self.findings.add(
                "chain-truncated",
                f"{chain.source}: the chain ends at sequence {head} but its anchored head is {anchor[0]}; "
                f"{anchor[0] - head} event(s) were removed from the tail",
                [chain.last.event_id if chain.last else None],
            )

    # --- naming ----------------------------------------------------------------------------------------------

    def _name_changed(self, chain: SourceChain, suspect: _Suspect) -> None:
        changed = suspect.predecessor
        if changed is None:  # the first event does not start from the genesis hash, yet its successor links to it
            self._name_injected(chain, suspect, at_head=False)
            return
        self.findings.add(
            "chain-changed-payload",
            f"{chain.source}: event {changed.event_id} (sequence {changed.sequence}, at {changed.where}) was changed "
            f"after it was written: its content hashes to {changed.content_hash[:16]}..., but its successor "
            f"{suspect.event.event_id} recorded {suspect.event.prev_hash[:16]}...",
            [changed.event_id, suspect.event.event_id],
        )

    def _name_injected(self, chain: SourceChain, suspect: _Suspect, at_head: bool) -> None:
        event = suspect.event
        before = suspect.predecessor
        link_to = f"{before.event_id} (sequence {before.sequence})" if before else "the genesis hash"
        doubt = (
            f"; or {before.event_id} was changed (at a chain's head the two cannot be told apart)"
            if at_head and before
            else ""
        )
        self.findings.add(
            "chain-injected",
            f"{chain.source}: event {event.event_id} (sequence {event.sequence}, at {event.where}) has no valid "
            f"link: its ce_prevhash {event.prev_hash[:16]}... is not the hash of {link_to}{doubt}",
            [event.event_id],
        )
