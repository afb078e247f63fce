"""The claims of notebook 05's section A.6 (the first version's tables), checked on the committed Tables 1 and 2.

The notebook's prose states what the committed benchmark found (which method
beats which, what collapses, what label-free selection achieved). When a re-run
of ``benchmarks/comparison_benchmark.py`` changes the tables, these tests fail
and name the sentence to rewrite, instead of leaving the prose wrong.
"""

from __future__ import annotations

import pytest

from regdakit import comparison, resources

TASKS = ("hands", "bodies")
ORACLE_PICK = "oracle_selected (uses target labels, not valid UDA)"


@pytest.fixture(scope="module")
def table1() -> dict:
    return comparison.load_table(resources.path("results/table1_synthetic.json"))


@pytest.fixture(scope="module")
def table2() -> dict:
    return comparison.load_table(resources.path("results/table2_synthetic.json"))


def _mean(table: dict, task: str, row: str) -> float:
    return table["tasks"][task]["pck"][row]["pck@0.05/all"]["mean"]


def _std(table: dict, task: str, row: str) -> float:
    return table["tasks"][task]["pck"][row]["pck@0.05/all"]["std"]


def test_the_tables_cover_both_tasks(table1, table2):
    assert tuple(table1["tasks"]) == tuple(table2["tasks"]) == TASKS


@pytest.mark.parametrize("task", TASKS)
def test_what_holds_regda_beats_source_only_mcd_and_dd(table1, task):
    """'RegDA beats source only, MCD and DD on both tasks.'"""
    for row in ("source_only", "mcd", "dd"):
        assert _mean(table1, task, "regda") > _mean(table1, task, row), row


@pytest.mark.parametrize("task", TASKS)
def test_what_holds_regda_is_the_best_variant_of_table_2(table2, task):
    """'letting psi minimise L_T is better than making it maximise L_F' (and better than DD)."""
    assert _mean(table2, task, "regda") == max(_mean(table2, task, row) for row in table2["rows"])


def test_what_holds_on_hands_both_minimisations_of_l_f_beat_dd(table1, table2):
    """'both beat DD's maximisation of L_T on hands, where DD fails outright.'"""
    assert _mean(table2, "hands", "false_max") > _mean(table2, "hands", "dd")
    assert _mean(table1, "hands", "dd") < _mean(table1, "hands", "source_only")


def test_on_bodies_dd_and_the_reversed_variant_are_within_a_standard_deviation(table2):
    """'On bodies DD and the reversed variant are within a standard deviation of each other.'"""
    gap = abs(_mean(table2, "bodies", "false_max") - _mean(table2, "bodies", "dd"))
    assert gap < max(_std(table2, "bodies", "false_max"), _std(table2, "bodies", "dd"))


@pytest.mark.parametrize("task", TASKS)
def test_what_does_not_hold_dan_above_and_dann_below_source_only(table1, task):
    """'DAN is far above [source only] ... while DANN ... collapse[s] far below it.'"""
    assert _mean(table1, task, "dan") > _mean(table1, task, "source_only")
    assert _mean(table1, task, "dann") < _mean(table1, task, "source_only")


def test_dan_is_best_on_bodies_by_less_than_a_standard_deviation(table1):
    """'best of all on bodies by half a point, less than one standard deviation.'"""
    lead = _mean(table1, "bodies", "dan") - _mean(table1, "bodies", "regda")
    assert 0 < lead < min(_std(table1, "bodies", "dan"), _std(table1, "bodies", "regda"))
    assert lead == pytest.approx(0.5, abs=0.15)


def test_collapsed_runs_lose_the_source_too_and_the_others_keep_17_to_35_percent(table1):
    """'even the source validation PCK of the last snapshot falls to a few percent, where every other
    method keeps 17-35 %' (DD on hands, DANN on both; DAN, MCD, and DD on bodies)."""
    scores = {task: table1["tasks"][task]["validator_scores_at_last"] for task in TASKS}
    broken = [scores["hands"]["dd"], scores["hands"]["dann"], scores["bodies"]["dann"]]
    assert all(max(s["source_pck"]) < 0.10 for s in broken)
    kept = [scores[task][method] for task in TASKS for method in ("dan", "mcd")] + [scores["bodies"]["dd"]]
    assert all(min(s["source_pck"]) > 0.17 and max(s["source_pck"]) < 0.35 for s in kept)


