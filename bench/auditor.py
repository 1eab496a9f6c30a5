"""Finds and calls the auditor's replay, which another engineer is writing in services/audit.

Looked up by name at run time, so the benchmark measures the real auditor as soon as it lands and falls back to
the shared fold loop until then, without an edit here. Expected shape (from the brief):
`replay(settings, as_of=None, progress=False)`, sync or async; only the keyword arguments it accepts are passed.
`summary_only=True` when accepted: the replay checks and totals every batch but keeps only the open ones, which
is what a replay of a long log must do to keep its memory flat (the benchmark keeps no per-batch result).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

from shared.settings import Settings

AUDIT_PACKAGE = "services.audit"
PREFERRED_MODULES = ("replay", "audit", "service", "runner", "cli")

ReplayFunction = Callable[..., Any]


def _candidate_modules() -> list[str]:
    package = importlib.import_module(AUDIT_PACKAGE)
    names = [module.name for module in pkgutil.iter_modules(package.__path__)]
    preferred = [name for name in PREFERRED_MODULES if name in names]
    return [AUDIT_PACKAGE] + [f"{AUDIT_PACKAGE}.{name}" for name in preferred + sorted(set(names) - set(preferred))]


def _replay_in(module_name: str) -> ReplayFunction | None:
    try:
        module = importlib.import_module(module_name)
    except Exception:  # a module being written right now may not import yet; that is not our failure
        return None
    found = getattr(module, "replay", None)
    if not (inspect.isfunction(found) and inspect.signature(found).parameters):
        return None
    first = next(iter(inspect.signature(found).parameters))
    return found if first == "settings" else None


def find_replay() -> ReplayFunction | None:
    for module_name in _candidate_modules():
        found = _replay_in(module_name)
        if found is not None:
            return found
    return None


def where(replay: ReplayFunction) -> str:
    return f"{replay.__module__}.{replay.__qualname__}"


async def run_auditor(replay: ReplayFunction, settings: Settings) -> dict[str, Any]:
    """Call it with what it accepts; await or drain what it returns; keep a few numbers of its summary."""
    accepted = inspect.signature(replay).parameters
    wanted = (("as_of", None), ("progress", False), ("summary_only", True))
    options = {name: value for name, value in wanted if name in accepted}
    result = replay(settings, **options)
    if inspect.isawaitable(result):
        result = await result
    elif inspect.isasyncgen(result):
        result = [item async for item in result]
    return {"replay": where(replay), **_numbers(result)}


def _numbers(result: Any) -> dict[str, Any]:
    """What the auditor says about the run, for the notes: its own stats and the checks that failed (a valid
    generated log should fail none; if it does, the figures are still throughput, but the notes show it)."""
    summary: dict[str, Any] = {}
    stats = getattr(result, "stats", None)
    if stats is not None and callable(getattr(stats, "to_json", None)):
        summary.update(stats.to_json())
    failed = getattr(result, "failed_checks", None)
    if isinstance(failed, list):
        summary["failed_checks"] = failed
    return summary
