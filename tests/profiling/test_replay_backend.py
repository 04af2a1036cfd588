"""``ttc profile --backend replay``: a recording profiled again draws exactly its recorded
samples (none invented, none repeated, reproducible by seed), counts hypergeometrically, refuses
what it cannot replay, and feeds ``ttc fit`` and ``ttc recommend``."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from typer.testing import CliRunner

from fitting import schema as S
from planner.cli import app
from profiling import storage
from profiling.backends import ExhaustedUnit
from profiling.backends.replay import ReplaySource, pool_offsets, prefix_successes
from profiling.runner import profile
from profiling.strategies import expand_specs, get_strategy

ROOT = Path(__file__).resolve().parents[2]
COUNTS = ROOT / "tests" / "data" / "monkeys_gsm8k_pythia_counts_slice.csv"
MODELS = ("m-a", "m-b")
QUESTIONS = [f"q{i}" for i in range(6)]
#: what identifies a recorded sample: every recorded column a replayed row keeps
RECORDED = [
    S.MODEL,
    S.QUESTION_ID,
    S.ANSWER,
    S.REFERENCE,
    S.CORRECT,
    S.PROMPT_TOKENS,
    S.COMPLETION_TOKENS,
    S.LATENCY_S,
    S.LOGPROB,
]
runner = CliRunner()


def write_source(path: Path) -> Path:
    """A recording of two models x 6 questions: pools of 8 samples each, recorded by two runs
    (pool n=5 and n=3, the same other knobs), every sample distinguishable by its answer, token
    count and latency; greedy rows for m-a only."""
    rng = np.random.default_rng(0)
    lines = []
    for m in MODELS:
        for q in QUESTIONS:
            for run, n in (("r1", 5), ("r2", 3)):
                for i in range(n):
                    ok = bool(rng.random() < 0.4)
                    lines.append(
                        {
                            "run_id": run,
                            "model": m,
                            "task": "toy",
                            "strategy": "pool",
                            "config": {"n": n, "temperature": 1.0},
                            "question_id": q,
                            "difficulty": q[-1],
                            "sample_idx": i,
                            "answer": f"{m}/{q}/{run}/{i}",
                            "reference": f"ref-{q}",
                            "correct": ok,
                            "prompt_tokens": 12,
                            "completion_tokens": int(rng.integers(5, 500)),
                            "latency_s": float(rng.random()),
                            "logprob": -float(rng.random()),
                        }
                    )
            if m == "m-a":
                lines.append(
                    {
                        "model": m,
                        "task": "toy",
                        "strategy": "greedy",
                        "config": {"cot": True},
                        "question_id": q,
                        "difficulty": q[-1],
                        "answer": f"greedy/{q}",
                        "reference": f"ref-{q}",
                        "correct": True,
                        "prompt_tokens": 12,
                        "completion_tokens": 7,
                        "latency_s": 0.25,
                    }
                )
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture
def source(tmp_path) -> ReplaySource:
    return ReplaySource.read(write_source(tmp_path / "recorded.jsonl"))


def replay(source: ReplaySource, out: Path, specs: list[str], models=MODELS, seed: int = 0, **kwargs):
    return profile(list(models), source.task(), specs, out, seed=seed, loader=source.load, **kwargs)


def recorded(source: ReplaySource, strategy: str = "pool") -> pd.DataFrame:
    return source.samples[source.samples[S.STRATEGY] == strategy]


def as_multiset(df: pd.DataFrame) -> Counter:
    return Counter(map(tuple, df[RECORDED].astype(object).where(df[RECORDED].notna(), None).values.tolist()))


# ---- samples ------------------------------------------------------------------------------------
def test_replay_draws_are_exactly_the_recorded_samples_none_invented_none_repeated(source, tmp_path):
    """pool:n=3 and pool:n=5 take disjoint slices of each 8-sample pool (both recorded runs, one
    pool), so together they are the recording exactly, each row as recorded under the run's identity."""
    result = replay(source, tmp_path / "out", ["pool:n=3", "pool:n=5"])
    out = S.read_samples(tmp_path / "out")
    assert result.units_run == 2 * 2 * 6 and len(out) == 2 * 6 * 8 and not result.exhausted
    assert as_multiset(out) == as_multiset(recorded(source))  # none invented, none repeated
    assert set(out[S.BACKEND]) == {"replay"} and set(out[S.RUN_ID]) == {result.run_id}
    assert set(out[S.TASK]) == {"toy"} and set(out[S.DIFFICULTY]) == {q[-1] for q in QUESTIONS}
    for config, unit in out.groupby([S.CONFIG, S.MODEL, S.QUESTION_ID]):
        assert sorted(unit[S.SAMPLE_IDX]) == list(range(json.loads(config[0])["n"]))