def test_selection_source_pck_helped_regda_on_hands_only_and_the_entropy_in_most_runs(table1):
    """'Source-validation PCK picked a better snapshot than the last one only for RegDA on hands;
    the target entropy did in most runs ... but not always.'"""
    better: dict[str, list[tuple[str, str]]] = {"source_pck": [], "neg_entropy": []}
    for task in TASKS:
        for method, picks in table1["tasks"][task]["selection"].items():
            for rule in better:
                if picks[rule]["mean"] > picks["last"]["mean"]:
                    better[rule].append((task, method))
    pairs = sum(len(table1["tasks"][task]["selection"]) for task in TASKS)
    assert better["source_pck"] == [("hands", "regda")]
    assert pairs / 2 < len(better["neg_entropy"]) < pairs


@pytest.mark.parametrize("method", ["dd", "mcd", "dan"])
def test_on_bodies_the_entropy_found_the_oracle_pick(table1, method):
    """'(on bodies it found the oracle's pick for DD, MCD and DAN)'."""
    picks = table1["tasks"]["bodies"]["selection"][method]
    assert picks["neg_entropy"]["per_seed"] == picks[ORACLE_PICK]["per_seed"]


def test_regda_has_a_selection_row_for_hands_only(table1):
    """'so RegDA has a selection row for hands only.'"""
    assert "regda" in table1["tasks"]["hands"]["selection"]
    assert "regda" not in table1["tasks"]["bodies"]["selection"]


# ----------------------------------------------------------------------------- section 4: the v2 report


@pytest.fixture(scope="module")
def v2() -> dict:
    return resources.read_json("results/comparison_v2/comparison_v2.json")


SAME_BUDGET = ("source_only", "continue", "control", "regda")


def _minus(v2: dict, task: str, row: str, base: str) -> dict:
    return v2["tasks"][task]["rows"][row]["minus"][base]


def test_v2_the_same_budget_rows_are_complete_on_five_seeds(v2):
    """'The rows of the same budget ... are complete on five seeds.'"""
    for task in TASKS:
        for row in SAME_BUDGET:
            assert v2["tasks"][task]["rows"][row]["seeds"] == [1, 2, 3, 4, 5], (task, row)


@pytest.mark.parametrize(("base", "points"), [("control", 6), ("continue", 12)])
def test_v2_on_hands_regda_beats_both_baselines_on_every_seed(v2, base, points):
    """'RegDA is above the control by about 6 points and above continue-ERM by about 12, on every seed, with
    both intervals excluding 0: the issue's first two goals are met.'"""
    diff = _minus(v2, "hands", "regda", base)
    assert round(diff["mean"]) == points and min(diff["values"]) > 0 and diff["ci95"][0] > 0
    assert v2["tasks"]["hands"]["goals"][f"regda_above_{base}"]["met"] is True


def test_v2_on_hands_the_schedule_accounts_for_about_half_of_the_gain(v2):
    """'The control is itself about 6 points above continue-ERM ... about half of RegDA's gain over more
    training.'"""
    control = _minus(v2, "hands", "control", "continue")
    regda = _minus(v2, "hands", "regda", "continue")
    assert round(control["mean"]) == 6 and control["ci95"][0] > 0
    assert 0.4 < control["mean"] / regda["mean"] < 0.6


def test_v2_the_gap_closed_on_hands_misses_the_goal(v2):
    """'0.17 of the way to the oracle, short of the issue's goal of 0.30 ... and 0.3 of the way to the target
    fine-tune. The paper's order "RegDA above source only" holds on hands.'"""
    gap = v2["tasks"]["hands"]["gap_closed"]
    assert gap["reference"] == "oracle"
    assert round(gap["rows"]["regda"]["oracle"]["ratio_of_means"], 2) == 0.17
    assert round(gap["rows"]["regda"]["finetune"]["ratio_of_means"], 1) == 0.3
    assert v2["tasks"]["hands"]["goals"]["gap_closed_at_least_0.30"]["met"] is False
    verdicts = {tuple(p["pair"]): p["verdict"] for p in v2["tasks"]["hands"]["ordering"]["RHD -> H3D"]}
    assert verdicts[("regda", "source_only")] == "agrees"


