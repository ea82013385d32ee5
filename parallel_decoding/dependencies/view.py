"""A self-contained HTML page per group: the DAG as an SVG (questions as nodes in layer columns, edges with
their confidence), answers and correctness (green = exact match, red = not), and the group's numbers.

No scripts, fonts or images are fetched: one file opens anywhere. The same data is embedded as JSON
(``<script type="application/json" id="dag-data">``, inert) for tools that would rather not parse the SVG.
Edge colours, when the group has a gold DAG: blue = in the gold DAG, orange = not in it, grey dashed = a gold
edge the generator missed (drawn for reference; the schedule did not use it).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NODE_W, NODE_H, COL_GAP, ROW_GAP, MARGIN, TOP = 250, 78, 110, 22, 24, 40
CORRECT, WRONG = ("#e3f4e1", "#2e7d32"), ("#fbe3e4", "#c62828")
EDGE_STYLES = {  # status -> (colour, dash pattern)
    "match": ("#1f5fa8", ""),
    "unscored": ("#1f5fa8", ""),
    "extra": ("#e07b00", ""),
    "missed": ("#8a8a8a", "6 4"),
}


@dataclass
class ViewNode:
    id: str
    label: str  # Q1, Q2, ... in group order
    text: str
    layer: int
    prediction: str
    gold: list[str]
    correct: bool
    f1: float
    prerequisites: list[str] = field(default_factory=list)  # labels


@dataclass
class ViewEdge:
    source: str  # prerequisite question id
    target: str
    confidence: float | None  # None for a missed gold edge
    status: str  # match | extra | unscored | missed
    reason: str = ""


@dataclass
class DagView:
    title: str
    nodes: list[ViewNode]
    edges: list[ViewEdge]
    summary: dict[str, Any]  # shown as a key/value table
    raw_output: str | None = None  # the LLM planner's reply

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _wrap(text: str, width: int, lines: int) -> list[str]:
    words, out, line = " ".join(text.split()).split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    out.append(line)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = _clip(out[-1] + " …", width)
    return out


def _positions(nodes: list[ViewNode]) -> dict[str, tuple[int, int]]:
    rows: dict[int, int] = {}
    positions = {}
    for node in nodes:
        row = rows.get(node.layer, 0)
        rows[node.layer] = row + 1
        positions[node.id] = (MARGIN + node.layer * (NODE_W + COL_GAP), TOP + row * (NODE_H + ROW_GAP))
    return positions


def _svg(view: DagView) -> str:
    e = html.escape
    positions = _positions(view.nodes)
    layers = max((n.layer for n in view.nodes), default=0) + 1
    rows = max((sum(1 for n in view.nodes if n.layer == layer) for layer in range(layers)), default=1)
    width = 2 * MARGIN + layers * NODE_W + (layers - 1) * COL_GAP
    height = TOP + rows * (NODE_H + ROW_GAP) + MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">', "<defs>"]
    for status, (colour, _) in EDGE_STYLES.items():
        parts.append(f'<marker id="arrow-{status}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
                     f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/>'
                     "</marker>")
    parts.append("</defs>")
    for layer in range(layers):
        x = MARGIN + layer * (NODE_W + COL_GAP)
        parts.append(f'<text class="layer-title" x="{x + NODE_W / 2}" y="{TOP - 14}" text-anchor="middle" '
                     f'font-weight="bold">layer {layer}</text>')
    labels = {n.id: n.label for n in view.nodes}
    for edge in view.edges:
        if edge.source not in positions or edge.target not in positions:
            continue
        (sx, sy), (tx, ty) = positions[edge.source], positions[edge.target]
        x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H / 2, tx, ty + NODE_H / 2
        if x2 <= x1:  # same or earlier column (only missed gold edges): route around the right side
            x2, bend = tx + NODE_W, 60 + abs(y2 - y1) / 4
            path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 + bend},{y2} {x2},{y2}"
            mx, my = max(x1, x2) + bend * 0.75, (y1 + y2) / 2
        else:
            dx = (x2 - x1) / 2
            path = f"M{x1},{y1} C{x1 + dx},{y1} {x2 - dx},{y2} {x2},{y2}"
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        colour, dash = EDGE_STYLES.get(edge.status, EDGE_STYLES["unscored"])
        widthpx = 1.0 + 3.0 * (edge.confidence if edge.confidence is not None else 0.2)
        confidence = "" if edge.confidence is None else f"{edge.confidence:.2f}"
        tip = f"{labels[edge.source]} → {labels[edge.target]} ({edge.status}) {confidence} {edge.reason}".strip()
        parts.append(
            f'<path class="edge" data-source="{e(edge.source)}" data-target="{e(edge.target)}" '
            f'data-status="{e(edge.status)}" data-confidence="{e(confidence)}" d="{path}" fill="none" '
            f'stroke="{colour}" stroke-width="{widthpx:.2f}"' + (f' stroke-dasharray="{dash}"' if dash else "")
            + f' marker-end="url(#arrow-{e(edge.status)})"><title>{e(tip)}</title></path>'
        )
        if confidence:
            parts.append(f'<text class="edge-label" x="{mx:.1f}" y="{my - 4:.1f}" text-anchor="middle" '
                         f'fill="{colour}">{confidence}</text>')
    for node in view.nodes:
        x, y = positions[node.id]
        fill, stroke = CORRECT if node.correct else WRONG
        lines = _wrap(node.text, 40, 2)
        parts.append(f'<g class="node" data-id="{e(node.id)}" data-layer="{node.layer}" '
                     f'data-correct="{str(node.correct).lower()}"><title>{e(node.text)}</title>'
                     f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="{fill}" '
                     f'stroke="{stroke}" stroke-width="1.5"/>'
                     f'<text x="{x + 8}" y="{y + 16}" font-weight="bold">{e(node.label)}</text>')
        for i, line in enumerate(lines):
            parts.append(f'<text x="{x + 34}" y="{y + 16 + 15 * i}">{e(line)}</text>')
        parts.append(f'<text x="{x + 8}" y="{y + NODE_H - 10}" fill="{stroke}">→ {e(_clip(node.prediction, 36)) or "(no answer)"}'
                     "</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def render_html(view: DagView) -> str:
    e = html.escape
    summary = "".join(f"<tr><th>{e(str(k))}</th><td>{e(_fmt(v))}</td></tr>" for k, v in view.summary.items())
    rows = "".join(
        f'<tr class="{"correct" if n.correct else "wrong"}"><td>{e(n.label)}</td><td>{n.layer}</td>'
        f"<td>{e(n.text)}</td><td>{e(', '.join(n.prerequisites))}</td><td>{e(n.prediction)}</td>"
        f"<td>{e(' | '.join(n.gold))}</td><td>{'✔' if n.correct else '✘'}</td><td>{n.f1:.2f}</td></tr>"
        for n in view.nodes
    )
    raw = (f"<details><summary>planner output</summary><pre>{e(view.raw_output)}</pre></details>"
           if view.raw_output is not None else "")
    data = view.to_json().replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(view.title)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; font-size: 13px; }}
tr.correct td {{ background: {CORRECT[0]}; }}
tr.wrong td {{ background: {WRONG[0]}; }}
.legend span {{ margin-right: 16px; }}
.dag {{ overflow-x: auto; border: 1px solid #eee; }}
</style></head><body>
<h1>{e(view.title)}</h1>
<table class="summary">{summary}</table>
<p class="legend"><span style="color:{EDGE_STYLES['match'][0]}">━ dependency (in gold DAG, or no gold)</span>
<span style="color:{EDGE_STYLES['extra'][0]}">━ not in gold DAG</span>
<span style="color:{EDGE_STYLES['missed'][0]}">╍ gold edge missed</span>
<span style="background:{CORRECT[0]}">correct (EM)</span> <span style="background:{WRONG[0]}">wrong</span></p>
<div class="dag">{_svg(view)}</div>
<table class="questions"><tr><th>label</th><th>layer</th><th>question</th><th>needs</th><th>answer</th>
<th>gold</th><th>EM</th><th>F1</th></tr>{rows}</table>
{raw}
<script type="application/json" id="dag-data">{data}</script>
</body></html>
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "–" if value is None else str(value)


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "group"


def write_view(view: DagView, directory: str | Path, name: str) -> Path:
    path = Path(directory) / f"{safe_filename(name)}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(view), encoding="utf-8")
    return path
