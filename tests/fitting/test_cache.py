"""The one fit cache (fitting/cache.py): reruns fit nothing, a changed group refits only its
curves, a changed setting misses, corrupt entries are refit silently, cached results equal
fresh fits. Work is counted by wrapping the estimator and the fitter, never timed.

A cached result is the stored one, so it equals what was stored exactly; a fresh fit by another
path (``fit_samples`` beside ``fit_samples_cached``) equals it within :data:`tolerance.REL` in
every float and exactly in everything else (law names, flags, counts)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from tolerance import close_to

import fitting.cache as C
from fitting import schema as S
from fitting.cache import FitCache, fit_counts_cached, fit_samples_cached
from fitting.pipeline import curve_units, fit_counts, fit_samples

LAWS = ("exp_power_law",)  # one quick law keeps the tests short; the law set is part of the key
FAST = {"n_boot": 5, "laws": LAWS}


def samples(seed: int = 0, n_questions: int = 8, pool: int = 6, levels=("2",)) -> pd.DataFrame:
    """Pools and a budget sweep of two models, drawn from known per-question success rates (a
    test fixture)."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, skill in (("m-small", 0.6), ("m-large", 1.2)):
        for level in levels:
            for qi in range(n_questions):
                p = float(np.clip(skill / float(level) + rng.normal(0, 0.15), 0.02, 0.98))
                qid = f"q{level}-{qi}"
                for s in range(pool):
                    ok = bool(rng.random() < p)
                    rows.append(
                        {
                            S.MODEL: model,
                            S.DIFFICULTY: level,
                            S.QUESTION_ID: qid,
                            S.SAMPLE_IDX: s,
                            S.CORRECT: ok,
                            S.ANSWER: "7" if ok else str(rng.integers(0, 3)),
                            S.REFERENCE: "7",
                            S.LOGPROB: -float(rng.random()),
                            S.COMPLETION_TOKENS: 20,
                            S.PROMPT_TOKENS: 10,
                        }
                    )
                for t in (4, 8, 16, 32):
                    rows.append(
                        {
                            S.MODEL: model,
                            S.DIFFICULTY: level,
                            S.QUESTION_ID: qid,
                            S.SAMPLE_IDX: 0,
                            S.STRATEGY: "budget",
                            S.CONFIG: json.dumps({"tokens": t}),
                            S.CORRECT: bool(rng.random() < p * (1 - 2 / t)),
                        }
                    )
    return S.validate_samples(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """The fixture's samples, fitted once into a cache folder (tests copy the folder)."""
    folder = tmp_path_factory.mktemp("warm")
    df = samples()
    return df, folder, fit_samples_cached(df, FitCache(folder), **FAST)


def copy_of(warm, tmp_path):
    shutil.copytree(warm[1], tmp_path / "cache")
    return tmp_path / "cache"


@pytest.fixture
def counted(monkeypatch):
    """Counts of groups estimated and curves fitted through the cache module."""
    calls = {"groups": 0, "curves": 0, "fitted": []}
    estimate, fit = C.estimate_group, C.fit_curves

    def estimate_group(*args, **kwargs):
        calls["groups"] += 1
        return estimate(*args, **kwargs)

    def fit_curves(curves, *args, **kwargs):
        units = curve_units(curves)
        calls["curves"] += len(units)
        calls["fitted"] += [(u[0][S.MODEL], u[0][S.DIFFICULTY], u[0][S.METRIC]) for u in units]
        return fit(curves, *args, **kwargs)

    monkeypatch.setattr(C, "estimate_group", estimate_group)
    monkeypatch.setattr(C, "fit_curves", fit_curves)

    def reset():
        calls.update(groups=0, curves=0, fitted=[])

    calls["reset"] = reset
    return calls


def test_a_rerun_on_unchanged_samples_estimates_and_fits_nothing(tmp_path, counted):
    df = samples()
    first = fit_samples_cached(df, FitCache(tmp_path), **FAST)
    n_groups = df.groupby(list(S.GROUP_KEYS)).ngroups
    assert counted["groups"] == n_groups and counted["curves"] == len(first.fits) > 0
    assert {f[S.STRATEGY] for f in first.fits} == {"pool", "budget"}
    assert any(f["law"] and f["band"] for f in first.fits)  # records with laws and bootstrap bands
    counted["reset"]()
    cache = FitCache(tmp_path)
    again = fit_samples_cached(df, cache, **FAST)
    assert counted["groups"] == 0 and counted["curves"] == 0
    assert cache.by_kind["fit", "hits"] == len(first.fits) and cache.stats["written"] == 0
    assert again.fits == first.fits
    pd.testing.assert_frame_equal(again.curves, first.curves)


def test_results_from_the_cache_equal_fresh_fits_and_warnings(tmp_path):
    df = samples(seed=1, levels=("1", "2"))
    df = df[
        ~((df[S.STRATEGY] == "pool") & (df[S.SAMPLE_IDX] == 5) & (df[S.QUESTION_ID] == "q1-0"))
    ]  # uneven pools

    def run(fn):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn()
        return out, sorted(str(w.message) for w in caught)

    ref, ref_warnings = run(lambda: fit_samples(df, **FAST))
    fresh, fresh_warnings = run(lambda: fit_samples_cached(df, FitCache(tmp_path), **FAST))
    cached, cached_warnings = run(lambda: fit_samples_cached(df, FitCache(tmp_path), **FAST))
    assert any("uneven pools" in w for w in ref_warnings)
    assert ref_warnings == fresh_warnings == cached_warnings
    assert fresh.fits == close_to(json.loads(json.dumps(ref.fits)))  # what fits.json holds
    assert cached.fits == json.loads(json.dumps(fresh.fits))  # read back as stored
    for out in (fresh, cached):
        pd.testing.assert_frame_equal(out.curves, ref.curves)
    # the per-question matrices kept for the held-out engine equal per_question_curves
    from fitting.curves import per_question_curves

    want = per_question_curves(df)
    assert set(cached.per_question) == set(want)
    for key, frame in want.items():
        pd.testing.assert_frame_equal(cached.per_question[key], frame, check_index_type=False)


def test_changing_one_group_refits_only_its_curves(warm, tmp_path, counted):
    df, _, first = warm
    changed = df.copy()
    row = changed.index[(changed[S.MODEL] == "m-large") & (changed[S.STRATEGY] == "pool")][0]
    changed.loc[row, S.CORRECT] = not changed.loc[row, S.CORRECT]
    out = fit_samples_cached(changed, FitCache(copy_of(warm, tmp_path)), **FAST)
    assert counted["groups"] == 1  # the pool group of (m-large, level 2)
    # only that group's pool curves are refit (the budget sweep's rows did not change), at least
    # those whose rows changed (a curve the flip leaves unchanged keeps its entry)
    key = [S.MODEL, S.STRATEGY, S.METRIC]
    old_rows, new_rows = first.curves.groupby(key), out.curves.groupby(key)
    moved = {
        g[2]
        for g, rows in new_rows
        if not rows.reset_index(drop=True).equals(old_rows.get_group(g).reset_index(drop=True))
    }
    assert moved and {(m[2]) for m in counted["fitted"]} >= moved
    assert set(counted["fitted"]) <= {("m-large", "2", m) for m in C.METRICS}
    refit = [f for f in out.fits if (f[S.MODEL], f[S.STRATEGY]) == ("m-large", "pool")]
    assert out.fits == close_to(json.loads(json.dumps(fit_samples(changed, **FAST).fits)))
    untouched = [f for f in out.fits if f not in refit]
    assert untouched == [f for f in first.fits.copy() if (f[S.MODEL], f[S.STRATEGY]) != ("m-large", "pool")]


@pytest.mark.parametrize("change", [{"n_boot": 6}, {"seed": 1}, {"laws": ("exp_power_law", "power_law")}])
def test_a_changed_setting_misses(warm, tmp_path, counted, change):
    df, _, first = warm
    fit_samples_cached(df, FitCache(copy_of(warm, tmp_path)), **{**FAST, **change})
    assert counted["curves"] == len(first.fits)
    # n_boot and seed also change the curves' bootstrap intervals; the law set only the fits
    assert counted["groups"] == (0 if "laws" in change else df.groupby(list(S.GROUP_KEYS)).ngroups)


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b'{"format": 1, "kind": "fit", "key": "another", "value": {}}', b"\xff\xfe\x00"],
    ids=["empty", "truncated", "another-key", "binary"],
)
def test_a_corrupt_entry_is_refit_without_error_and_rewritten(warm, tmp_path, counted, damage):
    df, _, first = warm
    folder = copy_of(warm, tmp_path)
    fit_file = sorted((folder / "fit").glob("*.json"))[0]
    group_file = sorted((folder / "curves").glob("*.json"))[0]
    fit_file.write_bytes(damage)
    group_file.write_bytes(damage)
    cache = FitCache(folder)
    again = fit_samples_cached(df, cache, **FAST)
    assert counted["groups"] == 1 and counted["curves"] == 1 and cache.stats["corrupt"] == 2
    assert again.fits == first.fits
    pd.testing.assert_frame_equal(again.curves, first.curves)
    assert json.loads(fit_file.read_text())["value"] in first.fits  # rewritten
    counted["reset"]()
    fit_samples_cached(df, FitCache(folder), **FAST)
    assert counted["groups"] == counted["curves"] == 0


