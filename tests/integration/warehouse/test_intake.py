"""The warehouse service: intake, inspection, quarantine, stock and write-off."""

from __future__ import annotations

from tests.harness import ServiceHandle
from tests.integration.warehouse.support import (
    FUTURE_EXPIRY,
    WAREHOUSE,
    command,
    fields,
    known,
    pledged,
    publish,
    read,
    stock_line,
    stored_events,
)

# --- intake, inspection, quarantine, stock, write-off ---------------------------------------------------------


async def test_intake_inspection_quarantine_stock_and_write_off(warehouse: ServiceHandle) -> None:
    await publish(warehouse.settings, [pledged("xiaomi-1-1", 1000), pledged("xiaomi-1-2", 500)])
    await known(warehouse, ["xiaomi-1-1", "xiaomi-1-2"])
    expected = (await read(warehouse, f"/sites/{WAREHOUSE}/expected-intake"))["items"]
    assert [fields(b, "batch_id", "quantity_pledged") for b in expected] == [("xiaomi-1-1", 1000), ("xiaomi-1-2", 500)]

    receipt = {"site_id": WAREHOUSE, "quantity_received": 980, "shortfall": 20, "shortfall_reason": "torn carton"}
    receipt |= {"lot": "XM-1", "expiry": FUTURE_EXPIRY, "condition": "damaged_packaging"}
    received = await command(warehouse, "/batches/xiaomi-1-1/receive", receipt)
    assert (received["status"], received["state"]["shortfall"]) == ("received", 20)
    assert (await stock_line(warehouse, "XM-1"))["awaiting_inspection"] == 980
    again = await command(warehouse, "/batches/xiaomi-1-1/receive", receipt, 409)
    assert again["current_state"] == "received" and "inspected" in again["allowed"]

    inspection = {"inspector": "qc-li", "standard_checked": "KN95", "accepted": 900, "rejected": 30, "quarantined": 50}
    wrong = await command(warehouse, "/batches/xiaomi-1-1/inspect", inspection, 422)
    assert "declared standard 'N95'" in wrong["message"]
    assert fields(wrong, "current_state", "allowed") == ("received", ["inspected", "redesignated"])
    inspection["standard_checked"] = "N95"
    sums = await command(warehouse, "/batches/xiaomi-1-1/inspect", {**inspection, "accepted": 901}, 422)
    assert "= 981, but 980 were received" in sums["message"]
    inspected = await command(warehouse, "/batches/xiaomi-1-1/inspect", inspection)
    assert inspected["status"] == "in_stock"
    assert fields(inspected["state"], "accepted", "rejected", "quarantined", "on_hand") == (900, 30, 50, 900)
    line = await stock_line(warehouse, "XM-1")
    assert fields(line, "on_hand", "reserved", "free", "quarantined", "batches") == (900, 0, 900, 50, 1)

    resolution = {"inspector": "qc-li", "released": 40, "rejected": 10, "notes": "certificates arrived"}
    resolved = await command(warehouse, "/batches/xiaomi-1-1/quarantine/resolve", resolution)
    assert fields(resolved["state"], "on_hand", "rejected", "quarantined") == (940, 40, 0)

    write_off = {"quantity": 15, "reason": "damaged", "note": "water damage"}
    written = await command(warehouse, "/batches/xiaomi-1-1/write-off", write_off)
    assert fields(written["state"], "on_hand", "written_off_stock") == (925, 15)
    too_much = await command(warehouse, "/batches/xiaomi-1-1/write-off", {**write_off, "quantity": 926}, 422)
    assert "only 925 free" in too_much["message"] and too_much["current_state"] == "in_stock"

    assert fields(await stock_line(warehouse, "XM-1"), "on_hand", "free", "quarantined") == (925, 925, 0)
    expected = (await read(warehouse, f"/sites/{WAREHOUSE}/expected-intake"))["items"]
    assert [b["batch_id"] for b in expected] == ["xiaomi-1-2"]
    assert await stored_events(warehouse, "xiaomi-1-1") == [
        "pledged",
        "received",
        "inspected",
        "quarantine-resolved",
        "written-off",
    ]
    history = await read(warehouse, "/batches/xiaomi-1-1/events")
    assert {e["actor"] for e in history[1:]} == {f"operator:op-{WAREHOUSE}"}