def test_replay_is_reproducible_by_seed_and_another_seed_draws_another_order(source, tmp_path):
    tables = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        replay(source, tmp_path / name, ["pool:n=3"], seed=seed)
        df = S.read_samples(tmp_path / name).sort_values([S.MODEL, S.QUESTION_ID, S.SAMPLE_IDX])
        tables[name] = df.drop(columns=[S.RUN_ID]).reset_index(drop=True)
    pd.testing.assert_frame_equal(tables["a"], tables["b"])
    answers = {k: df.groupby([S.MODEL, S.QUESTION_ID])[S.ANSWER].apply(tuple) for k, df in tables.items()}
    assert (answers["a"] != answers["c"]).sum() >= 6  # another seed, another draw (of 12 pools)
    assert as_multiset(tables["c"]) <= as_multiset(recorded(source))


def test_a_draw_is_explicit_so_a_second_request_continues_the_same_sequence(source):
    """Sample k of a question is permutation[k] whoever asks: slices [0, 3) and [3, 8) are the
    whole order [0, 8); asking past the end is refused, never padded."""
    backend, strategy = source.load("m-a"), get_strategy("pool:n=8")
    problem = source.task().problems(limit=1).__next__()

    def draw(start, count):
        rows = backend.draw(strategy, problem, seed=3, start=start, count=count, identity={})
        return rows if isinstance(rows, ExhaustedUnit) else [r[S.ANSWER] for r in rows]

    whole = draw(0, 8)
    assert draw(0, 3) + draw(3, 5) == whole and len(set(whole)) == 8
    assert draw(5, 4) == ExhaustedUnit("needs 4 sample(s) after the first 5, but the recorded pool holds 8")
    # the offsets of one run's units: one pool's strategies in order of n, whatever the flag order
    assert pool_offsets(expand_specs(["pool:n=5", "greedy", "pool:n=3"])) == [3, 0, 0]


def test_greedy_replays_the_recorded_greedy_row(source, tmp_path):
    replay(source, tmp_path / "out", ["greedy", "pool:n=2"], models=["m-a"])
    out = S.read_samples(tmp_path / "out")
    greedy = out[out[S.STRATEGY] == "greedy"]
    assert sorted(greedy[S.ANSWER]) == sorted(f"greedy/{q}" for q in QUESTIONS)
    assert set(greedy[S.COMPLETION_TOKENS]) == {7} and greedy[S.CORRECT].all()


def test_an_exhausted_pool_is_refused_per_unit_recorded_and_never_invented(source, tmp_path):
    """pool:n=3 takes 3 of 8; pool:n=6 would need 9: refused for every question, listed in
    run.json (also after a resume, once), and the CLI warns."""
    out = tmp_path / "out"
    result = replay(source, out, ["pool:n=3", "pool:n=6"])
    rows = S.read_samples(out)
    assert set(rows[S.CONFIG].map(lambda c: json.loads(c)["n"])) == {3} and len(rows) == 2 * 6 * 3
    assert len(result.exhausted) == 12
    again = replay(source, out, ["pool:n=3", "pool:n=6"])
    assert again.units_skipped == 12 and len(again.exhausted) == 12
    listed = json.loads((out / "run.json").read_text())["exhausted"]
    assert len(listed) == 12 and {e["question"] for e in listed} == set(QUESTIONS)
    assert listed[0]["reason"] == "needs 6 sample(s) after the first 3, but the recorded pool holds 8"
    cli = ttc(
        "profile",
        "--backend",
        "replay",
        "--source",
        source.path,
        "-s",
        "pool:n=3",
        "-s",
        "pool:n=6",
        "--out",
        str(tmp_path / "cli"),
        "--no-progress",
    )
    assert cli.exit_code == 0 and "warning: 12 unit(s) not written: their recorded pool is used up" in flat(
        cli.output
    )


# ---- refusals -------------------------------------------------------------------------------------
def flat(text: str) -> str:
    return " ".join(text.split())


def ttc(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "beam:width=2"], "strategy 'beam' needs generation, which --backend replay cannot do"),
        (["-s", "refine"], "strategy 'refine' needs generation"),
        (["-m", "m-z"], "--model 'm-z' is not in"),
        (["-m", "m-b", "-s", "greedy"], "model 'm-b' has no recorded greedy rows agreeing with greedy"),
        (["-s", "pool:n=2,temperature=0.5"], "no recorded pool rows agreeing with pool:n=2,temperature=0.5"),
        (["-t", "math"], "--task 'math' is not in"),
        (["--device", "cpu"], "--device does not apply to --backend replay"),
    ],
)
def test_what_replay_cannot_do_is_refused_in_one_line_before_any_work(source, tmp_path, args, message):
    result = ttc(
        "profile", "--backend", "replay", "--source", source.path, "--out", str(tmp_path / "o"), *args
    )
    assert result.exit_code == 2 and message in flat(result.output), result.output
    assert len(result.output.strip().splitlines()) <= 3 and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
    if args[:2] == ["-m", "m-z"]:
        assert "its models: m-a, m-b" in flat(result.output)


