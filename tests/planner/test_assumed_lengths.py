"""Published counts without token lengths: priced by a stated assumption (``--assume-prompt-tokens``,
``--assume-completion-tokens``), never a traceback.

Data: the Pythia_410M_300B and Pythia_1B_300B rows of the shared GSM8K counts
(tests/data/monkeys_gsm8k_pythia_410m_slice.csv and monkeys_gsm8k_pythia_counts_slice.csv, see
tests/data/README.md): per-question correct counts with no lengths, as published."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fitting.importer import import_file
from planner.cli import app
from planner.profile import load_profile
from planner.recommend import PlanError, build_space, plan
from planner.request import PlanRequest
from planner.search import Budget, search
from planner.space import CostModel
from planner.space.assumed import AssumedLengths, MissingLengths

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SPECS = {"Pythia_1B_300B": "pythia-1b", "Pythia_410M_300B": "pythia-410m"}
SPEC_ARGS = sum((["--model-spec", f"{m}={c}"] for m, c in SPECS.items()), [])
ISSUE = ["--budget-flops", "2e13", "--gpu", "h100", "--verifier", "exact", *SPEC_ARGS]
ASSUME = ["--assume-prompt-tokens", "256", "--assume-completion-tokens", "256"]
N_BOOT = 50


def _benchmark():
    """benchmarks/real_regret.py as a module (the benchmark's own choosing function)."""
    spec = importlib.util.spec_from_file_location("real_regret", ROOT / "benchmarks" / "real_regret.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    """The two models' published rows (no lengths)."""
    a = pd.read_csv(DATA / "monkeys_gsm8k_pythia_counts_slice.csv")
    b = pd.read_csv(DATA / "monkeys_gsm8k_pythia_410m_slice.csv")
    df = pd.concat([a[a["model"] == "Pythia_1B_300B"], b], ignore_index=True)
    assert sorted(df["model"].unique()) == sorted(SPECS) and len(df) == 256
    return df


@pytest.fixture(scope="module")
def subset(tmp_path_factory, counts) -> Path:
    """``ttc import pythia_subset.csv --out S`` of the issue."""
    folder = tmp_path_factory.mktemp("S")
    counts.to_csv(folder / "pythia_subset.csv", index=False)
    import_file(folder / "pythia_subset.csv", folder)
    (folder / "pythia_subset.csv").unlink()
    return folder


def _ttc(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from planner.cli import main; main()", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_issue_command_with_assumed_lengths_chooses_what_real_regret_chooses(subset, counts, tmp_path):
    """The issue's command with the flags prints a recommendation labelled with the assumption,
    and its choice is the benchmark's (exhaustive search over the same option space, from the same
    counts imported the benchmark's way, with the same assumed 256 + 256 tokens)."""
    r = CliRunner().invoke(
        app, ["recommend", "--profile", str(subset), *ISSUE, *ASSUME, "--n-boot", str(N_BOOT)]
    )
    assert r.exit_code == 0, r.output
    assert (
        "lengths assumed: 256 prompt + 256 generated tokens per sample for 256 of 256 questions "
        "(Pythia_1B_300B: 128 assumed, 0 measured; Pythia_410M_300B: 128 assumed, 0 measured)"
    ) in " ".join(r.stdout.split())
    j = CliRunner().invoke(
        app, ["recommend", str(subset), *ISSUE, *ASSUME, "--n-boot", str(N_BOOT), "--json"]
    )
    assert j.exit_code == 0, j.output
    rec = json.loads(j.stdout)
    lengths = rec["assumptions"]["lengths"]
    assert lengths["prompt_tokens_per_sample"] == 256 and lengths["completion_tokens_per_sample"] == 256
    assert lengths["questions_assumed"] == lengths["questions"] == 256
    assert rec["request"]["assume_prompt_tokens"] == 256 and rec["request"]["assume_completion_tokens"] == 256

    bench = _benchmark()
    df = counts.assign(catalog=counts["model"].map(SPECS))
    prof, _ = bench.as_profile(df, tmp_path / "bench", 256, 256, N_BOOT)
    space, coster = bench.planner_space(prof, "h100")
    best = bench.choose(space, coster, 2e13)
    assert (rec["choice"]["model"], rec["choice"]["knobs"]["n"]) == (best["model"], int(best["knob_value"]))
    assert rec["cost"]["flops"] == pytest.approx(float(best["flops"]), rel=1e-5)  # JSON: 6 significant digits
    # pass@n of 128 questions, 256 tokens each way: tokens per query = 256 + 256 n
    assert rec["cost"]["tokens"] == pytest.approx(256 + 256 * rec["choice"]["knobs"]["n"], rel=1e-12)


def test_without_the_flags_stderr_is_one_line_and_exit_2(subset):
    """No traceback, no Optuna "Trial 0 failed", no warning or progress line: one line naming
    both flags, exit 2."""
    p = _ttc("recommend", "--profile", str(subset), *ISSUE, "--n-boot", str(N_BOOT))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "--assume-prompt-tokens N --assume-completion-tokens N" in lines[0]
    assert "Pythia_1B_300B (128 of 128 questions)" in lines[0] and p.stdout == ""


def test_missing_lengths_stop_plan_before_any_search_and_optuna_prints_nothing(subset, capfd):
    """The API stops before the search with the flags named; a failing Optuna trial (a space
    priced without lengths, searched directly) raises our error and prints nothing on stderr."""
    prof = load_profile(subset, model_specs=SPECS, n_boot=0, use_cache=False, verifier="exact")
    capfd.readouterr()
    with pytest.raises(PlanError, match="--assume-prompt-tokens N --assume-completion-tokens N"):
        plan(prof, {"flops": 2e13}, verifier="exact", method="optuna")
    space = build_space(prof, CostModel(prof.specs), verifier="exact")
    with pytest.raises(ValueError, match="no completion token counts to price it with; give --assume"):
        search(space, space.target(None), Budget({"flops": 2e13}), method="optuna", n_trials=5, seed=0)
    assert capfd.readouterr().err == ""
    with pytest.raises(MissingLengths, match="Pythia_410M_300B \\(128 of 128 questions\\)"):
        load_profile(
            subset,
            model_specs=SPECS,
            n_boot=0,
            use_cache=False,
            verifier="exact",
            require_lengths=["Pythia_410M_300B"],
        )


def test_a_request_carries_the_assumption_through_the_api_and_toml(subset, tmp_path):
    """``PlanRequest`` fields (and TOML keys) apply the assumption to a profile loaded without it."""
    (tmp_path / "plan.toml").write_text(
        f'profile = "{subset}"\nverifier = "exact"\nassume-prompt-tokens = 256\nassume-completion-tokens = 256\n'
        "[budget]\nflops = 2e13\n"
    )
    req = PlanRequest.from_toml(tmp_path / "plan.toml")
    assert req.assumed_lengths == AssumedLengths(256, 256)
    prof = load_profile(subset, model_specs=SPECS, n_boot=0, use_cache=False, verifier="exact")
    rec = plan(prof, req, method="exhaustive").to_json()
    assert rec["assumptions"]["lengths"]["questions_assumed"] == 256
    with pytest.raises(ValueError, match="assume_completion_tokens must be an integer >= 1, got 0"):
        PlanRequest({"flops": 1.0}, assume_completion_tokens=0)


def test_mixed_measured_and_assumed_questions(counts, tmp_path):
    """Half the 410M questions with measured lengths (100 prompt, 300 generated), half without:
    the measured ones are kept, the rest assumed (256, 256) and counted; the plan equals that of
    a file with the same lengths written out, and its tokens per query are the known mean."""
    rows = counts[counts["model"] == "Pythia_410M_300B"].reset_index(drop=True)
    measured = rows.index < 64
    mixed = rows.assign(
        prompt_tokens=pd.Series(100.0, index=rows.index).where(measured),
        completion_tokens=pd.Series(300.0, index=rows.index).where(measured),
    )
    explicit = mixed.fillna({"prompt_tokens": 256.0, "completion_tokens": 256.0})
    recs = {}
    for name, table in (("mixed", mixed), ("explicit", explicit)):
        folder = tmp_path / name
        folder.mkdir()
        table.to_csv(folder / "c.csv", index=False)
        import_file(folder / "c.csv", folder)
        (folder / "c.csv").unlink()
        prof = load_profile(
            folder, model_specs=SPECS, n_boot=0, use_cache=False, assumed=AssumedLengths(256, 256)
        )
        recs[name] = plan(prof, {"flops": 1e13}, verifier="exact", method="exhaustive").to_json()
        if name == "mixed":
            c = prof.counts.sort_values("question_id", key=lambda s: s.astype(int)).reset_index(drop=True)
            assert (
                c.loc[measured, "completion_tokens"].eq(300).all()
                and c.loc[measured, "prompt_tokens"].eq(100).all()
            )
            assert (
                c.loc[~measured, "completion_tokens"].eq(256).all()
                and c.loc[~measured, "prompt_tokens"].eq(256).all()
            )
            assert prof.lengths.counts("Pythia_410M_300B") == {
                "questions": 128,
                "prompt_measured": 64,
                "prompt_assumed": 64,
                "completion_measured": 64,
                "completion_assumed": 64,
            }
    mixed_rec, explicit_rec = recs["mixed"], recs["explicit"]
    assert "assumptions" not in explicit_rec or "lengths" not in explicit_rec["assumptions"]
    lengths = mixed_rec["assumptions"]["lengths"]
    assert lengths["questions_assumed"] == 64 and lengths["questions"] == 128
    assert mixed_rec["choice"] == explicit_rec["choice"]
    for k in ("flops", "tokens", "latency_s", "usd", "kv_bytes"):
        assert mixed_rec["cost"][k] == pytest.approx(explicit_rec["cost"][k], rel=1e-9), k
    n = mixed_rec["choice"]["knobs"]["n"]
    assert mixed_rec["cost"]["tokens"] == pytest.approx((100 + 256) / 2 + n * (300 + 256) / 2, rel=1e-12)


def test_fill_never_overrides_a_measured_length_within_a_question():
    """A samples question with one measured row keeps its other rows unmeasured (their mean is the
    measured one); only questions with no measured row are assumed."""
    t = pd.DataFrame(
        {
            "model": "m",
            "strategy": "pool",
            "config": "{}",
            "difficulty": "all",
            "question_id": ["a", "a", "b"],
            "prompt_tokens": [10.0, None, None],
            "completion_tokens": [50.0, None, None],
        }
    )
    out, cov = AssumedLengths(7, 9).fill(t)
    assert out.loc[0, "completion_tokens"] == 50 and pd.isna(out.loc[1, "completion_tokens"])
    assert out.loc[2, "completion_tokens"] == 9 and out.loc[2, "prompt_tokens"] == 7
    assert cov.counts("m")["completion_assumed"] == 1 and cov.line().endswith("(m: 1 assumed, 1 measured)")
    same, cov0 = AssumedLengths().fill(t)
    assert same is t and cov0.line() == "" and not cov0.used()


def test_evaluate_states_the_assumption_and_stops_without_it(subset):
    """``ttc evaluate`` of the counts: with the flags, the JSON's ``assumptions`` and the table's
    line; without them, one line naming the flags and exit 2."""
    args = ["evaluate", str(subset), "--verifier", "exact", "--n-boot", "0", "--splits", "2", *SPEC_ARGS]
    j = CliRunner().invoke(app, [*args, *ASSUME, "--json"])
    assert j.exit_code == 0, j.output
    assert json.loads(j.stdout)["assumptions"]["lengths"]["questions_assumed"] == 256
    t = CliRunner().invoke(app, [*args, *ASSUME])
    assert "lengths assumed: 256 prompt + 256 generated tokens per sample for 256 of 256" in " ".join(
        t.stdout.split()
    )
    p = _ttc(*args)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "--assume-prompt-tokens N --assume-completion-tokens N" in p.stderr


def test_report_of_samples_without_lengths_states_the_assumption_in_its_provenance(tmp_path):
    """Per-sample results without token counts (two catalog models, pools of 8): the report is
    priced from the assumed lengths and its provenance section says so."""
    rows = [
        {
            "model": m,
            "question_id": f"q{q}",
            "correct": (q + s) % (3 if m == "pythia-1b" else 4) == 0,
            "answer": str((q + s) % 3),
            "reference": "0",
        }
        for m in ("pythia-410m", "pythia-1b")
        for q in range(12)
        for s in range(8)
    ]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    import_file(tmp_path / "s.jsonl", tmp_path / "S")
    out = tmp_path / "r.html"
    args = ["report", str(tmp_path / "S"), "--out", str(out), "--n-boot", "0", "--splits", "2", "--no-png"]
    p = _ttc(*args)
    assert p.returncode == 2 and "--assume-completion-tokens N" in p.stderr.strip().splitlines()[-1]
    r = CliRunner().invoke(app, [*args, "--assume-prompt-tokens", "100", "--assume-completion-tokens", "50"])
    assert r.exit_code == 0, r.output
    text = " ".join(out.with_suffix(".md").read_text().split()) + " ".join(out.read_text().split())
    assert "lengths assumed: 100 prompt + 50 generated tokens per sample for 24 of 24 questions" in text
