"""`docs/security.md`'s route tables, generated from the declared route policy so they cannot drift from the code.

Run `python -m shared.web.policy` to rewrite them; `tests/security/test_route_policy.py` fails when they are stale.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from shared.web.auth import Role
from shared.web.policy import DOCS_ROUTES, SCOPE_NAMES, SERVICES, Rule, routes_of

MARKER: Final = "<!-- generated:policy -->"
END_MARKER: Final = "<!-- /generated:policy -->"
ROLE_ORDER: Final = tuple(Role)
SECURITY_DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _cell(rule: Rule, role: Role | None) -> str:
    return "✓" if rule.admits(role) else ""


def _row(method: str, path: str, rule: Rule) -> str:
    cells = " | ".join(_cell(rule, role) for role in (None, *ROLE_ORDER))
    scope = ", ".join(f"own {SCOPE_NAMES[scope]}" for scope in sorted(rule.scope))
    return f"| {method} | `{path}` | {cells} | {scope} | {rule.note} |"


def policy_markdown() -> str:
    """One table per service: a row per route, a column per role; documentation routes are summarised once."""
    header = "| method | path | no token | " + " | ".join(role.value for role in ROLE_ORDER) + " | scoped to | note |"
    divider = "|---|---|---|" + "---|" * len(ROLE_ORDER) + "---|---|"
    sections: list[str] = []
    for service in SERVICES:
        rows = [f"### {service}", "", header, divider]
        rows += [
            _row(method, path, rule)
            for (_service, method, path), rule in routes_of(service)
            if path not in DOCS_ROUTES and method != "HEAD"
        ]
        sections.append("\n".join(rows))
    docs = ", ".join(f"`{path}`" for path in DOCS_ROUTES)
    sections.append(f"Every service also serves {docs} (GET and HEAD) publicly: they describe the API, not the data.")
    return "\n\n".join(sections)


def render_security_doc(text: str) -> str:
    """Replace the generated section of docs/security.md; the rest of the document is written by hand."""
    pattern = re.compile(re.escape(MARKER) + ".*?" + re.escape(END_MARKER), re.DOTALL)
    return pattern.sub(lambda _match: f"{MARKER}\n{policy_markdown()}\n{END_MARKER}", text)


def update_security_doc(path: Path = SECURITY_DOC) -> bool:
    """Rewrite the generated section; True if anything changed. Run `python -m shared.web.policy`."""
    current = path.read_text(encoding="utf-8")
    updated = render_security_doc(current)
    if updated != current:
        path.write_text(updated, encoding="utf-8")
    return updated != current
