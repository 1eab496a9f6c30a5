"""Tamper evidence against the real broker: each kind of tampering is detected and named, and an exact
duplicate (the relay republishing after a crash) is dropped, not flagged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from services.audit.craft import CraftedLog
from services.audit.findings import TAMPER_CHECKS
from services.audit.replay import AuditOptions, AuditResult, replay
from services.audit.scenario import DONOR, Lifecycle, clean_lifecycle
from shared.events import reference_events as ref
from shared.events.envelope import Envelope, new_event_id
from shared.settings import Settings

pytestmark = pytest.mark.kafka


Tamper = Callable[[CraftedLog, Lifecycle], None]


async def audited(kafka_bootstrap: str, topic_prefix: str, tamper: Tamper) -> tuple[AuditResult, Lifecycle]:
    log = CraftedLog(Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap))
    life = clean_lifecycle(log)
    tamper(log, life)
    await log.publish()
    return await replay(log.settings, options=AuditOptions(now=log.clock)), life


def tamper_failures(result: AuditResult) -> set[str]:
    return {name for name in TAMPER_CHECKS if not result.check(name).passed}


def messages(result: AuditResult, check: str) -> list[str]:
    return [finding.message for finding in result.check(check).findings]


def drop_a_site(log: CraftedLog, _: Lifecycle) -> None:
    site = next(r.envelope for r in log.records if r.envelope.type == ref.SiteRegistered.event_type)
    log.drop(site.id)


def swap_two_registrations(log: CraftedLog, _: Lifecycle) -> None:
    first = log.emit("pledge", DONOR, ref.DonorRegistered(donor_id=DONOR, name="Jingdong"))
    second = log.emit("pledge", DONOR, ref.DonorRegistered(donor_id=DONOR, name="JD Logistics"))
    log.swap(first.id, second.id)


def change_the_inspector(log: CraftedLog, life: Lifecycle) -> None:
    log.change_payload(life.id("inspected"), inspector="qc-nobody")


async def test_gap_is_detected_and_named(kafka_bootstrap: str, topic_prefix: str) -> None:
    result, _ = await audited(kafka_bootstrap, topic_prefix, drop_a_site)
    assert tamper_failures(result) == {"chain-gap"}
    assert "dispatch: sequence 1 missing at the start of the chain" in messages(result, "chain-gap")[0]


async def test_reordered_event_is_detected_and_named(kafka_bootstrap: str, topic_prefix: str) -> None:
    result, _ = await audited(kafka_bootstrap, topic_prefix, swap_two_registrations)
    assert tamper_failures(result) == {"chain-reordered"}
    assert "pledge: sequence 3" in messages(result, "chain-reordered")[0]


async def test_changed_payload_is_detected_and_named(kafka_bootstrap: str, topic_prefix: str) -> None:
    result, life = await audited(kafka_bootstrap, topic_prefix, change_the_inspector)
    assert tamper_failures(result) == {"chain-changed-payload"}
    assert result.check("chain-changed-payload").findings[0].event_ids[0] == life.id("inspected")
    assert result.ok is False and result.failed_checks == ["chain-changed-payload"]


def unknown_source(log: CraftedLog, _: Lifecycle) -> None:
    data = {"donor_id": "donor-x", "name": "Ghost", "kind": "company", "country": None}
    log.inject(
        Envelope(
            type=ref.DonorRegistered.event_type,
            source="mallory",
            subject="donor-x",
            data=data,
            actor="admin:mallory",
            correlation_id="c",
        )
    )


def reused_sequence(log: CraftedLog, life: Lifecycle) -> None:
    genuine = log.records[log.index_of(life.id("received"))].envelope
    log.inject(replace(genuine, id=new_event_id(), data={**genuine.data, "lot": "FORGED"}))


def no_valid_link(log: CraftedLog, _: Lifecycle) -> None:
    head = log.chains["warehouse"]
    data = {"donor_id": "donor-y", "name": "Forged", "kind": "company", "country": None}
    forged = Envelope(
        type=ref.DonorRegistered.event_type,
        source="warehouse",
        subject="donor-y",
        data=data,
        actor="admin:mallory",
        correlation_id="c",
    ).chained(head.sequence + 1, "e" * 64)
    log.inject(forged)


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (unknown_source, "unknown source 'mallory'"),
        (reused_sequence, "is used twice with different content"),
        (no_valid_link, "has no valid link"),
    ],
)
async def test_injected_event_is_detected_and_named(
    kafka_bootstrap: str, topic_prefix: str, tamper: Tamper, named: str
) -> None:
    result, _ = await audited(kafka_bootstrap, topic_prefix, tamper)
    assert tamper_failures(result) == {"chain-injected"}
    assert named in messages(result, "chain-injected")[0]


async def test_exact_duplicate_is_dropped_not_flagged(kafka_bootstrap: str, topic_prefix: str) -> None:
    def republish(log: CraftedLog, life: Lifecycle) -> None:
        for name in ("received", "split", "delivered", "confirmed-rest"):
            log.duplicate(life.id(name))

    result, _ = await audited(kafka_bootstrap, topic_prefix, republish)
    assert result.ok, result.failed_checks
    assert result.stats.duplicates == 4
    assert sum(chain.duplicates for chain in result.chains.values()) == 4
