"""Named checks and their findings: each finding says which events break which rule, so an auditor can act on it.

The number of findings a broken log can produce grows with the log, so each check keeps only the first
`limit` findings in memory and counts the rest; memory stays flat however bad the log is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"  # the check fails
    WARNING = "warning"  # worth a look, recorded with a reason, does not fail the check


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    title: str
    rule: str
    family: str  # "reconciliation" or "tamper"


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "events-readable",
        "Every record is a readable event",
        "each record decodes as a CloudEvent, "
        "its payload validates against its versioned model, and it is keyed by its batch",
        "reconciliation",
    ),
    CheckSpec(
        "fold-accepts-all",
        "No event refused by the fold",
        "every batch event is a transition the shared fold allows; a refused event is itself a finding",
        "reconciliation",
    ),
    CheckSpec(
        "pledged-received-shortfall",
        "Pledged = received + shortfall",
        "for every received batch, quantity pledged = quantity received + shortfall",
        "reconciliation",
    ),
    CheckSpec(
        "received-inspected",
        "Received = accepted + rejected + quarantined",
        "every received unit is accepted, rejected or still quarantined after inspection",
        "reconciliation",
    ),
    CheckSpec(
        "stock-conserved",
        "Accepted stock is accounted for",
        "accepted = sum of children + remainder on "
        "hand + stock write-offs + dispatched, and each child batch holds what its parent split off",
        "reconciliation",
    ),
    CheckSpec(
        "transit-conserved",
        "Dispatched = delivered + lost in transit + in transit",
        "everything that left a warehouse was delivered, written off in transit, or is still travelling",
        "reconciliation",
    ),
    CheckSpec(
        "receipt-conserved",
        "Delivered = confirmed + damaged",
        "what the recipient signed for adds up to what was delivered; a recorded discrepancy is a warning",
        "reconciliation",
    ),
    CheckSpec(
        "lineage-intact",
        "Lineage is unbroken",
        "every child batch names a parent that split it off, and shares its root, pledge, donor and item",
        "reconciliation",
    ),
    CheckSpec(
        "designation-honoured",
        "Designated goods reach their recipient",
        "a delivered batch reached its designated recipient, or was redesignated with a named approver",
        "reconciliation",
    ),
    CheckSpec(
        "no-stuck-batches", "No batch is stuck", "no batch stays in a state longer than its SLA", "reconciliation"
    ),
    CheckSpec(
        "chain-gap",
        "No gap in any service's chain",
        "each service's ce_sequence runs 1, 2, 3 ... without a missing number",
        "tamper",
    ),
    CheckSpec(
        "chain-reordered",
        "No reordered event",
        "within one partition a service's events appear in sequence order",
        "tamper",
    ),
    CheckSpec(
        "chain-changed-payload",
        "No changed event",
        "each event's recomputed content hash equals the ce_prevhash its successor recorded",
        "tamper",
    ),
    CheckSpec(
        "chain-injected",
        "No injected event",
        "every event links to its predecessor, no sequence "
        "number is used twice for different content, and every event carries a known source's chain",
        "tamper",
    ),
    CheckSpec(
        "chain-truncated",
        "Chains reach their anchored heads",
        "each chain reaches the head (sequence, hash) anchored outside the log, when one is given",
        "tamper",
    ),
)
CHECKS_BY_NAME = {spec.name: spec for spec in CHECKS}
TAMPER_CHECKS = tuple(spec.name for spec in CHECKS if spec.family == "tamper")


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    message: str
    event_ids: tuple[str, ...] = ()
    batch_id: str | None = None
    severity: Severity = Severity.ERROR

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.value,
            "batch_id": self.batch_id,
            "event_ids": list(self.event_ids),
            "message": self.message,
        }


@dataclass(slots=True)
class CheckResult:
    spec: CheckSpec
    findings: list[Finding] = field(default_factory=list)
    errors: int = 0
    warnings: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def passed(self) -> bool:
        return self.errors == 0

    @property
    def status(self) -> str:
        if self.errors:
            return "fail"
        return "warn" if self.warnings else "pass"

    @property
    def truncated(self) -> bool:
        return len(self.findings) < self.errors + self.warnings

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "title": self.spec.title,
            "rule": self.spec.rule,
            "family": self.spec.family,
            "status": self.status,
            "errors": self.errors,
            "warnings": self.warnings,
            "findings": [finding.to_json() for finding in self.findings],
            "truncated": self.truncated,
        }


class FindingLog:
    """Collects findings per check, keeping at most `limit` of each in memory and counting all of them."""

    def __init__(self, limit: int = 1000, names: Iterable[str] | None = None):
        self.limit = limit
        wanted = set(names) if names is not None else set(CHECKS_BY_NAME)
        self.results = {spec.name: CheckResult(spec) for spec in CHECKS if spec.name in wanted}

    def add(
        self,
        check: str,
        message: str,
        event_ids: Iterable[str | None] = (),
        batch_id: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        result = self.results.get(check)
        if result is None:
            return
        if severity is Severity.ERROR:
            result.errors += 1
        else:
            result.warnings += 1
        if len(result.findings) < self.limit:
            ids = tuple(event_id for event_id in event_ids if event_id)
            result.findings.append(Finding(check, message, ids, batch_id, severity))

    def checks(self) -> list[CheckResult]:
        return list(self.results.values())

    @property
    def ok(self) -> bool:
        return all(result.passed for result in self.results.values())
