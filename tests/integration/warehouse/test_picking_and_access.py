"""The warehouse service: picking and splitting, idempotent replays and site scope."""

from __future__ import annotations

from shared.web.auth import Role
from tests.harness import ServiceHandle
from tests.integration.warehouse.support import (
    FUTURE_EXPIRY,
    WAREHOUSE,
    command,
    fields,
    known,
    need,
    needs_known,
    operator,
    pledged,
    publish,
    read,
    receive_and_inspect,
    recipient,
    stock_line,
    stored_events,
)

# --- picking and splitting ------------------------------------------------------------------------------------


async def test_partial_pick_splits_a_child_and_whole_pick_picks_the_batch(warehouse: ServiceHandle) -> None:
    need_and_recipient = [recipient("tongji", frontline=True), need("need-1", "tongji", 1000, None)]
    await publish(warehouse.settings, [pledged("split-1", 100), *need_and_recipient])
    await known(warehouse, ["split-1"])
    await needs_known(warehouse, 1)
    await receive_and_inspect(warehouse, "split-1", 100)
    first = await command(warehouse, "/batches/split-1/allocate", {"need_id": "need-1", "quantity": 30})
    second = await command(warehouse, "/batches/split-1/allocate", {"need_id": "need-1", "quantity": 70})
    assert second["status"] == "allocated"
    first_id, second_id = (result["state"]["allocations"][-1]["allocation_id"] for result in (first, second))

    partial = await command(warehouse, f"/allocations/{first_id}/pick", {"picker": "zhang"})
    assert fields(partial, "split", "picked_batch_id") == (True, "split-1.1")
    child, parent = partial["child"]["state"], partial["parent"]["state"]
    assert fields(child, "parent_batch_id", "root_batch_id", "status") == ("split-1", "split-1", "picked")
    assert fields(child, "lot", "expiry", "item") == ("L-split-1", FUTURE_EXPIRY, "n95-mask")
    assert child["on_hand"] + parent["on_hand"] == 100
    assert fields(parent, "children", "split_out") == ([["split-1.1", 30]], 30)
    child_events = await read(warehouse, "/batches/split-1.1/events")
    assert [e["type"].split(".")[-2] for e in child_events] == ["split-created", "picked"]
    assert child_events[0]["data"]["parent_batch_id"] == "split-1"
    assert child_events[1]["causation_id"] == partial["parent"]["event_ids"][0]

    whole = await command(warehouse, f"/allocations/{second_id}/pick", {"picker": "zhang"})
    assert (whole["split"], whole["picked_batch_id"], whole["parent"]["status"]) == (False, "split-1", "picked")
    assert whole["parent"]["state"]["on_hand"] == 70
    again = await command(warehouse, f"/allocations/{second_id}/pick", {"picker": "zhang"}, 409)
    assert fields(again, "current_state", "allowed") == ("picked", ["dispatched", "written-off"])

    picked = (await read(warehouse, "/allocations", status="picked"))["items"]
    assert sorted(fields(a, "batch_id", "quantity") for a in picked) == [("split-1", 70), ("split-1.1", 30)]
    line = await stock_line(warehouse, "L-split-1")
    assert fields(line, "on_hand", "reserved", "free", "batches") == (100, 100, 0, 2)
    assert await stored_events(warehouse, "split-1") == [
        "pledged",
        "received",
        "inspected",
        "allocated",
        "allocated",
        "split",
        "picked",
    ]


# --- idempotency and access -----------------------------------------------------------------------------------


async def test_idempotent_replay_and_site_scope(warehouse: ServiceHandle) -> None:
    await publish(warehouse.settings, [pledged("idem-1", 100)])
    await known(warehouse, ["idem-1"])
    receipt = {"site_id": WAREHOUSE, "quantity_received": 100, "lot": "L1"}
    other_site = await command(warehouse, "/batches/idem-1/receive", receipt, 403, operator(warehouse, "wh-xiantao"))
    assert "may not act on site 'wh-wuhan-1'" in other_site["message"]
    await command(warehouse, "/batches/idem-1/receive", receipt, 403, warehouse.auth(Role.auditor, subject="audit"))

    keyed = {**operator(warehouse), "Idempotency-Key": "receive-idem-1"}
    first = await warehouse.post("/batches/idem-1/receive", json=receipt, headers=keyed)
    replay = await warehouse.post("/batches/idem-1/receive", json=receipt, headers=keyed)
    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json() and replay.headers.get("Idempotent-Replay") == "true"
    assert await stored_events(warehouse, "idem-1") == ["pledged", "received"]
    changed = await command(warehouse, "/batches/idem-1/receive", {**receipt, "lot": "L2"}, 422, keyed)
    assert "already used for a different request" in changed["message"]
    assert await stored_events(warehouse, "idem-1") == ["pledged", "received"]

    hub = {
        "site_id": "hub-xiantao",
        "name": "Xiantao relay hub",
        "kind": "relay_hub",
        "city": "Xiantao",
        "country": "CN",
    }
    await command(warehouse, "/sites", hub, 403)
    admin_keyed = {**warehouse.auth(Role.admin), "Idempotency-Key": "site-1"}
    created = await command(warehouse, "/sites", hub, 201, admin_keyed)
    assert await command(warehouse, "/sites", hub, 201, admin_keyed) == created
    await command(warehouse, "/sites", hub, 409, warehouse.auth(Role.admin))
    hubs = await warehouse.get("/sites", params={"kind": "relay_hub"}, role=Role.auditor)
    assert [s["site_id"] for s in hubs.json()["items"]] == ["hub-xiantao"]
    assert await stored_events(warehouse, "hub-xiantao") == ["registered"]

    unknown = await command(warehouse, "/batches/nope-1/receive", receipt, 404)
    assert "not known to the warehouse (yet)" in unknown["message"]
    bad = await command(warehouse, "/batches/idem-1/write-off", {"quantity": 0, "reason": "stolen", "note": "x"}, 422)
    assert "quantity" in bad["message"] and "reason" in bad["message"]