def test_v2_on_bodies_nothing_of_the_same_budget_moves_the_target_and_the_goals_are_not_met(v2):
    """'No row of the same budget moves the lab target by as much as a point ... RegDA is above the control
    by less than a point (interval excluding 0) and not above continue-ERM (interval containing 0) ... the
    paper's order "RegDA above source only" is undecided.'"""
    for row in ("continue", "control", "regda"):
        assert abs(_minus(v2, "bodies", row, "source_only")["mean"]) < 1, row
    control = _minus(v2, "bodies", "regda", "control")
    assert 0 < control["ci95"][0] and control["mean"] < 1
    low, high = _minus(v2, "bodies", "regda", "continue")["ci95"]
    assert low < 0 < high
    goals = v2["tasks"]["bodies"]["goals"]
    assert goals["regda_above_control"]["met"] is True and goals["regda_above_continue"]["met"] is False
    for benchmark, pairs in v2["tasks"]["bodies"]["ordering"].items():
        verdicts = {tuple(p["pair"]): p["verdict"] for p in pairs}
        assert verdicts[("regda", "source_only")] == "undecided", benchmark


def test_v2_only_the_target_fine_tune_lost_more_than_10_source_points(v2):
    """'No method without target labels lost more than 10 points of source PCK; the target fine-tune does on
    every seed.'"""
    for task in TASKS:
        flagged = v2["tasks"][task]["flags"]["runs"]
        assert {f["row"] for f in flagged} == {"finetune"}, task
        assert sorted(f["seed"] for f in flagged) == [1, 2, 3, 4, 5]
        assert v2["tasks"][task]["goals"]["no_source_collapse"]["met"] is True


def _verdicts(v2: dict, task: str) -> dict:
    return {tuple(p["pair"]): p for p in v2["tasks"][task]["ordering"]["RHD -> H3D"]}


def test_v2_hands_table_1_is_complete_on_three_seeds(v2):
    """'Table 1 on hands is complete (three seeds for the other methods).'"""
    for row in ("dan", "dann", "mcd", "dd", "false_max"):
        assert v2["tasks"]["hands"]["rows"][row]["seeds"] == [1, 2, 3], row


@pytest.mark.parametrize(("row", "points"), [("dann", 14), ("dan", 9)])
def test_v2_on_hands_feature_alignment_beats_regda(v2, row, points):
    """'DANN is about 14 points above RegDA and DAN about 9, with the paired intervals below 0.'"""
    pair = _verdicts(v2, "hands")[("regda", row)]  # the paper's order: RegDA above both
    assert pair["verdict"] == "disagrees" and round(-pair["difference"]["mean"]) == points
    assert v2["tasks"]["hands"]["rows"][row]["source"]["mean"] > 60  # not a collapse that only looks good


def test_v2_on_hands_only_dann_closes_0_30_of_the_gap(v2):
    """'DANN closes about 0.36 of the gap to the oracle, the only method past the issue's 0.30.'"""
    gap = v2["tasks"]["hands"]["gap_closed"]["rows"]
    assert round(gap["dann"]["oracle"]["ratio_of_means"], 2) == 0.36
    methods = ("dan", "dann", "mcd", "dd", "false_max", "regda", "continue", "control")
    assert [r for r in methods if gap[r]["oracle"]["ratio_of_means"] >= 0.30] == ["dann"]


def test_v2_on_hands_dd_and_regda_are_level_and_mcd_below(v2):
    """'The bounded DD and RegDA cannot be told apart ...; MCD is below RegDA by about 3 points.'"""
    pairs = _verdicts(v2, "hands")
    assert pairs[("regda", "dd")]["verdict"] == "undecided"
    assert pairs[("regda", "mcd")]["verdict"] == "agrees" and round(pairs[("regda", "mcd")]["difference"]["mean"]) == 3