def test_a_recording_of_several_tasks_replays_the_one_task_asked_for(tmp_path):
    """Two tasks with the same question ids: --task picks one, and its pools hold only its rows."""
    path = write_source(tmp_path / "two.jsonl")
    other = [json.loads(line) for line in path.read_text().splitlines()]
    other = [
        {**r, "task": "other", "run_id": "other", "answer": "other/" + r["answer"]}
        for r in other
        if r["model"] == "m-a"
    ]
    path.write_text(path.read_text() + "".join(json.dumps(r) + "\n" for r in other))
    result = ttc("profile", "--backend", "replay", "--source", str(path), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "holds tasks other, toy; pick one with --task" in flat(result.output)
    source = ReplaySource.read(path, "other")
    assert source.models == ["m-a"] and source.task().name == "other"
    replay(source, tmp_path / "out", ["pool:n=8"], models=["m-a"])
    out = S.read_samples(tmp_path / "out")
    assert len(out) == 6 * 8 and out[S.ANSWER].str.startswith("other/").all()


def test_source_needs_the_replay_backend_and_replay_needs_a_source(tmp_path):
    out = str(tmp_path / "o")
    assert "--source needs --backend replay" in flat(
        ttc("profile", "--source", "x.jsonl", "--out", out).output
    )
    assert "--backend replay needs --source PATH" in flat(
        ttc("profile", "--backend", "replay", "--out", out).output
    )
    assert "missing option --model and --task" in flat(ttc("profile", "--out", out).output)


# ---- counts -----------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 5000),
    good_frac=st.floats(0, 1),
    cuts=st.lists(st.floats(0, 1), min_size=2, max_size=5),
    seed=st.integers(0, 2**31 - 1),
)
def test_prefix_successes_is_one_order_whatever_the_cut_points(size, good_frac, cuts, seed):
    """Slices of one seeded order never hold more successes or failures than the pool, and they
    add up to the pool's count exactly."""
    good = round(good_frac * size)
    points = sorted({0, size, *(round(c * size) for c in cuts)})
    hits = np.diff([prefix_successes(p, size, good, seed) for p in points])
    widths = np.diff(points)
    assert (hits >= 0).all() and (hits <= widths).all()
    assert hits.sum() == good and (widths - hits).sum() == size - good


def test_prefix_successes_are_hypergeometric_and_successive_slices_continue_without_replacement():
    """Over 4,000 seeds, the successes among the first 10 of 40 items (12 successes) follow
    Hypergeom(40, 12, 10) (chi-square, p > 0.001), and those among items 10..24 have the
    unconditional hypergeometric mean 15 * 12 / 40 = 4.5 (the first slice's draws removed)."""
    first = np.array([prefix_successes(10, 40, 12, s) for s in range(4000)])
    second = np.array([prefix_successes(25, 40, 12, s) for s in range(4000)]) - first
    observed = np.bincount(first, minlength=11)
    expected = stats.hypergeom(40, 12, 10).pmf(np.arange(11)) * 4000
    keep = expected > 5
    rest = [observed[~keep].sum(), expected[~keep].sum()]
    chi2 = stats.chisquare(np.r_[observed[keep], rest[0]], np.r_[expected[keep], rest[1]])
    assert chi2.pvalue > 1e-3
    assert abs(second.mean() - 4.5) < 4 * np.sqrt(stats.hypergeom(40, 12, 15).var() / 4000)


def test_counts_replay_draws_hypergeometrically_and_sums_to_the_recorded_pool(tmp_path):
    """Pythia 12B has 128 samples per question: units of 16, 48 and 64 take the whole pool, so
    their correct counts add up to the recorded ones exactly; 256 more are refused as exhausted."""
    source = ReplaySource.read(COUNTS)
    specs = ["pool:n=16", "pool:n=48", "pool:n=64"]
    result = replay(source, tmp_path / "out", specs, models=["Pythia_12B_300B"])
    counts = S.read_counts(tmp_path / "out")
    assert result.units_run == 3 * 128 and set(counts[S.BACKEND]) == {"replay"}
    drawn = counts.groupby(S.QUESTION_ID)[[S.N_SAMPLES, S.N_CORRECT]].sum()
    truth = source.counts[source.counts[S.MODEL] == "Pythia_12B_300B"].set_index(S.QUESTION_ID)
    assert (drawn[S.N_SAMPLES] == 128).all()
    pd.testing.assert_series_equal(drawn[S.N_CORRECT], truth.loc[drawn.index, S.N_CORRECT], check_dtype=False)
    small = counts[counts[S.N_SAMPLES] == 16].set_index(S.QUESTION_ID)[S.N_CORRECT]
    assert 0 < small.sum() < truth[S.N_CORRECT].sum()  # a real subsample, not all or nothing
    more = replay(source, tmp_path / "more", ["pool:n=256"], models=["Pythia_12B_300B"])
    assert len(more.exhausted) == 128 and not list((tmp_path / "more").glob("counts-*.parquet"))


