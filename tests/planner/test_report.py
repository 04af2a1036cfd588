"""`ttc report`: the HTML embeds valid Vega-Lite specs and opens offline, PNGs and Markdown are
written, every frame agrees with the planner computed independently (ttc recommend, brute-force
Pareto fronts, the saturation definition, the KV formula, the fixture's construction), and the
plot functions build the layers they promise. Data: the synthetic fixture of
tests/planner/report_fixtures.py (known per-question probabilities; no model is run). The report on a
real `ttc profile` run is in tests/planner/test_report_lab.py."""

from __future__ import annotations

import html
import importlib
import json
import re

import altair as alt
import jsonschema
import numpy as np
import pandas as pd
import pytest
import report_fixtures as F
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from planner.profile import load_profile
from planner.recommend import plan
from planner.report import build_report
from planner.report import charts as C
from planner.report import data as D
from planner.report.format import format_pct
from planner.search import split_questions
from planner.split_engine import split_seeds

N_BOOT = 10  # fewer bootstrap replicates than the default: these tests check the report, not intervals
CHARTS = F.CHART_KEYS


def _marks(spec) -> set[str]:
    out = set()
    if isinstance(spec, dict):
        if "mark" in spec:
            m = spec["mark"]
            out.add(m["type"] if isinstance(m, dict) else m)
        for v in spec.values():
            out |= _marks(v)
    elif isinstance(spec, list):
        for v in spec:
            out |= _marks(v)
    return out


def _data_blocks(spec) -> list[dict]:
    """Every ``data`` object of a (possibly layered, faceted or concatenated) spec."""
    out = []
    if isinstance(spec, dict):
        if isinstance(spec.get("data"), dict):
            out.append(spec["data"])
        for v in spec.values():
            out += _data_blocks(v)
    elif isinstance(spec, list):
        for v in spec:
            out += _data_blocks(v)
    return out


def _validator():
    core = importlib.import_module(f"altair.vegalite.{alt.SCHEMA_VERSION.split('.')[0]}.schema.core")
    return jsonschema.Draft7Validator(core.load_schema())


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory):
    return F.write_profile(tmp_path_factory.mktemp("fixture-profile"))


