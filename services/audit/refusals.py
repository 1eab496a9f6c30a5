"""Which conservation rule a refused event tried to break.

The shared fold refuses any event that would break a conservation rule, so a broken rule never shows up in a
folded state: it shows up as a refused event. Each refusal is a finding of "fold-accepts-all"; a refusal that
is a rule violation (not merely an out-of-order transition) is also a finding of the rule it broke, so the
report names the broken rule, not just "the fold said no".
"""

from __future__ import annotations

from shared.domain.batch_state import BatchState
from shared.domain.errors import DomainError, RuleViolation
from shared.events import batch_events as ev

_RULE_BY_PAYLOAD: dict[type[ev.Payload], str] = {
    ev.BatchReceived: "pledged-received-shortfall",
    ev.BatchInspected: "received-inspected",
    ev.QuarantineResolved: "received-inspected",
    ev.BatchSplit: "stock-conserved",
    ev.BatchPicked: "stock-conserved",
    ev.BatchDispatched: "stock-conserved",
    ev.BatchRedesignated: "designation-honoured",
    ev.ReceiptConfirmed: "receipt-conserved",
}


def rule_of_refusal(payload: ev.Payload, before: BatchState | None, error: DomainError) -> str | None:
    """The named check a refused event breaks, or None when it is only an illegal transition."""
    if not isinstance(error, RuleViolation) or before is None:
        return None
    if isinstance(payload, ev.BatchAllocated):
        locked = before.designated_recipient_id and payload.recipient_id != before.designated_recipient_id
        return "designation-honoured" if locked else "stock-conserved"
    if isinstance(payload, ev.BatchWrittenOff):
        return "transit-conserved" if payload.stage is ev.WriteOffStage.TRANSIT else "stock-conserved"
    if isinstance(payload, ev.BatchDelivered):
        allocated = before.allocated_recipient_id
        return "designation-honoured" if allocated and payload.recipient_id != allocated else "transit-conserved"
    if isinstance(payload, ev.ReceiptConfirmed) and payload.recipient_id != before.delivered_to_recipient_id:
        return "designation-honoured"
    return _RULE_BY_PAYLOAD.get(type(payload))
