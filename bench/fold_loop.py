"""The replay-and-fold loop used until the auditor's replay exists: the least work an auditor must do per event.

Per record: decode the CloudEvent (from_record), read the payload in its newest version (parse_envelope) and apply
it to its batch's state (apply). A batch that reaches a final state is reduced to totals and dropped, as a
streaming auditor would: what stays in memory is the open batches, not the history.
"""

from __future__ import annotations

from aiokafka import ConsumerRecord

from shared.domain.batch_fold import apply
from shared.domain.batch_state import BatchState, BatchStatus
from shared.domain.errors import DomainError
from shared.events.envelope import EnvelopeError, from_record
from shared.events.registry import InvalidPayload, UnknownEventType, parse_envelope

FINAL = frozenset({BatchStatus.CONFIRMED, BatchStatus.CANCELLED, BatchStatus.WRITTEN_OFF, BatchStatus.REJECTED})
UNREADABLE = (EnvelopeError, UnknownEventType, InvalidPayload)


class FoldLoop:
    def __init__(self) -> None:
        self.open: dict[str, BatchState] = {}
        self.errors = 0
        self.totals: dict[str, int] = {"closed": 0, "pledged": 0, "confirmed_received": 0}

    def apply_records(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            self.apply_record(record)

    def apply_record(self, record: ConsumerRecord) -> None:
        try:
            envelope = from_record(record.headers, record.value)
            payload = parse_envelope(envelope)
            state = apply(self.open.get(envelope.subject), payload, envelope.subject)
        except (*UNREADABLE, DomainError):
            self.errors += 1
            return
        if state.status in FINAL:
            self.open.pop(envelope.subject, None)
            self._close(state)
        else:
            self.open[envelope.subject] = state

    def _close(self, state: BatchState) -> None:
        self.totals["closed"] += 1
        self.totals["pledged"] += state.quantity_pledged
        self.totals["confirmed_received"] += state.confirmed_received
