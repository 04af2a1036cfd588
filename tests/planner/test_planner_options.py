"""Option space and predictions: arms from curves, knob grids, source labels, extrapolation
limits, the family law for unprofiled sizes. Fixtures: tests/planner/planner_fixtures.py (synthetic)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import planner_fixtures as F
import pytest

from fitting import PowerLaw
from fitting import schema as S
from planner.space import (
    Arm,
    CurvePredictor,
    ExtraModel,
    ExtrapolationRefused,
    FamilyPredictor,
    Option,
    OptionSpace,
    arms_from_curves,
    knob_grid,
    parse_target,
    simulated_reason,
)


def test_pass_at_k_is_never_an_option_and_oracle_best_of_is_simulated(curves):
    sources, notes = arms_from_curves(curves)
    strategies = {s.arm.strategy for s in sources}
    assert strategies == {"majority", "greedy", "beam"}
    assert any("simulated" in n and "best_of" in n for n in notes)
    sources, _ = arms_from_curves(curves, include_simulated=True)
    best_of = [s.arm for s in sources if s.arm.strategy == "best_of"]
    assert best_of and all(a.simulated == "reward: oracle-step-checker" for a in best_of)
    assert "[simulated]" in Option(best_of[0], 4).label()
    assert Option(best_of[0], 4).choice()["simulated"].startswith("reward")


def test_majority_arm_moves_along_k_and_beam_configs_group_by_width(curves):
    sources, _ = arms_from_curves(curves, architectures=F.ARCH)
    maj = next(
        s for s in sources if s.arm.strategy == "majority" and s.arm.model == "lab-m" and s.difficulty == "2"
    )
    assert maj.arm.knob == "n" and maj.points["knob_value"].tolist() == list(range(1, 17))
    assert dict(maj.arm.fixed) == {
        "cot": True,
        "temperature": 1.0,
        "top_p": 1.0,
    }  # pool size and reward dropped
    beam = next(
        s for s in sources if s.arm.strategy == "beam" and s.arm.model == "lab-moe" and s.difficulty == "1"
    )
    assert beam.arm.knob == "width" and beam.points["knob_value"].tolist() == [1, 2, 4, 8]
    assert beam.arm.architecture == "moe" and len(beam.curve_keys) == 4


def test_simulated_reason_reads_reward_prm_and_verifier_labels():
    assert simulated_reason({"prm_source": "simulated:noisy-oracle(sigma=0.3)"}) == (
        "prm: simulated:noisy-oracle(sigma=0.3)"
    )
    assert (
        simulated_reason({"verifier_source": "oracle-step-checker"}, "accuracy")
        == "verifier: oracle-step-checker"
    )
    assert simulated_reason({"prm_source": "callable:my_prm"}) is None


def test_knob_grid_stops_at_four_times_the_profiled_maximum():
    g = knob_grid([1, 2, 4, 8, 16])
    assert g.max() == 64 and 16 in g and 23 in g and 3 in g
    assert knob_grid([1, 16], density="fine").tolist() == list(range(1, 65))
    assert knob_grid([2, 4], can_extrapolate=False).tolist() == [2, 3, 4]


def test_curve_predictor_labels_measured_fitted_extrapolated_and_refuses_beyond_4x():
    law = PowerLaw().with_params({"ceiling": 0.9, "scale": 0.5, "alpha": 0.5})
    x = np.array([1.0, 2.0, 4.0, 8.0])
    y = law.predict(x)
    p = CurvePredictor(x, y, y - 0.02, y + 0.02, law=law, extrapolation_error=0.01)
    pr = p.predict([4, 5, 16, 32])
    assert pr.source.tolist() == ["measured", "fitted", "extrapolated", "extrapolated"]
    np.testing.assert_allclose(pr.accuracy, law.predict(np.array([4, 5, 16, 32.0])))
    width = pr.hi - pr.lo
    assert width[2] > width[0] and width[3] > width[2]  # wider the further out
    # at 16 (one doubling past 8): offsets 0.02 x 2 doublings + 0.01 x 2
    assert width[2] == pytest.approx(2 * (0.02 * 2 + 0.01 * 2))
    with pytest.raises(ExtrapolationRefused, match="beyond 4x the largest profiled value 8"):
        p.predict([33])
    with pytest.raises(ExtrapolationRefused, match="below the smallest"):
        p.predict([0.5])
    untested = CurvePredictor(x, y, y - 0.02, y + 0.02, law=law, extrapolation_error=None)
    assert untested.predict([5]).source[0] == "fitted" and untested.x_limit == 8
    with pytest.raises(ExtrapolationRefused, match="extrapolation was never tested"):
        untested.predict([9])
    no_law = CurvePredictor(x, y, y, y)
    assert no_law.predict([3]).source[0] == "fitted"
    with pytest.raises(ExtrapolationRefused, match="no fitted law"):
        no_law.predict([9])


def test_family_law_predicts_an_unprofiled_size_and_refuses_far_sizes():
    truth = {"E": 0.05, "A": 40.0, "alpha": 0.3, "B": 0.3, "beta": 0.6}

    def acc(P, k):
        return 1 - (truth["E"] + truth["A"] * P ** -truth["alpha"] + truth["B"] * k ** -truth["beta"])

    k = np.arange(1, 17, dtype=float)
    sizes = {"s": 1e6, "m": 4e6, "l": 16e6}
    pts = {m: (k, acc(P, k), acc(P, k) - 0.01, acc(P, k) + 0.01) for m, P in sizes.items()}
    fam = FamilyPredictor(sizes, pts)
    pr = fam.predict(8e6, [4, 16, 48])
    np.testing.assert_allclose(pr.accuracy, acc(8e6, np.array([4, 16, 48.0])), atol=0.01)
    assert set(pr.source) == {"extrapolated"}
    assert np.all(pr.lo <= pr.accuracy) and np.all(pr.hi >= pr.accuracy)
    assert (pr.hi - pr.lo)[2] > (pr.hi - pr.lo)[1]
    with pytest.raises(ExtrapolationRefused, match="outside"):
        fam.predict(1e9, [4])
    with pytest.raises(ValueError, match="at least 3 profiled sizes"):
        FamilyPredictor({"s": 1e6, "m": 4e6}, {m: pts[m] for m in ("s", "m")})


def test_space_adds_an_unprofiled_family_member_labelled_extrapolated(curves):
    fams = {"lab-s": "lab", "lab-m": "lab", "lab-l": "lab", "lab-moe": "lab-moe"}
    params = {**F.PARAMS, "lab-xl": 3e7}
    sp = OptionSpace.from_curves(
        curves[curves[S.STRATEGY] == "pool"],
        F.toy_coster(params),
        architectures=F.ARCH,
        extra_models=[ExtraModel("lab-xl", "lab", 3e7)],
        model_params=F.PARAMS,
        families=fams,
        fit_if_missing=False,
    )
    tab = sp.table(sp.target("2"))
    xl = tab[tab["model"] == "lab-xl"]
    assert len(xl) and set(xl["source"]) == {"extrapolated"}
    lab_l = tab[(tab["model"] == "lab-l")].set_index("knob_value")["accuracy"]
    # a bigger model of the same family is predicted at least as accurate at equal k (within noise)
    assert (xl.set_index("knob_value")["accuracy"] - lab_l.reindex(xl["knob_value"])).dropna().min() > -0.03


def test_evaluate_one_option_equals_the_enumerated_row_and_mix_is_weighted(space):
    target = space.target("2")
    tab = space.table(target)
    row = tab.iloc[17]
    arm = space.arm_by_key(row["arm"])
    one = space.evaluate(Option(arm, row["knob_value"]), target)
    for k in ("accuracy", "accuracy_lo", "flops", "tokens", "latency_s"):
        assert one[k] == pytest.approx(row[k])
    mix = space.target("1:0.25,3:0.75")
    a1 = space.evaluate(Option(arm, row["knob_value"]), {"1": 1.0})
    a3 = space.evaluate(Option(arm, row["knob_value"]), {"3": 1.0})
    am = space.evaluate(Option(arm, row["knob_value"]), mix)
    assert am["accuracy"] == pytest.approx(0.25 * a1["accuracy"] + 0.75 * a3["accuracy"])
    assert am["flops"] == pytest.approx(0.25 * a1["flops"] + 0.75 * a3["flops"])


def test_costs_come_from_measured_tokens_linear_in_n_for_a_pool(space):
    arm = next(a for a in space.curves if a.strategy == "majority" and a.model == "lab-m")
    ev = space.evaluate_values(arm, [1, 16, 64], {"3": 1.0})
    per_sample, prompt = 10 + 5 * 3, 20 + 2 * 3
    np.testing.assert_allclose(ev["tokens"], [prompt + n * per_sample for n in (1, 16, 64)])
    assert ev["source"].tolist() == ["measured", "measured", "extrapolated"]


def test_parse_target_forms_and_errors():
    bins = {"1": 30, "2": 10}
    assert parse_target(None, bins) == {"1": 0.75, "2": 0.25}
    assert parse_target("all", {**bins, "all": 40}) == {"all": 1.0}
    assert parse_target("2", bins) == {"2": 1.0}
    with pytest.raises(ValueError, match="unknown difficulty '7'"):
        parse_target("7", bins)
    with pytest.raises(ValueError, match="must be a number"):
        parse_target("1:x", bins)


def test_curves_without_required_columns_are_refused():
    with pytest.raises(ValueError, match="missing column"):
        arms_from_curves(pd.DataFrame({S.MODEL: ["a"]}))


def test_arm_knobs_show_compute_knob_and_distinguishing_fixed_knobs():
    arm = Arm("m", "majority", "n", (("temperature", 0.7),), "pool", "majority@k")
    assert arm.knobs(16.0) == {"n": 16}
    assert arm.knobs(16.0, show=["temperature"]) == {"n": 16, "temperature": 0.7}
    assert json.dumps(Option(arm, 16).choice()) == (
        '{"model": "m", "architecture": "dense", "strategy": "majority", "knobs": {"n": 16}}'
    )


def test_ttc_fit_records_are_used_for_pool_curves_and_knob_sweeps(curves):
    from fitting.pipeline import fit_curves

    sub = curves[(curves[S.MODEL] == "lab-m") & (curves[S.METRIC] != "pass@k")].copy()
    sub[S.KNOB] = np.where(
        sub[S.STRATEGY] == "beam", "width", np.where(sub[S.STRATEGY] == "pool", "samples", None)
    )
    sub.loc[sub[S.STRATEGY] == "beam", S.K] = [
        json.loads(c)["width"] for c in sub.loc[sub[S.STRATEGY] == "beam", S.CONFIG]
    ]
    fits = fit_curves(sub, None, n_boot=0)
    pool_fit = next(f for f in fits if f[S.METRIC] == "majority@k" and f[S.DIFFICULTY] == "2")
    pool_fit["band"] = {"x": [1.0, 64.0], "estimate": [0.5, 0.5], "lo": [0.45, 0.40], "hi": [0.55, 0.60]}
    pool_fit["note"] = "from ttc fit"
    sp = OptionSpace.from_curves(sub, F.toy_coster(), fits=fits)
    maj = next(a for a in sp.curves if a.strategy == "majority")
    assert sp.curves[maj]["2"].fit_note == "from ttc fit"
    curve = sp.curves[maj]["2"]
    pr = curve.predict([64.0])
    # the band's own estimate (flat at 0.5), moved to the measured accuracy at the last point, 16
    last = curve.points.iloc[-1]
    assert pr.accuracy[0] == pytest.approx(0.5 + (last["accuracy"] - 0.5))
    # at x = 64 (two doublings past 16): the wider of the band offset and 3x the measured offset
    # at 16, widened by the held-out extrapolation error times 3
    offset = min(-0.10, 3 * (last["accuracy_lo"] - last["accuracy"]))
    assert pr.lo[0] == pytest.approx(pr.accuracy[0] + offset - 3 * pool_fit["extrapolation_error"])
    beam = next(a for a in sp.curves if a.strategy == "beam")
    beam_fit = next(f for f in fits if f[S.STRATEGY] == "beam" and f[S.DIFFICULTY] == "2")
    assert sp.curves[beam]["2"].predictor.law.name == beam_fit["law"]  # the sweep record, by its base config
    assert sp.curves[beam]["2"].fit_note == beam_fit["note"]


def test_a_family_law_that_does_not_converge_is_not_used(curves, monkeypatch):
    """The family fit never runs with warnings ignored or converged_ unchecked: a failed
    joint fit warns, and the unprofiled size is left out with a note saying why."""
    from fitting import ConvergenceWarning, FamilyLaw
    from planner.space import predict

    class OneStep(FamilyLaw):
        def __init__(self, **kw):
            super().__init__(**{**kw, "max_iter": 1})

    monkeypatch.setattr(predict, "FamilyLaw", OneStep)
    fams = {"lab-s": "lab", "lab-m": "lab", "lab-l": "lab", "lab-moe": "lab-moe"}
    with pytest.warns(ConvergenceWarning, match="joint fit"):
        sp = OptionSpace.from_curves(
            curves[curves[S.STRATEGY] == "pool"],
            F.toy_coster({**F.PARAMS, "lab-xl": 3e7}),
            architectures=F.ARCH,
            extra_models=[ExtraModel("lab-xl", "lab", 3e7)],
            model_params=F.PARAMS,
            families=fams,
            fit_if_missing=False,
        )
    assert not any(a.model == "lab-xl" for a in sp.curves)
    assert any("extra model lab-xl" in n and "did not converge" in n for n in sp.notes)
