"""The README's tables quote committed benchmarks: they must agree.

The shipped models' table quotes benchmarks/results/synthetic_domains.json; the fair comparison's quotes
benchmarks/results/comparison_v2/comparison_v2.json.

A re-run of the benchmark (more seeds, new models) that changes a mean fails here until the README's table
is updated, instead of leaving the prose wrong.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from regdakit.stats import format_interval

ROOT = Path(__file__).resolve().parents[1]


def _rows() -> dict[tuple[str, str], list[str]]:
    text = (ROOT / "README.md").read_text()
    rows = re.findall(
        r"^\| (hands|bodies) → (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) / ([\d.]+) ", text, re.M
    )
    return {(task, target): list(values) for task, target, *values in rows}


def test_the_readme_quotes_the_shipped_models_benchmark():
    bench = json.loads((ROOT / "benchmarks" / "results" / "synthetic_domains.json").read_text())["tasks"]
    rows = _rows()
    expected = {(task, target) for task, entry in bench.items() for target in entry["targets"]}
    assert set(rows) == expected, f"README rows {sorted(rows)} vs the benchmark's {sorted(expected)}"
    for (task, target), (source, on_target, oracle, landing, chance) in rows.items():
        entry, t = bench[task], bench[task]["targets"][target]
        strongest = max(t[c]["mean"] for c in ("chance_uniform_image", "chance_uniform_box", "chance_rotated_errors"))
        quoted = [source, on_target, oracle, landing, chance]
        measured = [
            f"{100 * entry['source_on_source']['mean']:.1f}",
            f"{100 * t['source_on_target']['mean']:.1f}",
            f"{100 * t['oracle_on_target']['mean']:.1f}",
            f"{t['landing_on_other']['mean']:.2f}",
            f"{strongest:.2f}",
        ]
        assert quoted == measured, f"{task} → {target}: README {quoted}, benchmark {measured}"


def test_the_readme_quotes_the_fair_comparison():
    v2 = json.loads((ROOT / "benchmarks" / "results" / "comparison_v2" / "comparison_v2.json").read_text())
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (hands|bodies) → (\w+) \| ([^|]+\]) \| (.+) \|$", text, re.M)
    quoted = {
        task: [target, first.strip(), *(c.strip() for c in rest.split("|"))] for task, target, first, rest in rows
    }
    assert set(quoted) == {"hands", "bodies"}, quoted
    for task, cells in quoted.items():
        t = v2["tasks"][task]
        regda = t["rows"]["regda"]["minus"]
        measured = [
            t["target"],
            *(
                format_interval(t["rows"][row]["target"]["pck@0.05/all"])
                for row in ("source_only", "continue", "control", "regda")
            ),
            format_interval(regda["control"], signed=True),
            format_interval(regda["continue"], signed=True),
            f"{t['gap_closed']['rows']['regda']['oracle']['ratio_of_means']:.2f}",
        ]
        assert cells == measured, f"{task}: README {cells}, comparison_v2.json {measured}"
    gap = v2["tasks"]["hands"]["gap_closed"]["rows"]["regda"]["oracle"]["ratio_of_means"]
    assert f"RegDA closes {gap:.2f} of the gap to the oracle" in " ".join(text.split())
    control = v2["tasks"]["hands"]["rows"]["control"]["minus"]["continue"]["mean"]
    assert f"itself {control:.1f} points above continue-ERM" in " ".join(text.split())
    hands = v2["tasks"]["hands"]["rows"]
    for row, label in (("dann", "DANN"), ("dan", "DAN")):
        assert f"{label} ({hands[row]['target']['pck@0.05/all']['mean']:.1f})" in " ".join(text.split()), row


def test_the_readme_quotes_where_errors_land_and_bodies_table_1():
    text = " ".join((ROOT / "README.md").read_text().split())
    landing = json.loads((ROOT / "benchmarks" / "results" / "landing_after_adaptation.json").read_text())
    off = {row: landing["tasks"]["hands"]["rows"][row]["wrong_off_object"]["mean"] for row in ("regda", "source_only")}
    assert f"{off['regda']:.2f} of them leave it against {off['source_only']:.2f} for source only" in text
    # "On bodies no same-budget row moves the target by a point, nor where its errors land."
    assert "moves the target by a point, nor where its errors land" in text
    for d in landing["tasks"]["bodies"]["regda_minus"].values():
        assert d["landing_on_other"]["ci95"][0] < 0 < d["landing_on_other"]["ci95"][1]
    v2 = json.loads((ROOT / "benchmarks" / "results" / "comparison_v2" / "comparison_v2.json").read_text())
    bodies = v2["tasks"]["bodies"]["rows"]
    methods = ("dan", "dann", "mcd", "dd", "false_max", "regda")
    assert "every one ends within 3 points of source only" in text
    assert all(abs(bodies[row]["minus"]["source_only"]["mean"]) < 3 for row in methods)
    assert "none is above continue-ERM with an interval excluding 0" in text
    assert all(bodies[row]["minus"]["continue"]["ci95"][0] <= 0 for row in methods)
