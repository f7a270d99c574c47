"""``benchmarks/suite.py --rule-steps`` runs end to end: every rule's step time against BP's, the
bounds of issues 31 and 32, and the JSON (on tiny networks, a few steps)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import rule_steps  # noqa: E402
import suite  # noqa: E402
from hand_loops import MLP  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # the suite sets torch's thread count


def test_bounds_follow_the_rules_options():
    assert rule_steps.pc_case(5).bound == pytest.approx(0.8 * 6)
    assert rule_steps.pc_case(20).bound == pytest.approx(0.8 * 21)
    assert rule_steps.ep_case().bound == pytest.approx(0.8 * (20 + 2 * 10 + 1))  # the defaults
    one_sided = rule_steps.ep_case(free_steps=8, nudge_steps=3, symmetric_nudging=False)
    assert one_sided.bound == pytest.approx(0.8 * (8 + 3 + 1))
    fwdgrad = next(c for c in rule_steps.GROUPS["mlp4x2000"].cases if c.label == "fwdgrad")
    assert fwdgrad.bound == 1.3 and fwdgrad.rule["num_directions"] == 1
    assert fwdgrad.rule["perturb"] == "activities"
    assert {c.label for c in rule_steps.GROUPS["pcx_mlp"].cases} == {"bp", "pc T=5", "pc T=20", "ep"}
    assert rule_steps.GROUPS["pcx_mlp"].net == MLP((128, 128, 128))
    assert rule_steps.GROUPS["pcx_mlp"].batch_size == 64


def test_rule_steps_writes_ratios_to_bp_and_judges_the_bounds(tmp_path, monkeypatch, capsys):
    tiny = rule_steps.Group(
        "tiny",
        MLP((16, 16)),
        8,
        2,
        (
            rule_steps.BP,
            rule_steps.pc_case(2),
            rule_steps.ep_case(free_steps=2, nudge_steps=1),
            rule_steps.RuleCase("pepita", {"type": "pepita"}),
            rule_steps.RuleCase("fwdgrad", {"type": "fwdgrad"}, 1.3, "1.3"),
        ),
    )
    monkeypatch.setitem(rule_steps.GROUPS, "tiny", tiny)
    out = tmp_path / "steps.json"
    code = suite.main(["--rule-steps", "--rule-groups", "tiny", "--rounds", "1", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    rows = result["devices"]["cpu"]["rows"]
    assert [row["rule"] for row in rows] == ["bp", "pc T=2", "ep", "pepita", "fwdgrad"]
    assert rows[0]["ratio_to_bp"] == 1.0 and rows[0]["met"] is None
    for row in rows:
        assert row["step_ms"] > 0 and row["steps"] == 2 and len(row["round_seconds"]) == 1
        assert row["ratio_to_bp"] == pytest.approx(row["step_ms"] / rows[0]["step_ms"])
        if row["bound"] is not None:
            assert row["met"] == (row["cpu_ratio_to_bp"] <= row["bound"])
    assert result["devices"]["cpu"]["settings"]["judged_on"] == "CPU-time ratio"
    assert result["machine"]["threads"] == 1
    assert "| pc T=2 | tiny | 8 |" in capsys.readouterr().out


def test_an_unknown_group_is_refused():
    with pytest.raises(SystemExit):
        suite.main(["--rule-steps", "--rule-groups", "nope"])