def test_v2_on_hands_table_2_objectives_are_within_2_points(v2):
    """'Table 2's three ways to play the game ... are within 2 points of each other, every interval holding 0.'"""
    pairs = _verdicts(v2, "hands")
    for pair in (("regda", "dd"), ("regda", "false_max"), ("false_max", "dd")):
        diff = pairs[pair]["difference"]
        assert pairs[pair]["verdict"] == "undecided" and abs(diff["mean"]) < 2, pair


def test_v2_the_reason_given_for_hands_matches_notebook_01s_measurements():
    """'half of the source-only model's wrong target predictions leave the hand, and they land on another
    keypoint less often than chance.'"""
    studio = resources.read_json("results/synthetic_domains.json")["tasks"]["hands"]["targets"]["studio"]
    assert round(studio["wrong_off_object"]["mean"], 1) == 0.5
    assert studio["ratio_to_strongest_chance"]["mean"] < 1


@pytest.fixture(scope="module")
def landing() -> dict:
    return resources.read_json("results/landing_after_adaptation.json")


def test_v2_on_hands_regda_keeps_more_errors_on_the_hand(landing):
    """'the share of wrong predictions that leave the hand falls from about 0.51 for source only to 0.43 for
    RegDA, about 0.10 below the control's with its paired interval excluding 0, and more of RegDA's errors
    land on another keypoint (0.43 against 0.36).'"""
    hands = landing["tasks"]["hands"]
    rows, minus = hands["rows"], hands["regda_minus"]
    assert landing["seeds"] == [1, 2, 3, 4, 5]
    assert round(rows["source_only"]["wrong_off_object"]["mean"], 2) == 0.51
    assert round(rows["regda"]["wrong_off_object"]["mean"], 2) == 0.43
    off = minus["control"]["wrong_off_object"]
    assert round(off["mean"], 2) == -0.10 and off["ci95"][1] < 0
    assert round(rows["regda"]["landing_on_other"]["mean"], 2) == 0.43
    assert round(rows["source_only"]["landing_on_other"]["mean"], 2) == 0.36


def test_v2_on_bodies_regda_does_not_move_where_errors_land(landing):
    """'where 0.68 of the errors already land on another keypoint (about twice the strongest chance model),
    RegDA moves that share by less than a hundredth against every baseline, each interval holding 0.'"""
    bodies = landing["tasks"]["bodies"]
    assert round(bodies["rows"]["source_only"]["landing_on_other"]["mean"], 2) == 0.68
    assert round(bodies["rows"]["source_only"]["ratio_to_strongest_chance"]["mean"]) == 2
    for base, d in bodies["regda_minus"].items():
        on_other = d["landing_on_other"]
        assert abs(on_other["mean"]) < 0.01 and on_other["ci95"][0] < 0 < on_other["ci95"][1], base


@pytest.fixture(scope="module")
def gains(v2) -> dict:
    """Mean over seeds of each row's target PCK minus its seed's source-only model, per evaluation (the figure)."""
    curves = resources.read_json("results/comparison_v2/curves.json")
    out = {}
    for task, rows in curves["tasks"].items():
        source_only = v2["tasks"][task]["rows"]["source_only"]
        start = dict(zip(map(str, source_only["seeds"]), source_only["target"]["pck@0.05/all"]["values"], strict=True))
        for row, r in rows.items():
            per_seed = [[v - start[seed] for v in c["target"]] for seed, c in r["seeds"].items()]
            out[task, row] = [sum(values) / len(values) for values in zip(*per_seed, strict=True)]
    return out


def test_v2_curves_the_control_gains_at_once_and_regda_over_time(gains):
    """'the control is about 6 points above its start at the first evaluation (iteration 80) and no higher at
    the end ... RegDA starts within a point of the control and ends about 6 points above it.'"""
    control, regda = gains["hands", "control"], gains["hands", "regda"]
    assert round(control[0]) == 6 and control[-1] <= control[0]
    assert abs(regda[0] - control[0]) < 1 and round(regda[-1] - control[-1]) == 6


