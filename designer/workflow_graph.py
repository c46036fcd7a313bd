"""A workflow's states and transitions drawn as an SVG graph, laid out on the server.

A simple layered layout, enough for the handful of states a CRM workflow has: the
initial state on the left, every other state in the column of its breadth-first
distance from it, states no transition reaches in a last column (drawn in red: the
validator refuses them). Forward edges are straight, edges going back or within a
column are arcs, several edges between the same two states fan out. Approval outcomes
(`on_approve`, `on_reject`) are dashed edges from the state the approval waits in.

No third-party JavaScript: the page makes states and edges clickable by their
`data-state` / `data-transition` attributes.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

from markupsafe import Markup, escape

from metacrm.runtime.web.charts import fit_text  # labels wider than a node end in an ellipsis

NODE_W, NODE_H = 132, 44
COL_GAP, ROW_GAP = 96, 40
MARGIN = 24
#: Room above the first row for back edges between states of that row.
TOP = 64


@dataclass(frozen=True)
class Node:
    name: str
    label: str
    column: int
    row: int
    initial: bool
    final: bool
    locked: bool
    reachable: bool

    @property
    def x(self) -> int:
        return MARGIN + self.column * (NODE_W + COL_GAP)

    @property
    def y(self) -> int:
        return TOP + self.row * (NODE_H + ROW_GAP)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    transition: str | None  # None for an approval outcome
    dashed: bool = False


def _text(value: Any, lang: str, fallback: str) -> str:
    if isinstance(value, Mapping):
        return str(value.get(lang) or value.get("en") or value.get("zh") or fallback)
    return str(value) if isinstance(value, str) and value else fallback


def edges_of(workflow: Mapping[str, Any], lang: str) -> list[Edge]:
    """Transitions (one edge per source state) and approval outcomes, as drawn."""
    edges: list[Edge] = []
    for t in workflow.get("transitions") or ():
        if not isinstance(t, Mapping):
            continue
        label = _text(t.get("label"), lang, str(t.get("name") or ""))
        for source in t.get("from") or ():
            edges.append(Edge(str(source), str(t.get("to")), label, str(t.get("name"))))
        chain = (workflow.get("approvals") or {}).get(t.get("approval")) if t.get("approval") else None
        if isinstance(chain, Mapping):
            for key, mark in (("on_approve", "✓"), ("on_reject", "✗")):
                if chain.get(key):
                    edges.append(Edge(str(t.get("to")), str(chain[key]), mark, None, dashed=True))
    return list(dict.fromkeys(edges))


def layout(workflow: Mapping[str, Any], lang: str = "en") -> tuple[list[Node], list[Edge]]:
    """Columns by breadth-first distance from the initial state; rows in document order."""
    states = [s for s in workflow.get("states") or () if isinstance(s, Mapping) and s.get("name")]
    names = [str(s["name"]) for s in states]
    edges = edges_of(workflow, lang)
    start = next((str(s["name"]) for s in states if s.get("initial")), names[0] if names else None)
    depth: dict[str, int] = {}
    if start is not None:
        depth[start] = 0
        queue = deque([start])
        while queue:
            here = queue.popleft()
            for e in edges:
                if e.source == here and e.target in names and e.target not in depth:
                    depth[e.target] = depth[here] + 1
                    queue.append(e.target)
    last = max(depth.values(), default=-1) + 1
    rows: dict[int, int] = {}
    nodes = []
    for s in states:
        name = str(s["name"])
        column = depth.get(name, last)
        row = rows.get(column, 0)
        rows[column] = row + 1
        nodes.append(Node(name, _text(s.get("label"), lang, name), column, row, bool(s.get("initial")),
                          bool(s.get("final")), bool(s.get("locked")), name in depth))
    return nodes, edges


def _edge_path(a: Node, b: Node, fan: int) -> tuple[str, float, float, str]:
    """An SVG path from a to b, where its label sits and how it is anchored; `fan`
    separates parallel edges between the same two states."""
    if b.column > a.column:  # forward: a straight line between the facing sides
        x1, y1 = a.x + NODE_W, a.y + NODE_H / 2 + fan * 8
        x2, y2 = b.x, b.y + NODE_H / 2 + fan * 8
        return f"M{x1:.0f},{y1:.0f} L{x2:.0f},{y2:.0f}", (x1 + x2) / 2, (y1 + y2) / 2 - 6, "middle"
    if a.name == b.name:
        x, y = a.x + NODE_W * 0.7, a.y
        return f"M{x:.0f},{y:.0f} c 20,-34 44,-10 20,6", x + 28, y - 22, "middle"
    if a.column == b.column:  # within a column: bulge out to the right, upward edges further
        x = a.x + NODE_W
        y1, y2 = a.y + NODE_H / 2 - 6, b.y + NODE_H / 2 + 6
        bulge = (26 if b.row > a.row else 46) + 10 * abs(a.row - b.row) + 14 * fan
        return (f"M{x:.0f},{y1:.0f} C{x + bulge:.0f},{y1:.0f} {x + bulge:.0f},{y2:.0f} {x:.0f},{y2:.0f}",
                x + bulge * 0.75 + 3, (y1 + y2) / 2 + 4, "start")
    drop = 34 + 18 * fan + 6 * abs(a.column - b.column)
    if a.row == 0 and b.row == 0:  # back along the first row: arc above it, where nothing is drawn
        x1, x2 = a.x + NODE_W / 2 + 10, b.x + NODE_W / 2 - 10
        cy = min(a.y, b.y) - drop
        return (f"M{x1:.0f},{a.y:.0f} C{x1:.0f},{cy:.0f} {x2:.0f},{cy:.0f} {x2:.0f},{b.y:.0f}",
                (x1 + x2) / 2, cy + drop * 0.25 + 4, "middle")
    if a.column - b.column == 1 and abs(a.row - b.row) <= 1:  # back to a neighbour: an S between the facing sides
        x1, y1 = a.x, a.y + NODE_H / 2 + 8 + fan * 8
        x2, y2 = b.x + NODE_W, b.y + NODE_H / 2 + 8 + fan * 8
        # labelled near the source, where S-curves crossing each other are still apart
        return (f"M{x1:.0f},{y1:.0f} C{x1 - 40:.0f},{y1:.0f} {x2 + 40:.0f},{y2:.0f} {x2:.0f},{y2:.0f}",
                x1 - 6, y1 + (14 if y2 >= y1 else -5), "end")
    # back further: from the left side down and round to the target's bottom
    x1, y1 = a.x, a.y + NODE_H / 2 + fan * 6
    x2, y2 = b.x + NODE_W / 2 + 14 * (fan + 1), b.y + NODE_H
    cy = max(y1, y2) + drop
    return (f"M{x1:.0f},{y1:.0f} C{x1 - 30:.0f},{cy:.0f} {x2:.0f},{cy:.0f} {x2:.0f},{y2:.0f}",
            (x1 + x2) / 2 - 8, cy - drop * 0.25, "middle")


def render_svg(workflow: Mapping[str, Any], lang: str = "en", selected: str | None = None) -> Markup:
    """The graph as inline SVG markup (escaped labels; clickable by data attributes)."""
    nodes, edges = layout(workflow, lang)
    by_name = {n.name: n for n in nodes}
    columns = max((n.column for n in nodes), default=0) + 1
    rows = max((n.row for n in nodes), default=0) + 1
    width = MARGIN * 2 + columns * NODE_W + (columns - 1) * COL_GAP + 110  # room for right-side arcs
    height = TOP + MARGIN + rows * NODE_H + (rows - 1) * ROW_GAP + 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="mc-wf-graph" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="workflow graph">',
             '<defs><marker id="mc-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6c757d"/></marker></defs>']
    seen: dict[tuple[str, str], int] = {}
    for e in edges:
        a, b = by_name.get(e.source), by_name.get(e.target)
        if a is None or b is None:
            continue
        pair = (e.source, e.target)
        fan = seen.get(pair, 0)
        seen[pair] = fan + 1
        d, lx, ly, anchor = _edge_path(a, b, fan)
        attrs = f' data-transition="{escape(e.transition)}"' if e.transition else ' data-outcome="1"'
        active = " mc-selected" if e.transition and e.transition == selected else ""
        dash = ' stroke-dasharray="5 4"' if e.dashed else ""
        parts.append(f'<g class="mc-wf-edge{active}"{attrs}><path d="{d}" fill="none" stroke="#6c757d" '
                     f'stroke-width="1.6"{dash} marker-end="url(#mc-arrow)"/>'
                     f'<text x="{lx:.0f}" y="{ly:.0f}" text-anchor="{anchor}" font-size="11" fill="#343a40" '
                     f'paint-order="stroke" stroke="#fff" stroke-width="3">{escape(e.label)}</text></g>')
    for n in nodes:
        fill = "#e7f1ff" if n.initial else "#d1e7dd" if n.final else "#ffffff"
        stroke = "#dc3545" if not n.reachable else "#0d6efd" if n.name == selected else "#495057"
        lock = (f'<g transform="translate({n.x + NODE_W - 15},{n.y + 4})" class="mc-wf-lock"><title>locked</title>'
                '<rect x="0" y="4" width="9" height="7" rx="1" fill="#6c757d"/>'
                '<path d="M2,4 v-1.5 a2.5,2.5 0 0 1 5,0 v1.5" fill="none" stroke="#6c757d" stroke-width="1.3"/></g>'
                if n.locked else "")
        rx = 22 if n.final else 8
        parts.append(f'<g class="mc-wf-state{" mc-selected" if n.name == selected else ""}" '
                     f'data-state="{escape(n.name)}" tabindex="0" style="cursor:pointer">'
                     f'<rect x="{n.x}" y="{n.y}" width="{NODE_W}" height="{NODE_H}" rx="{rx}" fill="{fill}" '
                     f'stroke="{stroke}" stroke-width="{2.5 if n.name == selected or not n.reachable else 1.4}"/>'
                     f'<text x="{n.x + NODE_W / 2:.0f}" y="{n.y + 19}" text-anchor="middle" font-size="13" '
                     f'font-weight="600">{escape(fit_text(n.label, 16))}</text>{lock}'
                     f'<text x="{n.x + NODE_W / 2:.0f}" y="{n.y + 35}" text-anchor="middle" font-size="10" '
                     f'fill="#6c757d">{escape(n.name)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))