def test_metrics_subsets_share_entries(warm, tmp_path, counted):
    """The planner asks for the deployable metrics, `ttc fit` for all: one cache serves both."""
    df = warm[0]
    sub = fit_samples_cached(
        df, FitCache(copy_of(warm, tmp_path)), metrics=("majority@k", "best_of@k"), **FAST
    )
    assert counted["groups"] == counted["curves"] == 0
    assert {f[S.METRIC] for f in sub.fits} == {"majority@k", "best_of@k", "accuracy"}
    ref = fit_samples(df, metrics=("majority@k", "best_of@k"), **FAST)
    assert sub.fits == close_to(json.loads(json.dumps(ref.fits)))


def test_a_disabled_or_unwritable_cache_computes_everything(warm, tmp_path, counted):
    df = warm[0]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for cache in (FitCache(None), FitCache(blocker)):
        counted["reset"]()
        out = fit_samples_cached(df, cache, **FAST)
        assert counted["curves"] == len(out.fits) and cache.stats["written"] == 0


def test_counts_fits_are_cached_too(tmp_path, counted):
    rng = np.random.default_rng(3)
    counts = pd.DataFrame(
        {S.QUESTION_ID: [f"q{i}" for i in range(30)], S.N_SAMPLES: 64, S.N_CORRECT: rng.integers(0, 20, 30)}
    )
    ref = fit_counts(counts, **FAST)
    first = fit_counts_cached(counts, FitCache(tmp_path), **FAST)
    counted["reset"]()
    again = fit_counts_cached(counts, FitCache(tmp_path), **FAST)
    assert counted["curves"] == 0
    assert again.fits == first.fits
    assert first.fits == close_to(json.loads(json.dumps(ref.fits)))


def test_the_planner_law_mapping_writes_on_save_and_reads_back(tmp_path):
    cache = FitCache(tmp_path)
    laws = cache.mapping("law", "v1")
    assert "arm [1]|abc" not in laws
    laws["arm [1]|abc"] = {"law": None, "note": "too few points"}
    laws["arm [1]|abc"].update(law="power_law")  # in-place updates before save are kept
    laws.save()
    back = FitCache(tmp_path).mapping("law", "v1")
    assert back["arm [1]|abc"] == {"law": "power_law", "note": "too few points"}
    assert "arm [1]|abc" not in FitCache(tmp_path).mapping("law", "v2")  # another version misses


def test_cache_root_is_inside_the_folder_or_under_ttc_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("TTC_CACHE_DIR", raising=False)
    assert C.cache_root(tmp_path / "run") == tmp_path / "run" / ".ttc-cache"
    monkeypatch.setenv("TTC_CACHE_DIR", str(tmp_path / "shared"))
    assert C.cache_root(tmp_path / "run") == tmp_path / "shared" / "fits"