@pytest.fixture(scope="module")
def built(profile_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    return build_report(profile_dir, out, gpu="h100", n_boot=N_BOOT, qps=20.0)


@pytest.fixture(scope="module")
def ctx(profile_dir, built):
    prof = load_profile(profile_dir, n_boot=N_BOOT)
    return D.planning_context(prof, gpu="h100")


@pytest.fixture(scope="module")
def budgets(built):
    grid = built.content.frames["budget_grid"]
    return sorted(grid[D.BUDGET].unique())


# ---- the files ---------------------------------------------------------------------------------------
def test_html_embeds_one_valid_vega_lite_spec_per_chart(built):
    page = built.html.read_text()
    parser = F.SpecParser()
    parser.feed(page)
    assert {t.removeprefix("chart-") for t, _ in parser.specs} == CHARTS
    validator = _validator()
    for target, text in parser.specs:
        spec = json.loads(text)
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v"), target
        assert list(validator.iter_errors(spec)) == [], target
        datasets = _data_blocks(spec)
        assert datasets and all(d.get("values") for d in datasets), f"{target}: data not inline"
        assert _marks(spec), f"{target}: no marks"
        assert f'id="{target}"' in page or f"id='{target}'" in page
    # the validator is not a rubber stamp: a broken mark is rejected
    broken = json.loads(parser.specs[0][1])
    broken["layer"][0]["mark"] = {"type": "no-such-mark"}
    assert list(validator.iter_errors(broken))


def test_html_opens_offline(built):
    page = built.html.read_text()
    parser = F.SpecParser()
    parser.feed(page)
    external = [s for s in parser.srcs if not s.startswith("#")]
    assert external == [], f"the page loads {external}"
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page and "@import" not in page
    assert "vegaEmbed" in page and "window.vega=" in page  # the libraries are inlined
    for target, text in parser.specs:
        assert all("url" not in d for d in _data_blocks(json.loads(text))), (
            f"{target} loads its data from a URL"
        )


def test_pngs_and_markdown_are_written(built):
    assert set(built.pngs) == CHARTS
    for path in built.pngs.values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, path
    md = built.markdown.read_text()
    for key, path in built.pngs.items():
        assert f"]({path.parent.name}/{key}.png)" in md
    assert "## Provenance: what was measured, what is predicted" in md
    assert "| difficulty | budget | option |" in md
    assert (
        md.rstrip().splitlines()[-3].startswith("1. `ttc recommend ")
    )  # the report ends with the next steps
    assert "## Next steps" in md and "`ttc evaluate " in md


# ---- the frames against the planner, computed independently --------------------------------------------
def test_budget_map_is_what_ttc_recommend_chooses(built, ctx, budgets):
    grid = built.content.frames["budget_grid"]
    assert set(grid[D.TARGET]) == {"1", "2", "3", ctx.mix_label}
    assert len(grid) == 4 * len(budgets)
    for target, difficulty in (("2", "2"), (ctx.mix_label, None)):
        for b in (budgets[1], budgets[-1]):
            cell = grid[(grid[D.TARGET] == target) & np.isclose(grid[D.BUDGET], b)].iloc[0]
            rec = plan(ctx.profile, {"flops": b}, difficulty=difficulty, hardware="h100", method="exhaustive")
            knobs = " ".join(f"{k}={v}" for k, v in rec.choice["knobs"].items())
            assert cell[D.OPTION] == f"{rec.choice['model']} {rec.choice['strategy']}" + (
                f" {knobs}" if knobs else ""
            )
            assert cell[S.ACCURACY] == pytest.approx(rec.expected_accuracy, abs=1e-6)
            assert cell[D.SOURCE] == rec.source and cell["flops"] <= b * (1 + 1e-9)


def test_pareto_front_is_exactly_the_non_dominated_options(built):
    p = built.content.frames["pareto"]
    cost, acc = p[D.COST].to_numpy(float), p[S.ACCURACY].to_numpy(float)
    dominated = np.array([np.any((cost <= c) & (acc > a + 1e-12)) for c, a in zip(cost, acc, strict=True)])
    front = p["on_front"].to_numpy(bool)
    assert not np.any(front & dominated)
    # every non-dominated cost-accuracy pair is on the front (ties in both keep one option)
    pairs = {(round(c, 6), round(a, 12)) for c, a, f in zip(cost, acc, front, strict=True) if f}
    for c, a, d in zip(cost, acc, dominated, strict=True):
        if not d and not np.any((cost < c) & (acc >= a - 1e-12)):
            assert (round(c, 6), round(a, 12)) in pairs
    grid = built.content.frames["budget_grid"]
    mix = grid[(grid[D.TARGET] == grid[D.TARGET].iloc[-1]) & grid[D.ARM].notna()]
    tagged = p[p["recommended"] != ""]
    assert len(tagged) == mix[[D.ARM, D.KNOB_VALUE]].drop_duplicates().shape[0]


def test_measured_points_are_the_curves_table(built, ctx):
    acc = built.content.frames["accuracy"]
    curves = ctx.profile.curves
    for model in ("fix-s", "fix-l"):
        rows = acc[
            (acc[D.KIND] == "measured")
            & (acc[D.PANEL] == "2")
            & (acc[S.MODEL] == model)
            & (acc[S.STRATEGY] == "majority")
        ]
        ref = curves[
            (curves[S.MODEL] == model) & (curves[S.DIFFICULTY] == "2") & (curves[S.METRIC] == "majority@k")
        ]
        assert sorted(rows[D.KNOB_VALUE]) == sorted(ref[S.K].astype(float))
        merged = rows.merge(ref.assign(x=ref[S.K].astype(float)), left_on=D.KNOB_VALUE, right_on="x")
        np.testing.assert_allclose(merged[f"{S.ACCURACY}_x"], merged[f"{S.ACCURACY}_y"])
        np.testing.assert_allclose(merged[f"{S.ACCURACY_LO}_x"], merged[f"{S.ACCURACY_LO}_y"])
        assert (merged[D.SOURCE] == "measured").all()


def test_law_rows_are_predictions_between_and_beyond_profiled_values(built, ctx):
    acc = built.content.frames["accuracy"]
    law = acc[acc[D.KIND] == "law"]
    assert len(law) and set(law[D.SOURCE]) <= {"fitted", "extrapolated"}
    for (panel, arm), rows in law.groupby([D.PANEL, D.ARM]):
        meas = acc[(acc[D.KIND] == "measured") & (acc[D.PANEL] == panel) & (acc[D.ARM] == arm)][D.KNOB_VALUE]
        x = rows[D.KNOB_VALUE].to_numpy(float)
        assert not np.isclose(x[:, None], meas.to_numpy(float)[None, :]).any()
        beyond = x > meas.max() * (1 + 1e-9)
        assert (rows[D.SOURCE].to_numpy() == np.where(beyond, "extrapolated", "fitted")).all()
        assert (rows[S.ACCURACY_LO] <= rows[S.ACCURACY] + 1e-12).all()
        assert (rows[S.ACCURACY] <= rows[S.ACCURACY_HI] + 1e-12).all()


def test_saturation_points_gain_epsilon_per_doubling(built, ctx):
    from fitting.uncertainty import DEFAULT_EPSILON

    sat = built.content.frames["accuracy"]
    sat = sat[sat[D.KIND] == "saturation"]
    assert len(sat) >= 3
    for _, r in sat.iterrows():
        law = ctx.space.curves[ctx.space.arm_by_key(r[D.ARM])][r[D.PANEL]].predictor.law
        n = float(r[D.KNOB_VALUE])
        gain = float(law.predict(np.array([2 * n]))[0] - law.predict(np.array([n]))[0])
        x_min = ctx.space.curves[ctx.space.arm_by_key(r[D.ARM])][r[D.PANEL]].points["knob_value"].min()
        assert gain == pytest.approx(DEFAULT_EPSILON, abs=1e-6) or (
            n == pytest.approx(x_min) and gain < DEFAULT_EPSILON
        )
        if pd.notna(r["saturation_lo"]):
            assert r["saturation_lo"] <= n * (1 + 1e-9) and n <= r["saturation_hi"] * (1 + 1e-9)


def test_allocation_is_never_worse_than_one_option_and_the_ratio_is_a_cost_ratio(built):
    curves, table = built.content.frames["allocation"], built.content.frames["allocation_table"]
    ok = table[table["note"] == ""]
    assert len(ok) >= 3
    assert (ok["allocation_accuracy"] >= ok["single_accuracy"] - 1e-12).all()
    np.testing.assert_allclose(ok["compute_ratio"], ok["single_cost"] / ok["cost_to_match"])
    assert (ok["compute_ratio"] >= 1 - 1e-9).all() and (
        ok["allocation_cost"] <= ok[D.BUDGET] * (1 + 1e-9)
    ).all()
    front = curves[(curves[D.KIND] == "frontier") & curves[D.SERIES].str.startswith("per-difficulty")]
    single = curves[(curves[D.KIND] == "frontier") & curves[D.SERIES].str.startswith("best single")]
    for c, a in zip(
        single[D.COST], single[S.ACCURACY], strict=True
    ):  # the allocation dominates at every cost
        assert front.loc[front[D.COST] <= c * (1 + 1e-9), S.ACCURACY].max() >= a - 1e-12


def test_moe_is_paired_by_active_and_by_total_parameters(built):
    pairs, best = built.content.frames["moe_pairs"], built.content.frames["moe_best"]
    # fixture specs: MoE 3.35B active / 30.5B total; dense 0.49B, 1.54B, 7.62B
    assert pairs.iloc[0]["dense, equal active"].startswith("fix-m (1.54B)")
    assert pairs.iloc[0]["dense, equal total"].startswith("fix-l (7.62B)")
    fronts = built.content.frames["moe"]
    assert set(fronts["cost_key"]) == {"flops", "usd"} and set(fronts[S.MODEL]) == {
        "fix-moe",
        "fix-m",
        "fix-l",
    }
    for _, f in fronts.groupby([D.SERIES, "cost_key"]):  # each front: cost up, accuracy strictly up
        f = f.sort_values(D.COST)
        assert np.all(np.diff(f[S.ACCURACY]) > 0)
    assert len(best) == len(built.content.frames["budget_grid"][D.BUDGET].unique())


def test_kv_lines_follow_the_formula_and_measured_points_the_profile(built, ctx):
    kv = built.content.frames["kv"]
    spec = F.spec("fix-l")
    b = spec.kv_bytes_per_token  # no sliding-window layers in the fixture's configs
    pred = kv[(kv[S.MODEL] == "fix-l") & (kv[D.KIND] == "predicted") & (kv["context_tokens"] == 1024)]
    pool = ctx.profile.curves
    pool = pool[(pool[S.MODEL] == "fix-l") & (pool[S.STRATEGY] == "pool") & (pool[S.K] == pool[S.POOL_SIZE])]
    prompt = round(float(pool[S.MEAN_PROMPT_TOKENS].mean()))
    for _, r in pred.iterrows():  # prompt held once, n chains of (1024 - prompt) tokens
        assert r[S.KV_BYTES_PEAK] == pytest.approx(b * (prompt + r["samples"] * (1024 - prompt)))
    unshared = kv[(kv[S.MODEL] == "fix-l") & (kv[D.KIND] == "predicted") & (kv["prefix_sharing"] == False)]  # noqa: E712
    assert len(unshared) and all(
        r[S.KV_BYTES_PEAK] == pytest.approx(b * r["samples"] * r["context_tokens"])
        for _, r in unshared.iterrows()
    )
    meas = kv[(kv[S.MODEL] == "fix-l") & (kv[D.KIND] == "measured")]
    s = ctx.profile.samples
    rows = s[(s[S.MODEL] == "fix-l") & (s[S.STRATEGY] == "pool")]
    per_q = rows.groupby([S.DIFFICULTY, S.QUESTION_ID])[S.KV_BYTES_PEAK].sum().groupby(level=0).mean()
    assert sorted(meas[S.KV_BYTES_PEAK]) == pytest.approx(sorted(per_q.to_numpy()))
    assert set(meas[D.SOURCE]) == {f"measured ({F.KV_SOURCE})"}
    cap = kv[(kv[S.MODEL] == "fix-l") & (kv[D.KIND] == "capacity")][S.KV_BYTES_PEAK].iloc[0]
    assert cap == pytest.approx(80e9 * 0.9 - spec.weight_bytes)  # one H100: 80 GB


def test_capacity_dollars_follow_gpus_and_price(built):
    cap = built.content.frames["capacity"]
    assert len(cap) >= 2 and (cap["gpus"] == cap["tp"] * cap["replicas"]).all()
    np.testing.assert_allclose(cap["usd_per_1k_queries"], 1000 * cap["gpus"] * 2.95 / 3600 / 20.0)
    assert (cap["usd_per_1k_queries_full_load"] <= cap["usd_per_1k_queries"] * (1 + 1e-9)).all()
    assert (cap["utilization"] <= 1 + 1e-9).all()


def test_every_table_row_says_where_its_accuracy_comes_from(built):
    grid = built.content.frames["budget_grid"]
    fits = grid[grid[D.ARM].notna()]
    assert set(fits[D.SOURCE]) <= {"measured", "fitted", "extrapolated"}
    page = built.html.read_text()
    assert "predicted: analytic cost model" in page and "measured (synthetic-fixture)" in page


# ---- the charts ---------------------------------------------------------------------------------------------
def test_accuracy_chart_layers_a_band_on_lo_hi_and_a_line_from_one_base(built):
    d = C.plot_accuracy_vs_compute(built.content.frames["accuracy"], ["1", "2", "3", "mix"]).to_dict()
    assert d["facet"]["field"] == D.PANEL and d["facet"]["sort"] == ["1", "2", "3", "mix"]
    band, line, errors, points, sat = d["spec"]["layer"]
    assert band["mark"]["type"] == "area"
    assert (band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == (S.ACCURACY_LO, S.ACCURACY_HI)
    assert line["mark"]["type"] == "line" and line["encoding"]["y"]["field"] == S.ACCURACY
    assert (errors["encoding"]["y"]["field"], errors["encoding"]["y2"]["field"]) == (
        S.ACCURACY_LO,
        S.ACCURACY_HI,
    )
    for layer, kind in ((band, "law"), (line, "law"), (points, "measured"), (sat, "saturation")):
        assert layer["transform"][0] == {"filter": f"datum.{D.KIND} === '{kind}'"}
        assert layer["encoding"]["x"]["field"] == S.FLOPS and layer["encoding"]["x"]["scale"]["type"] == "log"
        assert layer["encoding"]["color"]["field"] == S.MODEL
    # bands and error bars only for each model's best curve unless the checkbox asks for all
    assert band["transform"][1] == {"filter": "(datum.featured || every_band) && datum.source === 'fitted'"}
    assert errors["transform"][1] == {"filter": "(datum.featured || every_band) && datum.no_law"}
    assert [p["name"] for p in d["params"]] == ["every_band"] and d["params"][0]["bind"][
        "input"
    ] == "checkbox"
    # the line style has a legend: solid where fitted, dotted where extrapolated
    dash = line["encoding"]["strokeDash"]
    assert (
        dash["field"] == D.SOURCE
        and dash["scale"]["domain"] == ["fitted", "extrapolated"]
        and "legend" in dash
    )
    assert points["encoding"]["shape"]["field"] == S.STRATEGY
    assert sat["mark"]["shape"] == "diamond" and sat["mark"]["filled"] is False


def test_accuracy_chart_features_each_models_best_curve_per_panel(built):
    acc = built.content.frames["accuracy"]
    values = pd.DataFrame(C.plot_accuracy_vs_compute(acc).to_dict()["data"]["values"])
    featured = values[values["featured"]]
    meas = acc[acc[D.KIND] == "measured"]
    for (panel, model), g in meas.groupby([D.PANEL, S.MODEL]):
        best_arms = set(g.loc[g[S.ACCURACY] == g[S.ACCURACY].max(), D.ARM])
        mine = set(featured.loc[(featured[D.PANEL] == panel) & (featured[S.MODEL] == model), D.ARM])
        assert len(mine) == 1 and mine <= best_arms, (panel, model)  # one curve per model, a best one


# ---- the headline findings: one computation, quoted in the report ---------------------------------------------
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?")


def test_findings_are_quoted_verbatim_and_every_number_is_in_the_report(built):
    f = built.content.findings
    assert len(f.texts) == 3
    md, page = built.markdown.read_text(), built.html.read_text()
    rest = md
    for text in f.texts:
        assert text in md and html.escape(text) in page
        rest = rest.replace(text, "")
    for text in f.texts:
        for number in NUMBER.findall(text):
            assert number in rest, (number, text)


def test_the_size_finding_is_the_held_out_accuracy(built, ctx):
    """The largest dense model's greedy accuracy in the finding is the mean over the splits of its
    accuracy on each split's held-out half, computed here from the raw samples."""
    s = ctx.profile.samples
    diff = s.groupby(S.QUESTION_ID)[S.DIFFICULTY].first().astype(str).to_dict()
    rows = s[(s[S.MODEL] == "fix-l") & (s[S.STRATEGY] == "greedy") & (s[S.DIFFICULTY] == "3")]
    correct = rows.groupby(S.QUESTION_ID)[S.CORRECT].mean()
    held_out = []
    for seed in split_seeds(0, built.content.findings.n_splits):
        _, test = split_questions(list(diff), diff, seed)
        held_out.append(correct[[q for q in correct.index if q in test]].mean())
    text = built.content.findings.texts[0]
    assert text.startswith(f"Level 3: fix-l greedy answers {format_pct(np.mean(held_out))} ")


def test_the_report_ends_with_the_next_steps_for_this_profile(built, profile_dir):
    steps = built.content.next_steps
    assert [cmd.split()[1] for cmd, _ in steps] == ["recommend", "evaluate", "profile"]
    assert str(profile_dir) in steps[0][0] and "--difficulty 3" in steps[0][0]
    page = built.html.read_text()
    assert page.index("Next steps") > page.index("Provenance")


def test_pareto_chart_rings_the_recommended_options(built):
    d = C.plot_pareto(built.content.frames["pareto"], "flops").to_dict()
    marks = [layer["mark"]["type"] for layer in d["layer"]]
    assert marks == ["circle", "line", "point", "point", "text"]
    assert d["layer"][1]["mark"]["interpolate"] == "step-after"
    assert d["layer"][3]["transform"] == [{"filter": "datum.recommended !== ''"}]
    assert d["layer"][4]["encoding"]["text"]["field"] == "recommended"
    assert all(layer["encoding"]["x"]["scale"]["type"] == "log" for layer in d["layer"])


def test_budget_map_is_a_coloured_grid_with_text(built):
    d = C.plot_budget_map(built.content.frames["budget_grid"]).to_dict()
    empty, rect, marks, text = d["layer"]
    assert rect["mark"]["type"] == "rect" and rect["encoding"]["color"]["field"] == S.MODEL
    assert rect["encoding"]["opacity"]["field"] == D.SOURCE
    assert marks["mark"]["type"] == "point" and marks["encoding"]["shape"]["field"] == S.STRATEGY
    assert text["mark"]["type"] == "text" and text["encoding"]["text"]["field"] == "cell_text"
    assert all(
        (la["encoding"]["x"]["field"], la["encoding"]["y"]["field"]) == (D.BUDGET_LABEL, D.TARGET)
        for la in d["layer"]
    )
    assert len(d["data"]["values"]) == len(built.content.frames["budget_grid"])


def _channels(spec, channel: str) -> list[dict]:
    """Every encoding of ``channel`` in a (layered, faceted, concatenated) spec."""
    out = []
    if isinstance(spec, dict):
        enc = spec.get("encoding")
        if isinstance(enc, dict) and channel in enc:
            out.append(enc[channel])
        for v in spec.values():
            out += _channels(v, channel)
    elif isinstance(spec, list):
        for v in spec:
            out += _channels(v, channel)
    return out


def test_one_encoding_everywhere_model_colour_strategy_shape_source_opacity(built, ctx):
    specs = built.content.specs()
    models = D.model_order(ctx)
    colours, shapes = {}, {}
    for key, spec in specs.items():
        for c in _channels(spec, "color"):
            if c.get("field") == S.MODEL:
                colours[key] = (tuple(c["scale"]["domain"]), tuple(c["scale"]["range"]))
        for c in _channels(spec, "shape"):
            if c.get("field") == S.STRATEGY:
                shapes[key] = (tuple(c["scale"]["domain"]), tuple(c["scale"]["range"]))
        for c in _channels(spec, "opacity"):
            if c.get("field") == D.SOURCE:
                assert c["scale"]["domain"] == ["measured", "fitted", "extrapolated"], key
    # a model keeps its colour, a strategy its shape, in every chart that shows them, in one legend order
    assert set(colours) >= {"budget_map", "accuracy", "pareto", "moe", "kv"}
    assert len(set(colours.values())) == 1 and list(next(iter(colours.values()))[0]) == models
    assert set(shapes) >= {"budget_map", "accuracy", "pareto", "moe"}
    assert len(set(shapes.values())) == 1
    strategies = list(next(iter(shapes.values()))[0])
    assert strategies == sorted(strategies)
    # no chart colours something other than a model with the model palette
    alloc = [c for c in _channels(specs["allocation"], "color") if c.get("field") == D.SERIES]
    assert alloc and not set(alloc[0]["scale"]["range"]) & set(next(iter(colours.values()))[1])


def test_kv_legend_is_in_context_order_and_every_line_style_has_a_legend(built):
    kv = built.content.specs()["kv"]
    (dash,) = [c for c in _channels(kv, "strokeDash") if c.get("field") == D.SERIES]
    domain = dash["scale"]["domain"]
    numbers = [int(re.sub(r"\D", "", d.split(" tokens")[0])) for d in domain if "tokens per sample" in d]
    assert numbers == sorted(numbers) and len(numbers) >= 2 and "legend" in dash
    pareto = built.content.specs()["pareto"]
    assert any("legend" in c for c in _channels(pareto, "strokeDash"))  # the front's line is in the legend


def test_pngs_are_large_enough_for_their_panels(built):
    for key, path in built.pngs.items():
        data = path.read_bytes()
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width >= 1200, (key, width, height)  # 2 pixels per CSS pixel


def test_every_budget_says_its_unit(built):
    grid = built.content.frames["budget_grid"]
    assert grid[D.BUDGET_LABEL].str.endswith("FLOPs/query").all()
    md = built.markdown.read_text()
    summary = md.split("## Summary")[1].split("## ")[0]
    assert summary.count("FLOPs/query") >= len(grid[D.BUDGET].unique())


def test_allocation_moe_and_kv_charts(built):
    a = C.plot_allocation(built.content.frames["allocation"], "flops").to_dict()
    assert a["layer"][1]["mark"]["type"] == "rule" and a["layer"][1]["encoding"]["x2"]["field"] == "cost2"
    m = C.plot_moe(built.content.frames["moe"]).to_dict()
    (row,) = m["vconcat"]  # one MoE model: FLOPs and US$ side by side
    assert [p["layer"][0]["encoding"]["x"]["title"] for p in row["hconcat"]] == [
        "FLOPs per query (predicted)",
        "US$ per query (predicted)",
    ]
    assert [p["layer"][0]["mark"]["interpolate"] for p in row["hconcat"]] == ["step-after"] * 2
    k = C.plot_kv_cache(built.content.frames["kv"]).to_dict()
    y = k["spec"]["layer"][0]["encoding"]["y"]
    assert y["field"] == S.KV_BYTES_PEAK and y["scale"]["type"] == "log"
    assert [layer["transform"][0]["filter"] for layer in k["spec"]["layer"]] == [
        f"datum.{D.KIND} === '{x}'" for x in ("predicted", "measured", "capacity", "capacity")
    ]


# ---- variants and the command line ----------------------------------------------------------------------
def test_a_profile_without_moe_or_difficulty_bins_omits_those_sections_with_a_note(tmp_path):
    folder = F.write_profile(tmp_path / "dense", models=("fix-s", "fix-m"), n_questions=5, single_bin=True)
    files = build_report(folder, tmp_path / "r.html", n_boot=0, png=False)
    notes = {s.key: (s.chart, s.notes) for s in files.content.sections}
    assert notes["moe"] == (None, ["the profile has no MoE model: the dense-vs-MoE comparison is omitted"])
    assert notes["allocation"] == (None, ["the profile has a single difficulty bin: nothing to allocate"])
    parser = F.SpecParser()
    page = files.html.read_text()
    parser.feed(page)
    assert {t.removeprefix("chart-") for t, _ in parser.specs} == CHARTS - {"moe", "allocation"}
    assert "the profile has no MoE model" in page and files.pngs == {}
    assert set(files.content.frames["budget_grid"][D.TARGET]) == {"all"}


def test_cli_writes_the_report_and_rejects_bad_requests(profile_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli" / "r.html"
    r = runner.invoke(
        app,
        [
            "report",
            str(profile_dir),
            "--out",
            str(out),
            "--no-png",
            "--n-boot",
            str(N_BOOT),
            "--budgets",
            "1e11,1e12",
            "--qps",
            "5",
        ],
    )
    assert r.exit_code == 0, r.output
    assert out.exists() and out.with_suffix(".md").exists() and not (tmp_path / "cli" / "r-charts").exists()
    assert "B2: 1e+12 FLOPs/query" in out.read_text()
    r = runner.invoke(app, ["report", str(profile_dir), "--budget-key", "bananas", "--out", str(out)])
    assert (
        r.exit_code == 2
        and "budget_key must be one of flops, effective_flops, tokens, usd, latency_s" in r.output
    )
    r = runner.invoke(app, ["report", str(tmp_path / "missing"), "--out", str(out)])
    assert r.exit_code == 2 and "no such samples folder" in r.output
