"""The dashboard (`GET /`) shows scores exactly, past 2^53 too: its own script, as served,
run by Node.js against the API's real answers, with the few DOM calls it makes stubbed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from api_helpers import api, event

BIG = 2**63 - 1
HARNESS = """
const elements = {}, asked = [];
class Row {
  constructor() { this.cells = []; }
  insertCell() {
    const cell = {textContent: "", className: ""};
    this.cells.push(cell);
    return cell;
  }
}
function element(id) {
  return elements[id] ||= {
    value: {space: "default", window: "all"}[id] || "", textContent: "", className: "",
    rows: [], options: [],
    set innerHTML(_) { this.rows = []; this.options = []; },
    insertRow() { const row = new Row(); this.rows.push(row); return row; },
    add(option) { this.options.push(option); if (!this.value) this.value = option.value; },
    addEventListener() {},
  };
}
globalThis.document = {getElementById: element};
globalThis.Option = class { constructor(text, value) { this.text = text; this.value = value; } };
globalThis.setInterval = () => 0;
globalThis.fetch = async path => {
  asked.push(path);
  const [status, text] = ANSWERS[path.split("?")[0]];
  return {ok: status === 200, status, statusText: String(status), text: async () => text,
          json: async () => JSON.parse(text)};
};
"""
REPORT = """
setTimeout(() => console.log(JSON.stringify({
  asked, status: element("status").textContent,
  rows: element("rows").rows.map(r => r.cells.map(c => String(c.textContent))),
  parsed: typeof exactJSON === "function" ? SAMPLES.map(text => exactJSON(text)) : null,
})), 200);
"""
# Integers past 2^53 come back as their digits; digits inside strings (escaped quotes
# too), fractions, exponents and safe integers are left as they are.
SAMPLES = [
    '{"a": -9223372036854775808, "b": 9007199254740993, "c": 9007199254740991}',
    '["x\\\\\\"12345678901234567890", 12345678901234567890, 1.5e300, 2.5, -0]',
    '{"12345678901234567890": "9223372036854775807", "e": 1E3}',
]


def _run_dashboard(page: str, answers: dict[str, tuple[int, str]], tmp: Path) -> Any:
    node = shutil.which("node")
    assert node, "Node.js runs the dashboard's script (it is on every machine of ours)"
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert script
    program = (f"const ANSWERS = {json.dumps(answers)};\n"
               f"const SAMPLES = {json.dumps(SAMPLES)};\n"
               f"{HARNESS}\n{script.group(1)}\n{REPORT}")
    path = tmp / "dashboard.js"
    path.write_text(program)
    done = subprocess.run([node, str(path)], capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stdout)


def test_dashboard_renders_scores_past_2_53_exactly(tmp_path: Path) -> None:
    quoted = 'say "9007199254740993"'
    with api() as tb:
        tb.record(event("alice", BIG), event("bob", 2**53 + 1), event(quoted, 2**53 + 3),
                  event("cy", 5), event("dee", -(2**62) - 1))
        page = tb.get("/").text
        answers = {path: (r.status_code, r.text) for path, r in (
            ("/v1/metrics", tb.get("/v1/metrics", space="default")),
            ("/v1/leaderboard", tb.get("/v1/leaderboard", space="default", metric="points",
                                       window="all", n=25)))}
    assert str(BIG) in answers["/v1/leaderboard"][1]  # the API itself sends numbers
    assert f'"score":{BIG}' in answers["/v1/leaderboard"][1].replace(" ", "")
    got = _run_dashboard(page, answers, tmp_path)
    assert got["asked"][0].startswith("/v1/metrics?space=default")
    assert "metric=points" in got["asked"][1] and "window=all" in got["asked"][1]
    assert got["rows"] == [["1", "alice", str(BIG)], ["2", quoted, str(2**53 + 3)],
                           ["3", "bob", str(2**53 + 1)], ["4", "cy", "5"],
                           ["5", "dee", str(-(2**62) - 1)]]
    assert got["status"].startswith("5 members")
    assert got["parsed"] == [
        {"a": "-9223372036854775808", "b": "9007199254740993", "c": 9007199254740991},
        ['x\\"12345678901234567890', "12345678901234567890", 1.5e300, 2.5, 0],
        {"12345678901234567890": "9223372036854775807", "e": 1000}]


def test_dashboard_shows_api_errors(tmp_path: Path) -> None:
    with api() as tb:
        page = tb.get("/").text
        metrics = tb.get("/v1/metrics", space="default")
    error = json.dumps({"error": {"code": "unauthorized", "message": "missing API key"}})
    got = _run_dashboard(page, {"/v1/metrics": (401, error),
                                "/v1/leaderboard": (200, metrics.text)}, tmp_path)
    assert got["status"] == "missing API key" and got["rows"] == []