def test_counts_replay_is_the_same_on_ray_as_in_one_process(tmp_path):
    """The seeded order depends only on (seed, model, pool, question): Ray actors built from the
    recording draw what one process draws (Pythia 1B: uneven pools of 640 to 10,112)."""
    pytest.importorskip("ray")
    from profiling.ray_executor import RayExecutor

    source = ReplaySource.read(COUNTS)
    specs, models = ["pool:n=16", "pool:n=100"], ["Pythia_1B_300B", "Pythia_12B_300B"]
    replay(source, tmp_path / "local", specs, models=models, seed=5)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([saved] if saved else []))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:  # the executor starts a local cluster whose workers import this checkout, and stops it
        executor = RayExecutor(workers=2, init_kwargs={"num_cpus": 2})
        replay(source, tmp_path / "ray", specs, models=models, seed=5, executor=executor, batch_size=16)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    key = [S.MODEL, S.CONFIG, S.QUESTION_ID]
    local, on_ray = (
        S.read_counts(tmp_path / n).sort_values(key).reset_index(drop=True) for n in ("local", "ray")
    )
    pd.testing.assert_frame_equal(local, on_ray)
    assert json.loads((tmp_path / "ray" / "run.json").read_text())["executors"][0]["executor"] == "ray"


# ---- end to end -----------------------------------------------------------------------------------
#: a small Llama config, as ``ttc profile`` records a model in run.json
LLAMA = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 64,
    "tie_word_embeddings": True,
}


def test_replay_output_feeds_ttc_fit_and_ttc_recommend(tmp_path):
    """import -> profile --backend replay -> fit -> recommend on a tiny samples folder whose
    run.json records m-a's config: the replay carries it over, so recommend prices m-a with no
    --model-spec."""
    folder = tmp_path / "imported"
    assert ttc("import", str(write_source(tmp_path / "recorded.jsonl")), "--out", str(folder)).exit_code == 0
    signature = storage.run_signature("toy", 0, 256, [("pool", "{}")])
    meta = {"m-a": {"backend": "hf", "model": "m-a", "config": LLAMA, "dtype": "float32"}}
    storage.write_run(folder, storage.new_run_metadata(signature, models=meta))
    out = tmp_path / "replayed"
    prof = ttc(
        "profile",
        "--backend",
        "replay",
        "--source",
        str(folder),
        "-s",
        "greedy",
        "-s",
        "pool:n=4",
        "-m",
        "m-a",
        "--seed",
        "7",
        "--out",
        str(out),
        "--no-progress",
    )
    assert prof.exit_code == 0, prof.output
    assert "profiled 12 unit(s)" in flat(prof.output) and "next: ttc fit" in flat(prof.output)
    model = json.loads((out / "run.json").read_text())["models"]["m-a"]
    assert model["config"] == LLAMA and model["backend"] == "replay"
    assert model["replay"] == {"source": str(folder.resolve()), "kind": "samples"}
    fit = ttc("fit", str(out), "--out", str(tmp_path / "fit"), "--n-boot", "20")
    assert fit.exit_code == 0, fit.output
    rec = ttc("recommend", str(out), "--budget-flops", "1e12", "--json", "--n-boot", "20")
    assert rec.exit_code == 0, rec.output
    plan = json.loads(rec.stdout, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert plan["choice"]["model"] == "m-a" and plan["choice"]["strategy"] in ("greedy", "pool")


def test_a_counts_replay_feeds_ttc_fit(tmp_path):
    """A replay of counts is a counts folder: ttc fit gives its pass@k curves up to the drawn n."""
    out = tmp_path / "replayed"
    prof = ttc(
        "profile",
        "--backend",
        "replay",
        "--source",
        str(COUNTS),
        "-s",
        "pool:n=16",
        "-m",
        "Pythia_12B_300B",
        "--out",
        str(out),
        "--no-progress",
    )
    assert prof.exit_code == 0, prof.output
    fit = ttc("fit", str(out), "--out", str(tmp_path / "fit"), "--n-boot", "20")
    assert fit.exit_code == 0, fit.output
    curves = pd.read_parquet(tmp_path / "fit" / "curves.parquet")
    assert curves[S.K].max() == 16 and set(curves[S.METRIC]) == {"pass@k"}
