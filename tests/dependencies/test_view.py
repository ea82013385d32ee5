"""The per-group HTML view: self-contained, and its nodes, edges, layers, answers and colours are what the
data says — checked by parsing the file with ``html.parser``; rendered to PNG when headless Chromium exists."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from parallel_decoding.dependencies.view import CORRECT, WRONG, DagView, ViewEdge, ViewNode, render_html, write_view


class ViewParser(HTMLParser):
    """Collects the SVG nodes and edges, the embedded JSON, and anything that would load an external resource."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes, self.edges, self.rects, self.external = [], [], [], []
        self.data_json, self._in_data, self._node = "", False, None
        self.titles = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "g" and a.get("class") == "node":
            self._node = a
            self.nodes.append(a)
        elif tag == "rect" and self._node is not None:
            self.rects.append((self._node["data-id"], a["fill"]))
        elif tag == "path" and a.get("class") == "edge":
            self.edges.append(a)
        elif tag == "script":
            if "src" in a:
                self.external.append(a["src"])
            self._in_data = a.get("id") == "dag-data"
            assert a.get("type") == "application/json", "only inert data scripts"
        for key in ("src", "href"):
            if key in a and not a[key].startswith("#"):
                self.external.append(a[key])
        if tag in ("link", "img", "iframe"):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag == "g":
            self._node = None
        if tag == "script":
            self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data_json += data


def sample_view() -> DagView:
    nodes = [
        ViewNode("id-a", "Q1", "Which company built the <stadium>?", 0, "Acme & Sons", ["Acme & Sons"], True, 1.0),
        ViewNode("id-b", "Q2", "Who founded it?", 1, "Bob", ["Alice"], False, 0.0, ["Q1"]),
        ViewNode("id-c", "Q3", "Where is it? </script><b>", 1, "", ["Paris"], False, 0.0, ["Q1"]),
    ]
    edges = [ViewEdge("id-a", "id-b", 0.85, "match", "reference word"),
             ViewEdge("id-a", "id-c", 0.55, "extra", "shared keyword"),
             ViewEdge("id-b", "id-c", None, "missed", "gold")]
    return DagView("collab_test · group g", nodes, edges, {"layers": 2, "edge_precision": 0.5, "edge_f1": None},
                   raw_output='{"edges": [{"Q2": "Q1"}]} </pre>')


def test_view_is_self_contained_and_shows_the_dag(tmp_path):
    path = write_view(sample_view(), tmp_path / "views", "group/with odd:chars")
    assert path.parent == tmp_path / "views" and path.name == "group_with_odd_chars.html"
    parser = ViewParser()
    parser.feed(path.read_text(encoding="utf-8"))
    assert parser.external == []
    assert [(n["data-id"], n["data-layer"], n["data-correct"]) for n in parser.nodes] == [
        ("id-a", "0", "true"), ("id-b", "1", "false"), ("id-c", "1", "false")]
    assert dict(parser.rects) == {"id-a": CORRECT[0], "id-b": WRONG[0], "id-c": WRONG[0]}
    assert [(e["data-source"], e["data-target"], e["data-status"], e["data-confidence"]) for e in parser.edges] == [
        ("id-a", "id-b", "match", "0.85"), ("id-a", "id-c", "extra", "0.55"), ("id-b", "id-c", "missed", "")]
    assert all("marker-end" in e for e in parser.edges)
    data = json.loads(parser.data_json.replace("<\\/", "</"))
    assert data["nodes"][2]["text"] == "Where is it? </script><b>"  # escaped in the page, intact in the data
    assert data["summary"]["edge_precision"] == 0.5


def test_text_is_escaped():
    page = render_html(sample_view())
    assert "&lt;stadium&gt;" in page and "Acme &amp; Sons" in page
    assert "</script><b>" not in page.split('id="dag-data">')[0]
    assert page.count("<script") == 1 and "&lt;/pre&gt;" in page


CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser")
                             or "") if p and Path(p).exists()), None)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_view_renders_to_png_in_headless_chromium(tmp_path):
    path = write_view(sample_view(), tmp_path, "g")
    png = tmp_path / "g.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={png}",
                    "--window-size=1000,700", path.as_uri()], check=True, capture_output=True, timeout=120)
    from matplotlib.image import imread

    pixels = (imread(png)[..., :3] * 255).round().astype(int)
    assert pixels.shape[:2] == (700, 1000)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)}
    # the drawn page, not a blank one: the fills of the correct node (Q1) and of the wrong ones (Q2, Q3)
    for fill in (CORRECT[0], WRONG[0]):
        assert tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5)) in colours, fill
