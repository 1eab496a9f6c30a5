"""The README's event catalogue and state table are generated from the code; this fails when they are stale."""

from __future__ import annotations

from shared.events.docs import render
from shared.settings import REPO_ROOT


def test_generated_readme_sections_are_current() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert render(readme) == readme, "run `aidtrail docs` to regenerate README.md"


def test_every_event_type_appears_in_the_readme() -> None:
    from shared.events.registry import PAYLOAD_BY_TYPE

    readme = (REPO_ROOT / "README.md").read_text()
    missing = [event_type for event_type in PAYLOAD_BY_TYPE if f"`{event_type}`" not in readme]
    assert not missing
