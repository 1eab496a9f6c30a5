"""Reconciliation checks over the folded batches, once the replay has reached its end.

Rules within one batch are checked on its final state (the fold refuses events that would break them, and
those refusals are already findings; checking the state too keeps the rules written down in one readable
place). Rules across batches (a child holds what its parent split off, lineage, designation inherited through
splits) only the auditor can check, because no single batch's fold sees both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from services.audit.findings import FindingLog, Severity
from services.audit.sla import SlaPolicy
from services.audit.tracker import BatchTrack
from shared.domain.batch_state import BatchState, BatchStatus


def run_checks(
    tracks: Mapping[str, BatchTrack], findings: FindingLog, sla: SlaPolicy, now: datetime, partial: bool = False
) -> None:
    """`partial`: the replay started mid-log, so a parent born before the window is expected to be missing."""
    for track in tracks.values():
        if track.state is None:
            continue
        _pledge_rule(track, track.state, findings)
        _inspection_rule(track, track.state, findings)
        _stock_rule(track, track.state, findings)
        _transit_rule(track, track.state, findings)
        _receipt_rule(track, track.state, findings)
        _designation_rule(track, track.state, findings)
        _stuck_rule(track, track.state, findings, sla, now)
    for track in tracks.values():
        _split_rules(track, tracks, findings, partial)


def _pledge_rule(track: BatchTrack, state: BatchState, findings: FindingLog) -> None:
    if state.parent_batch_id or state.quantity_received == 0:
        return
    if state.quantity_pledged != state.quantity_received + state.shortfall:
        findings.add(
            "pledged-received-shortfall",
            f"batch {state.batch_id}: pledged {state.quantity_pledged} != received {state.quantity_received} "
            f"+ shortfall {state.shortfall}",
            [track.last_event_id],
            state.batch_id,
        )


def _inspection_rule(track: BatchTrack, state: BatchState, findings: FindingLog) -> None:
    if state.parent_batch_id or not state.inspected:
        return
    counted = state.accepted + state.rejected + state.quarantined
    if counted != state.quantity_received:
        findings.add(
            "received-inspected",
            f"batch {state.batch_id}: accepted {state.accepted} + rejected {state.rejected} + quarantined "
            f"{state.quarantined} = {counted}, but {state.quantity_received} were received",
            [track.last_event_id],
            state.batch_id,
        )


def _stock_rule(track: BatchTrack, state: BatchState, findings: FindingLog) -> None:
    if not state.inspected:
        return
    held = state.on_hand + state.split_out + state.written_off_stock + state.dispatched
    if held != state.accepted:
        findings.add(
            "stock-conserved",
            f"batch {state.batch_id}: on hand {state.on_hand} + split off {state.split_out} + written off "
            f"{state.written_off_stock} + dispatched {state.dispatched} = {held}, but {state.accepted} were accepted",
            [track.last_event_id],
            state.batch_id,
        )
    children = sum(quantity for _, quantity in state.children)
    if children != state.split_out:
        findings.add(
            "stock-conserved",
            f"batch {state.batch_id}: its children hold {children} but {state.split_out} were split off",
            [track.last_event_id],
            state.batch_id,
        )


def _transit_rule(track: BatchTrack, state: BatchState, findings: FindingLog) -> None:
    accounted = state.delivered + state.written_off_transit + state.in_transit
    if state.dispatched != accounted:
        findings.add(
            "transit-conserved",
            f"batch {state.batch_id}: dispatched {state.dispatched} != delivered {state.delivered} + written off in "
            f"transit {state.written_off_transit} + in transit {state.in_transit}",
            [track.last_event_id],
            state.batch_id,
        )


def _receipt_rule(track: BatchTrack, state: BatchState, findings: FindingLog) -> None:
    if state.status is not BatchStatus.CONFIRMED:
        return
    counted = state.confirmed_received + state.confirmed_damaged
    if counted == state.delivered:
        return
    severity = Severity.WARNING if counted < state.delivered else Severity.ERROR
    findings.add(
        "receipt-conserved",
        f"batch {state.batch_id}: {state.delivered} delivered to {state.delivered_to_recipient_id}, who confirmed "
        f"{state.confirmed_received} received + {state.confirmed_damaged} damaged; {state.delivered - counted} "
        "unaccounted for (a discrepancy reason is recorded on the confirmation)",
        [track.last_event_id],
        state.batch_id,
        severity,
    )


def _designation_rule(track: BatchTrack, state: BatchState, findings: FindingLog) -> None:
    designated, delivered_to = state.designated_recipient_id, state.delivered_to_recipient_id
    if designated and delivered_to and designated != delivered_to:
        findings.add(
            "designation-honoured",
            f"batch {state.batch_id} is designated to {designated} but was delivered to {delivered_to} "
            "without an approved redesignation",
            [track.delivered_event_id],
            state.batch_id,
        )
    for from_id, to_id, approved_by in state.redesignations:
        if not approved_by.strip():
            findings.add(
                "designation-honoured",
                f"batch {state.batch_id}: redesignation from {from_id} to {to_id} names no approver",
                [track.last_event_id],
                state.batch_id,
            )


def _stuck_rule(track: BatchTrack, state: BatchState, findings: FindingLog, sla: SlaPolicy, now: datetime) -> None:
    limit = sla.limit(track.phase or "")
    if limit is None or track.phase_since is None:
        return
    hours = (now - track.phase_since).total_seconds() / 3600
    if hours > limit:
        findings.add(
            "no-stuck-batches",
            f"batch {state.batch_id} has been {track.phase} since {track.phase_since.isoformat()} "
            f"({hours:.1f} h; SLA {limit:g} h)",
            [track.phase_event_id],
            state.batch_id,
        )


def _split_rules(track: BatchTrack, tracks: Mapping[str, BatchTrack], findings: FindingLog, partial: bool) -> None:
    """Both directions: each child names a parent that split it off; each split produced its child."""
    state = track.state
    if state is None:
        return
    if state.parent_batch_id and not (partial and state.parent_batch_id not in tracks):
        _check_parent(track, state, tracks, findings)
    for child_id, quantity in state.children:
        child = tracks.get(child_id)
        if child is None or child.state is None:
            split_event = track.split_events.get(child_id, (None, None))[0]
            findings.add(
                "lineage-intact",
                f"batch {state.batch_id} split {quantity} off to {child_id}, which never appears in the log",
                [split_event],
                state.batch_id,
            )


def _check_parent(track: BatchTrack, child: BatchState, tracks: Mapping[str, BatchTrack], findings: FindingLog) -> None:
    parent_track = tracks.get(child.parent_batch_id or "")
    parent = parent_track.state if parent_track else None
    if parent_track is None or parent is None:
        findings.add(
            "lineage-intact",
            f"batch {child.batch_id} names parent {child.parent_batch_id}, which is not in the log",
            [track.born_event_id],
            child.batch_id,
        )
        return
    quantities = dict(parent.children)
    split_event, designation = parent_track.split_events.get(child.batch_id, (None, None))
    ids = [split_event, track.born_event_id]
    if child.batch_id not in quantities:
        findings.add(
            "lineage-intact",
            f"batch {child.batch_id} claims to be split off {parent.batch_id}, which never split it off",
            ids,
            child.batch_id,
        )
        return
    if quantities[child.batch_id] != child.accepted:
        findings.add(
            "stock-conserved",
            f"batch {parent.batch_id} split {quantities[child.batch_id]} off to {child.batch_id}, "
            f"whose birth records {child.accepted}",
            ids,
            child.batch_id,
        )
    _check_inherited(child, parent, ids, findings)
    if designation != child.designated_recipient_id:
        findings.add(
            "designation-honoured",
            f"batch {child.batch_id} is designated to {child.designated_recipient_id}, but its parent "
            f"{parent.batch_id} was designated to {designation} when it was split",
            ids,
            child.batch_id,
        )


def _check_inherited(child: BatchState, parent: BatchState, ids: list[str | None], findings: FindingLog) -> None:
    root = parent.root_batch_id or parent.batch_id
    differing = [
        f"{name} {mine!r} vs {theirs!r}"
        for name, mine, theirs in (
            ("root", child.root_batch_id, root),
            ("pledge", child.pledge_id, parent.pledge_id),
            ("donor", child.donor_id, parent.donor_id),
            ("item", child.item, parent.item),
        )
        if mine != theirs
    ]
    if differing:
        findings.add(
            "lineage-intact",
            f"batch {child.batch_id} differs from its parent {parent.batch_id}: {', '.join(differing)}",
            ids,
            child.batch_id,
        )