def test_v2_curves_dann_and_dan_peak_at_the_end(gains):
    """'DANN and DAN are at their highest at the last evaluation'"""
    for row in ("dann", "dan"):
        assert gains["hands", row][-1] == max(gains["hands", row]), row


def test_v2_curves_bodies_same_budget_rows_stay_within_about_a_point(gains):
    """'On bodies continue-ERM, the control and RegDA stay within about a point of where they start at every
    evaluation, and no method without target labels moves its mean by more than 3.5 points.'"""
    for row in ("continue", "control", "regda"):
        assert round(max(abs(v) for v in gains["bodies", row])) <= 1, row
    rows = [row for task, row in gains if task == "bodies" and row not in ("finetune", "oracle")]
    assert {"continue", "control", "regda", "dan", "dann", "mcd", "dd", "false_max"} <= set(rows)
    assert max(abs(v) for row in rows for v in gains["bodies", row]) < 3.5


BODIES_METHODS = ("dan", "dann", "mcd", "dd", "false_max", "regda")


def test_v2_bodies_table_1_is_complete_on_three_seeds(v2):
    rows = v2["tasks"]["bodies"]["rows"]
    for row in BODIES_METHODS:
        assert set(rows[row]["seeds"]) >= set(v2["settings"]["baseline_seeds"]), row


def test_v2_on_bodies_every_method_is_within_3_points_and_none_beats_continue_erm(v2):
    """'Every method ends within 3 points of the source-only model, and none is above continue-ERM with an
    interval excluding 0.'"""
    for row in BODIES_METHODS:
        assert abs(_minus(v2, "bodies", row, "source_only")["mean"]) < 3, row
        assert _minus(v2, "bodies", row, "continue")["ci95"][0] <= 0, row


def test_v2_on_bodies_only_mcd_and_the_reversed_variant_beat_source_only(v2):
    """'Only MCD (about 2 points) and the reversed Table-2 variant (about 2.5) are above source only with
    intervals excluding 0; MCD pays for it with the largest loss of source PCK of the methods without target
    labels, about 2 points.'"""
    above = {row for row in BODIES_METHODS if _minus(v2, "bodies", row, "source_only")["ci95"][0] > 0}
    assert above == {"mcd", "false_max"}
    assert round(_minus(v2, "bodies", "mcd", "source_only")["mean"]) == 2
    assert round(_minus(v2, "bodies", "false_max", "source_only")["mean"], 1) == 2.5
    rows = v2["tasks"]["bodies"]["rows"]
    lost = {row: rows["source_only"]["source"]["mean"] - rows[row]["source"]["mean"] for row in rows}
    without_labels = {row: drop for row, drop in lost.items() if row not in ("finetune", "oracle", "source_only")}
    assert max(without_labels, key=without_labels.get) == "mcd" and round(without_labels["mcd"]) == 2


def test_v2_on_bodies_the_papers_order(v2):
    """'Of the 28 pairs ... 10 agree: the oracle above every method, and the reversed variant above source only,
    DAN and DANN. Three disagree, all because MCD is above source only, DAN and DANN ...; the other 15 are
    undecided, Table 2's three pairs among them.'"""
    pairs = _verdicts(v2, "bodies")
    assert len(pairs) == 28
    agree = {pair for pair, p in pairs.items() if p["verdict"] == "agrees"}
    assert agree == {("oracle", row) for row in ("source_only", *BODIES_METHODS)} | {
        ("false_max", row) for row in ("source_only", "dan", "dann")
    }
    disagree = {pair for pair, p in pairs.items() if p["verdict"] == "disagrees"}
    assert disagree == {("source_only", "mcd"), ("dan", "mcd"), ("dann", "mcd")}
    assert sum(p["verdict"] == "undecided" for p in pairs.values()) == 15
    for pair in (("regda", "dd"), ("regda", "false_max"), ("false_max", "dd")):
        assert pairs[pair]["verdict"] == "undecided", pair
