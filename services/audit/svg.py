"""Pictures for the HTML report, drawn as inline SVG by our own code: no external assets, no JavaScript.

`sankey` draws the flow of quantities from donors (left) through warehouses and hubs to recipients, with losses
(shortfall, rejection, write-offs) in the rightmost column. Band widths are proportional to quantities. Flows
that stay within a column (hub to hub) are listed in the report's tables but not drawn.
`milestones` draws one batch's life as dots on a time line.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from html import escape
from typing import Any

KIND_COLOURS = {
    "donor": "#2f6f9f",
    "warehouse": "#6a8d3a",
    "hub": "#b07d2b",
    "recipient": "#7b4f9d",
    "loss": "#b03a3a",
}
LOSS_COLUMN = 4
NODE_WIDTH = 14
GAP = 12
MARGIN = 10
LABEL_SPACE = 150


def sankey(graph: dict[str, Any], width: int = 1000, height: int = 420) -> str:
    nodes = {node["id"]: node for node in graph["nodes"]}
    links = [link for link in graph["links"] if nodes[link["source"]]["column"] < nodes[link["target"]]["column"]]
    if not links:
        return _empty(width, "no quantities moved yet")
    value = _node_values(links)
    columns: dict[int, list[str]] = defaultdict(list)
    for node_id in sorted(value, key=lambda n: (nodes[n]["column"], -value[n], n)):
        columns[nodes[node_id]["column"]].append(node_id)
    scale = min((height - 2 * MARGIN - GAP * (len(ids) - 1)) / sum(value[n] for n in ids) for ids in columns.values())
    x_step = (width - 2 * MARGIN - LABEL_SPACE - NODE_WIDTH) / max(max(columns), 1)
    x = {n: MARGIN + nodes[n]["column"] * x_step for n in value}
    y = _stack(columns, value, scale, height)
    parts = [_bands(links, x, y, scale, nodes), _boxes(value, x, y, scale, nodes)]
    return _svg(width, height, "".join(parts), "Flow of quantities from donors to recipients")


def _node_values(links: list[dict[str, Any]]) -> dict[str, int]:
    incoming: dict[str, int] = defaultdict(int)
    outgoing: dict[str, int] = defaultdict(int)
    for link in links:
        outgoing[link["source"]] += link["quantity"]
        incoming[link["target"]] += link["quantity"]
    return {n: max(incoming[n], outgoing[n]) for n in set(incoming) | set(outgoing)}


def _stack(columns: dict[int, list[str]], value: dict[str, int], scale: float, height: int) -> dict[str, float]:
    """Stack each column's nodes from the top; losses from the bottom, so their bands run below the main flow."""
    y: dict[str, float] = {}
    for column, ids in columns.items():
        used = sum(value[n] * scale for n in ids) + GAP * (len(ids) - 1)
        top = float(MARGIN) if column != LOSS_COLUMN else height - MARGIN - used
        for node_id in ids:
            y[node_id] = top
            top += value[node_id] * scale + GAP
    return y


def _bands(
    links: list[dict[str, Any]], x: dict[str, float], y: dict[str, float], scale: float, nodes: dict[str, Any]
) -> str:
    out_offset: dict[str, float] = defaultdict(float)
    in_offset: dict[str, float] = defaultdict(float)
    paths = []
    for link in sorted(links, key=lambda item: (y[item["source"]], y[item["target"]])):
        source, target, quantity = link["source"], link["target"], link["quantity"]
        band = quantity * scale
        y0 = y[source] + out_offset[source] + band / 2
        y1 = y[target] + in_offset[target] + band / 2
        out_offset[source] += band
        in_offset[target] += band
        x0, x1 = x[source] + NODE_WIDTH, x[target]
        middle = (x0 + x1) / 2
        colour = KIND_COLOURS.get(nodes[target]["kind"], "#888")
        title = f"{nodes[source]['label']} -> {nodes[target]['label']}: {quantity:,}"
        paths.append(
            f'<path d="M{x0:.1f},{y0:.1f} C{middle:.1f},{y0:.1f} {middle:.1f},{y1:.1f} {x1:.1f},{y1:.1f}" '
            f'fill="none" stroke="{colour}" stroke-opacity="0.35" stroke-width="{max(band, 1):.1f}">'
            f"<title>{escape(title)}</title></path>"
        )
    return "".join(paths)


def _boxes(value: dict[str, int], x: dict[str, float], y: dict[str, float], scale: float, nodes: dict[str, Any]) -> str:
    boxes = []
    for node_id, quantity in value.items():
        node = nodes[node_id]
        h = max(quantity * scale, 1)
        label = f"{node['label']} ({quantity:,})"
        boxes.append(
            f'<rect x="{x[node_id]:.1f}" y="{y[node_id]:.1f}" width="{NODE_WIDTH}" height="{h:.1f}" '
            f'fill="{KIND_COLOURS.get(node["kind"], "#888")}"><title>{escape(label)}</title></rect>'
            f'<text x="{x[node_id] + NODE_WIDTH + 4:.1f}" y="{y[node_id] + h / 2 + 4:.1f}" '
            f'font-size="11">{escape(label)}</text>'
        )
    return "".join(boxes)


def milestones(points: dict[str, datetime], start: datetime, end: datetime, width: int = 560) -> str:
    """One batch's phases as dots on a line from `start` to `end`; hover shows the phase and its time."""
    height, line = 44, 20
    span = max((end - start).total_seconds(), 1.0)
    left, right = 24, width - 24
    items = [f'<line x1="{left}" y1="{line}" x2="{right}" y2="{line}" stroke="#bbb" stroke-width="2"/>']
    for index, (phase, moment) in enumerate(sorted(points.items(), key=lambda item: item[1])):
        cx = left + (right - left) * (moment - start).total_seconds() / span
        colour = "#b03a3a" if phase in ("rejected", "written_off", "cancelled") else "#2f6f9f"
        label_y = line + 16 if index % 2 == 0 else line - 9
        items.append(
            f'<circle cx="{cx:.1f}" cy="{line}" r="4" fill="{colour}"><title>{escape(phase)}: '
            f"{moment.isoformat()}</title></circle>"
            f'<text x="{cx:.1f}" y="{label_y}" font-size="9" text-anchor="middle">{escape(phase)}</text>'
        )
    return _svg(width, height, "".join(items), "batch timeline")


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">{body}</svg>'
    )


def _empty(width: int, text: str) -> str:
    return _svg(width, 40, f'<text x="10" y="24" font-size="12">{escape(text)}</text>', text)
