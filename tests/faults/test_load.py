"""Load: a steady concurrent load on all four services at once, whole journeys from pledge to signed receipt.

No command may fail, nothing may be lost or duplicated, every conservation check must pass, and no service's memory
may keep growing (see `MemoryTrend` for the criterion). CI runs it for AIDTRAIL_LOAD_SECONDS (30 s by default); the
same code runs for minutes with `python -m shared.devstack.load --minutes 5`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from shared.devstack.load import CI_SECONDS, LoadLimits, soak
from tests.faults.servers import PrivateKafka

LOAD_SECONDS_ENV = "AIDTRAIL_LOAD_SECONDS"


async def test_steady_load_on_all_four_services_has_no_errors_and_bounded_memory(
    private_broker: PrivateKafka, tmp_path: Path
) -> None:
    """On the fault tests' private broker, so that neither other tests' load on the shared one nor a fault test
    of someone else stopping it skews the figures."""
    await private_broker.start()
    limits = LoadLimits(seconds=float(os.environ.get(LOAD_SECONDS_ENV, CI_SECONDS)))
    result = await soak(tmp_path / "stack", private_broker.bootstrap, limits)
    figures = json.dumps(result.to_json(), indent=2)
    (tmp_path / "load-summary.json").write_text(figures + "\n", encoding="utf-8")
    print(f"\nload: {figures}")
    assert result.journeys > 0, "no journey completed"
    assert not result.recorder.errors, result.recorder.error_samples
    assert result.summary.lost == 0 and result.summary.duplicated == 0, result.summary.problems[:20]
    assert not result.summary.failed_checks and not result.summary.problems, result.summary.problems[:20]
    unbounded = [trend.to_json() | {"service": trend.service} for trend in result.memory if not trend.bounded]
    assert not unbounded, f"memory kept growing: {unbounded}"
