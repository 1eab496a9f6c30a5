"""The warehouse service: allocation priority, the designation lock, and concurrent runs."""

from __future__ import annotations

import asyncio

from shared.web.auth import Role
from tests.harness import ServiceHandle
from tests.integration.warehouse.support import (
    PAST_EXPIRY,
    WAREHOUSE,
    command,
    fields,
    known,
    need,
    needs_known,
    pledged,
    publish,
    read,
    receive_and_inspect,
    recipient,
    stock_line,
)

# --- allocation priority and the designation lock -------------------------------------------------------------


async def test_allocation_priority_and_designation_lock(warehouse: ServiceHandle) -> None:
    await publish(
        warehouse.settings,
        [
            pledged("open-1", 200),
            pledged("locked-1", 100, designated="union-hospital"),
            pledged("expired-1", 10),
            pledged("kits-1", 50, item="test-kit", standard=None),
            recipient("jinyintan", frontline=True),
            recipient("tongji", frontline=True),
            recipient("xiaogan", frontline=False),
            need("need-xiaogan", "xiaogan", 300, "2020-01-27T00:00:00Z"),
            need("need-jinyintan", "jinyintan", 150, "2099-02-10T00:00:00Z"),
            need("need-tongji", "tongji", 100, None),
        ],
    )
    await known(warehouse, ["open-1", "locked-1", "expired-1", "kits-1"])
    await needs_known(warehouse, 3)
    await receive_and_inspect(warehouse, "open-1", 200)
    await receive_and_inspect(warehouse, "locked-1", 100)
    await receive_and_inspect(warehouse, "expired-1", 10, expiry=PAST_EXPIRY)
    await receive_and_inspect(warehouse, "kits-1", 50, quarantined=5)

    run = await command(warehouse, "/allocations/run", {"site_id": WAREHOUSE})
    made = [fields(a, "batch_id", "need_id", "quantity", "priority_rank") for a in run["allocations"]]
    assert made == [("open-1", "need-jinyintan", 150, 1), ("open-1", "need-tongji", 50, 2)]
    why = {(u["batch_id"], u["reason"]): u for u in run["not_allocated"]}
    locked_out, expired = ("locked-1", "designated_recipient_has_no_need"), ("expired-1", "expired")
    assert set(why) == {locked_out, expired, ("kits-1", "quarantined"), ("kits-1", "no_open_need")}
    assert why[locked_out]["message"].startswith("designated to union-hospital, which has no open need for n95-mask")
    assert f"expired on {PAST_EXPIRY}" in why[expired]["message"]
    assert why[("kits-1", "no_open_need")]["quantity"] == 45

    locked = await command(warehouse, "/batches/locked-1/allocate", {"need_id": "need-xiaogan", "quantity": 100}, 422)
    assert "designation lock" in locked["message"]
    assert locked["current_state"] == "in_stock" and "allocated" in locked["allowed"]

    change = {"to_recipient_id": "xiaogan", "approved_by": "wuhan-charity-federation", "reason": "union has no need"}
    await command(warehouse, "/batches/locked-1/redesignate", change, 403)
    admin = warehouse.auth(Role.admin)
    typo = await command(
        warehouse, "/batches/locked-1/redesignate", {**change, "to_recipient_id": "xiaogn"}, 422, admin
    )
    assert "recipient xiaogn is not known to the warehouse" in typo["message"]
    redesignated = await command(warehouse, "/batches/locked-1/redesignate", change, headers=admin)
    assert redesignated["state"]["designated_recipient_id"] == "xiaogan"

    second = await command(warehouse, "/allocations/run", {})
    assert [fields(a, "batch_id", "need_id", "quantity") for a in second["allocations"]] == [
        ("locked-1", "need-xiaogan", 100)
    ]
    needs = (await read(warehouse, "/needs"))["items"]
    assert [fields(n, "need_id", "allocated", "remaining", "frontline") for n in needs] == [
        ("need-jinyintan", 150, 0, True),
        ("need-tongji", 50, 50, True),
        ("need-xiaogan", 100, 200, False),
    ]
    allocations = (await read(warehouse, "/allocations", recipient_id="tongji", status="open"))["items"]
    assert [fields(a, "batch_id", "quantity") for a in allocations] == [("open-1", 50)]
    assert fields(await stock_line(warehouse, "L-open-1"), "on_hand", "reserved", "free") == (200, 200, 0)


async def test_concurrent_runs_at_two_sites_never_allocate_more_than_a_need_lacks(warehouse: ServiceHandle) -> None:
    recipients_and_needs = [recipient("jinyintan", frontline=True), need("need-1", "jinyintan", 120, None)]
    await publish(
        warehouse.settings,
        [pledged("race-1", 100), pledged("race-2", 100, warehouse="wh-wuhan-2"), *recipients_and_needs],
    )
    await known(warehouse, ["race-1", "race-2"])
    await needs_known(warehouse, 1)
    await receive_and_inspect(warehouse, "race-1", 100)
    await receive_and_inspect(warehouse, "race-2", 100)

    sites = (WAREHOUSE, "wh-wuhan-2")
    runs = await asyncio.gather(*(warehouse.post("/allocations/run", json={"site_id": site}) for site in sites))
    assert [run.status_code for run in runs] == [200, 200]
    assert sorted(a["quantity"] for run in runs for a in run.json()["allocations"]) == [20, 100]
    [need_row] = (await read(warehouse, "/needs"))["items"]
    assert fields(need_row, "allocated", "remaining") == (120, 0)
