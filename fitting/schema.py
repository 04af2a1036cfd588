"""Column names and validation of the tables shared by the three packages.

Every package refers to columns through the constants here, never through string
literals, so that a renamed column is renamed everywhere (see docs/design.md, "The tables").

The samples table holds one row per generated sample (or per strategy execution).
``fitting`` owns this schema; ``profiling`` writes it and ``planner`` reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import _values as V

__all__ = [
    "SchemaError",
    "BadValue",
    "DuplicateRows",
    "DuplicateSamples",
    "DuplicateCounts",
    "SAMPLES_SCHEMA",
    "REQUIRED_SAMPLE_COLUMNS",
    "COUNTS_SCHEMA",
    "REQUIRED_COUNT_COLUMNS",
    "validate_samples",
    "read_samples",
    "GROUP_KEYS",
]

# ---- samples table -------------------------------------------------------------------------
RUN_ID = "run_id"
MODEL = "model"
BACKEND = "backend"
TASK = "task"
STRATEGY = "strategy"
CONFIG = "config"  # JSON string of the strategy's knobs (n, width, rounds, budget, temperature, ...)
QUESTION_ID = "question_id"
DIFFICULTY = "difficulty"  # string label: task-given level, or a bin assigned later
SAMPLE_IDX = "sample_idx"
ANSWER = "answer"  # extracted final answer; null when none could be extracted (abstention)
REFERENCE = "reference"  # reference answer of the question (optional; lets majority vote be scored)
CORRECT = "correct"
PROMPT_TOKENS = "prompt_tokens"
COMPLETION_TOKENS = "completion_tokens"
LATENCY_S = "latency_s"
TTFT_S = "ttft_s"
KV_BYTES_PEAK = "kv_bytes_peak"
KV_SOURCE = "kv_source"  # how kv_bytes_peak was measured (e.g. "hf-cache-tensors", "cuda-allocator-peak")
FLOPS = "flops"  # optional: present when imported; derived by the planner for profiled rows
LOGPROB = "logprob"  # mean token log-probability of the completion
REWARD = "reward"  # verifier / reward-model score where one was used

# Column -> pyarrow type. Order is the canonical column order of written tables.
# The identifying columns come first in both the samples and the counts tables.
_KEY_SCHEMA: dict[str, pa.DataType] = {
    RUN_ID: pa.string(),
    MODEL: pa.string(),
    BACKEND: pa.string(),
    TASK: pa.string(),
    STRATEGY: pa.string(),
    CONFIG: pa.string(),
    QUESTION_ID: pa.string(),
    DIFFICULTY: pa.string(),
}
SAMPLES_SCHEMA: dict[str, pa.DataType] = {
    **_KEY_SCHEMA,
    SAMPLE_IDX: pa.int64(),
    ANSWER: pa.string(),
    REFERENCE: pa.string(),
    CORRECT: pa.bool_(),
    PROMPT_TOKENS: pa.int64(),
    COMPLETION_TOKENS: pa.int64(),
    LATENCY_S: pa.float64(),
    TTFT_S: pa.float64(),
    KV_BYTES_PEAK: pa.float64(),
    KV_SOURCE: pa.string(),
    FLOPS: pa.float64(),
    LOGPROB: pa.float64(),
    REWARD: pa.float64(),
}
REQUIRED_SAMPLE_COLUMNS = (QUESTION_ID, CORRECT)
#: what each numeric column of the samples table may hold (see fitting/_values.py)
SAMPLE_VALUES = {
    SAMPLE_IDX: V.COUNT,
    PROMPT_TOKENS: V.COUNT,
    COMPLETION_TOKENS: V.COUNT,
    LATENCY_S: V.NONNEG,
    TTFT_S: V.NONNEG,
    KV_BYTES_PEAK: V.NONNEG,
    FLOPS: V.NONNEG,
    LOGPROB: V.REAL,
    REWARD: V.REAL,
}
#: the columns that identify a sample: no two rows of a table share them
SAMPLE_KEYS = (RUN_ID, MODEL, STRATEGY, CONFIG, QUESTION_ID, SAMPLE_IDX)

# Defaults for identifying columns that an imported file may omit.
IDENTITY_DEFAULTS = {
    RUN_ID: "imported",
    MODEL: "unknown",
    BACKEND: "import",
    TASK: "unknown",
    STRATEGY: "pool",
    CONFIG: "{}",
    DIFFICULTY: "all",
}
#: the difficulty label of every question (a table with no labels at all)
ALL_DIFFICULTY = "all"
#: the label of questions without one in a table where others have one: "all" always means
#: every question, so it never labels a subset (see :func:`difficulty_labels`)
UNLABELLED = "unlabelled"

# ---- counts table ----------------------------------------------------------------------------
# The compact form of a pool when only correctness is known (published coverage data): one row
# per (run, model, strategy, config, question). Cost columns hold per-sample MEANS.
N_SAMPLES = "n_samples"
N_CORRECT = "n_correct"
#: cost columns a counts row may carry, each the mean over the question's samples
COUNT_COST_COLUMNS = (PROMPT_TOKENS, COMPLETION_TOKENS, LATENCY_S, KV_BYTES_PEAK, FLOPS)
COUNTS_SCHEMA: dict[str, pa.DataType] = {
    **_KEY_SCHEMA,
    N_SAMPLES: pa.int64(),
    N_CORRECT: pa.int64(),
    **{c: pa.float64() for c in COUNT_COST_COLUMNS},
}
REQUIRED_COUNT_COLUMNS = (QUESTION_ID, N_SAMPLES, N_CORRECT)
#: what each numeric column of the counts table may hold (see fitting/_values.py)
COUNT_VALUES = {N_SAMPLES: V.COUNT, N_CORRECT: V.COUNT, **{c: V.MEAN for c in COUNT_COST_COLUMNS}}
#: the columns that identify a counts row: no two rows of a table share them
COUNT_KEYS = (RUN_ID, MODEL, STRATEGY, CONFIG, QUESTION_ID)
#: largest count accepted (fitting/_values.py says why)
MAX_COUNT = V.MAX_COUNT
#: file-name prefix of counts shards
COUNTS_PREFIX = "counts-"
#: file-name prefix of samples shards (``ttc profile``, ``ttc import``, ``ttc merge`` write them)
SAMPLES_PREFIX = "samples-"
#: the run metadata file of a folder written by ``ttc profile`` or ``ttc merge``
RUN_FILE = "run.json"
#: key of the Parquet metadata in which ``ttc import`` records a shard's source (path, SHA-256)
IMPORT_META_KEY = b"ttc.import"

# A curve is one (model, strategy, config, difficulty) group of the samples table.
GROUP_KEYS = (MODEL, STRATEGY, CONFIG, DIFFICULTY)

# ---- curves table ----------------------------------------------------------------------------
METRIC = "metric"  # pass@k, majority@k, best_of@k, weighted@k, ...
K = "k"  # the compute knob (samples k, beam width, rounds, token budget)
ACCURACY = "accuracy"
ACCURACY_LO = "accuracy_lo"
ACCURACY_HI = "accuracy_hi"
N_QUESTIONS = "n_questions"
POOL_SIZE = "pool_size"
MEAN_PROMPT_TOKENS = "mean_prompt_tokens"
MEAN_COMPLETION_TOKENS = "mean_completion_tokens"
MEAN_TOKENS = "mean_tokens"
MEAN_FLOPS = "mean_flops"
MEAN_LATENCY_S = "mean_latency_s"
MEAN_KV_BYTES = "mean_kv_bytes"
KNOB = "knob"  # what k counts: "samples" (pools), "width", "rounds", "tokens" (one point per config)
SCORE_SOURCE = "score_source"  # column that ranked samples for best_of@k ("reward" or "logprob")
MC_SE = "mc_se"  # Monte Carlo standard error of the accuracy (0 for exact estimators)
ESTIMATOR = "estimator"  # how accuracy was estimated: "unbiased", "exact", "monte_carlo", "mean"
POOL_POLICY = "pool_policy"  # uneven pools: "common" (k <= smallest pool) or "available" (n_i >= k)


class SchemaError(ValueError):
    """A table or file does not follow the samples schema.

    The message names the source (file and line where known), the field, what was
    expected and what was found.
    """


class BadValue(SchemaError):
    """A cell that its column may not hold: ``row`` (0-based position in the validated input),
    ``column``, what was ``expected`` and the ``value`` found (quoted as given)."""

    def __init__(self, where: str, problem: V.Problem) -> None:
        super().__init__(
            f"{where}row {problem.row + 1}: column {problem.column!r} must be {problem.expected}, "
            f"got {problem.value!r}"
        )
        self.row, self.column, self.expected, self.value = (
            problem.row,
            problem.column,
            problem.expected,
            problem.value,
        )


class DuplicateRows(SchemaError):
    """Two rows share their identifying columns; ``rows`` are the positions (in the validated
    input) of every row with the first such key."""

    def __init__(self, message: str, rows: list[int]) -> None:
        super().__init__(message)
        self.rows = rows


class DuplicateSamples(DuplicateRows):
    """Two rows share :data:`SAMPLE_KEYS` ``(run, model, strategy, config, question_id, sample_idx)``."""


class DuplicateCounts(DuplicateRows):
    """Two counts rows share :data:`COUNT_KEYS` ``(run, model, strategy, config, question_id)``."""


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def validate_samples(df: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """Check a samples DataFrame and return it normalized to :data:`SAMPLES_SCHEMA`.

    Missing optional columns are added (identity columns with defaults, measurements
    as null); ``sample_idx`` is numbered 0.. within each question when absent; extra
    columns are kept at the end. Raises :class:`SchemaError` on a missing required
    column, a wrong dtype, or a duplicate ``(run, model, strategy, config, question_id,
    sample_idx)``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = validate_samples(pd.DataFrame({"question_id": ["q1", "q1"], "correct": [True, False]}))
    >>> df["sample_idx"].tolist()
    [0, 1]
    """
    where = _where(source)
    out = _with_identity(df, REQUIRED_SAMPLE_COLUMNS, where)
    if SAMPLE_IDX not in out.columns or out[SAMPLE_IDX].isna().any():
        # number the rows without an index 0.. within their (run, model, strategy, config, question)
        keys = [RUN_ID, MODEL, STRATEGY, CONFIG, QUESTION_ID]
        if SAMPLE_IDX not in out.columns:
            out[SAMPLE_IDX] = pd.NA
        missing = out[SAMPLE_IDX].isna()
        numbered = out.loc[missing].assign(**{CONFIG: out.loc[missing, CONFIG].astype(str)})
        out.loc[missing, SAMPLE_IDX] = numbered.groupby(keys, sort=False, dropna=False).cumcount()
    _raise_earliest(_coerce_columns(out, SAMPLES_SCHEMA, SAMPLE_VALUES, where), where)
    same = _first_duplicate(out, SAMPLE_KEYS)
    if same is not None:
        first = out.iloc[same[0]]
        raise DuplicateSamples(
            f"{where}duplicate (question_id, sample_idx) = ({first[QUESTION_ID]!r}, {first[SAMPLE_IDX]}) "
            f"for the same run, model, strategy and config",
            same,
        )
    extra = [c for c in out.columns if c not in SAMPLES_SCHEMA]
    return out[list(SAMPLES_SCHEMA) + extra].reset_index(drop=True)


def _with_identity(df: pd.DataFrame, required, where: str) -> pd.DataFrame:
    """A copy with the required columns checked, identity defaults filled, labels as strings."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SchemaError(f"{where}missing required column(s) {missing}; have {list(df.columns)}")
    out = df.copy()
    for col, default in IDENTITY_DEFAULTS.items():
        if col not in out.columns:
            out[col] = default
        elif out[col].isna().any():
            out[col] = out[col].astype(object).where(out[col].notna(), default)
    out[QUESTION_ID] = out[QUESTION_ID].astype(str)
    out[DIFFICULTY] = difficulty_labels(out[DIFFICULTY])
    return out


_NUMBER_LABEL = re.compile(r"([+-]?)0*(\d+)(?:\.0*)?")


def difficulty_labels(labels: pd.Series) -> pd.Series:
    """Difficulty labels as strings, one spelling per label, and ``"all"`` only for all questions.

    * Numbers are one label however written: ``1``, ``1.0``, ``"1.0"``, ``" 01 "`` are ``"1"``.
    * With no label anywhere (null or blank), every row is ``"all"``: every question.
    * Where some rows have a label and others none, the others get ``"unlabelled"``
      (:data:`UNLABELLED`), and so does a row labelled ``"all"`` beside other labels (older
      versions filled missing labels with ``"all"``): a target of ``"all"`` then means every
      question (all labels weighted by their questions), never only the unlabelled ones.

    Examples
    --------
    >>> import pandas as pd
    >>> difficulty_labels(pd.Series([1, 1.0, "1.0", None])).tolist()
    ['1', '1', '1', 'unlabelled']
    >>> difficulty_labels(pd.Series([None, " "])).tolist()
    ['all', 'all']
    """
    codes, uniques = pd.factorize(labels.astype(object), use_na_sentinel=True)  # null: -1
    names = [_label_spelling(str(u).strip()) if str(u).strip() else None for u in uniques]
    distinct = {n for n in names if n is not None}
    missing = bool((codes < 0).any()) or None in names
    partial = bool(distinct - {ALL_DIFFICULTY}) and (missing or ALL_DIFFICULTY in distinct)
    fill = UNLABELLED if partial else ALL_DIFFICULTY
    final = [fill if n is None or (partial and n == ALL_DIFFICULTY) else n for n in names]
    return pd.Series(np.array([*final, fill], dtype=object)[codes], index=labels.index).astype(str)


def _label_spelling(label: str) -> str:
    m = _NUMBER_LABEL.fullmatch(label)
    if m is None:
        return label
    return ("-" if m[1] == "-" and int(m[2]) else "") + m[2]


def _pandas_dtype(typ: pa.DataType):
    if pa.types.is_boolean(typ):
        return "boolean"
    if pa.types.is_integer(typ):
        return "Int64"
    if pa.types.is_floating(typ):
        return "float64"
    return "string"


def _first_duplicate(df: pd.DataFrame, keys) -> list[int] | None:
    """Positions of every row sharing the first duplicated key of ``df``, or None."""
    dup = df.duplicated(list(keys), keep=False).to_numpy()
    if not dup.any():
        return None
    first = df.iloc[int(np.flatnonzero(dup)[0])]
    return np.flatnonzero((df[list(keys)] == first[list(keys)]).all(axis=1).to_numpy()).tolist()


def _coerce_columns(out: pd.DataFrame, schema: dict, values: dict, where: str) -> list[V.Problem | None]:
    """Convert ``out``'s columns to ``schema`` in place (absent ones added as null) and return
    the first problem of each numeric column, checked against its kind in ``values`` (a column
    with a problem is left as float64 numbers, for the caller's checks between columns)."""
    problems = []
    for col, typ in schema.items():
        if col not in out.columns:
            out[col] = pd.Series([None] * len(out), dtype=_pandas_dtype(typ), index=out.index)
        elif col in values:
            num, problem = V.numeric(out[col], col, values[col])
            problems.append(problem or V.first_problem(num, col, values[col]))
            out[col] = num if problems[-1] is not None else num.astype(_pandas_dtype(typ))
        else:
            out[col] = _coerce(out[col], typ, col, where)
    return problems


def _raise_earliest(problems: list[V.Problem | None], where: str) -> None:
    first = V.earliest(problems)
    if first is not None:
        raise BadValue(where, first)


def _coerce(col: pd.Series, typ: pa.DataType, name: str, where: str) -> pd.Series:
    dtype = _pandas_dtype(typ)
    if dtype == "boolean":
        if col.dtype == bool or str(col.dtype) == "boolean":
            if name == CORRECT and col.isna().any():
                raise SchemaError(f"{where}column 'correct' has missing values; every sample needs a verdict")
            return col.astype("boolean")
        bad = col[~col.map(lambda v: isinstance(v, (bool, np.bool_)) or (v is None and name != CORRECT))]
        if len(bad):
            raise SchemaError(f"{where}column {name!r} must be true/false, got {bad.iloc[0]!r}")
        return col.astype("boolean")
    if name == CONFIG:
        if pd.api.types.infer_dtype(col, skipna=False) == "string":  # texts only: each distinct one once
            codes, uniques = pd.factorize(col, use_na_sentinel=False)
            canonical = np.array([_config_to_json(u) for u in uniques], dtype=object)
            return pd.Series(canonical[codes], index=col.index).astype("string")
        return col.map(_config_to_json).astype("string")
    return col.astype("string")


def _config_to_json(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "{}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        raise SchemaError(f"column 'config' must be a JSON object, got {text!r}") from None
    if not isinstance(parsed, dict):
        raise SchemaError(f"column 'config' must be a JSON object, got {text!r}")
    return json.dumps(parsed, sort_keys=True)


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """A validated samples DataFrame as a pyarrow Table with the canonical schema."""
    fields = [pa.field(c, t) for c, t in SAMPLES_SCHEMA.items()]
    extra = [c for c in df.columns if c not in SAMPLES_SCHEMA]
    base = pa.Table.from_pandas(df[list(SAMPLES_SCHEMA)], schema=pa.schema(fields), preserve_index=False)
    for c in extra:
        base = base.append_column(c, pa.array(df[c].tolist()))
    return base


def _parquet_files(p: Path) -> list[Path]:
    """The Parquet files directly in folder ``p`` (not in subfolders: ``ttc fit --out`` or
    another run may live there), temporary files excluded."""
    return sorted(q for q in p.glob("*.parquet") if q.is_file() and not q.name.startswith((".", "_tmp")))


def shard_paths(folder: str | Path) -> list[Path]:
    """Samples shards of a folder (``samples-*.parquet`` directly in it), or the single file
    given, sorted.

    Only files named like shards are read, so a folder can hold other Parquet files (e.g. the
    ``curves.parquet`` of ``ttc fit --out FOLDER/fit``) without breaking. A folder holding only
    counts shards (``counts-*.parquet``, see :func:`read_counts`), or only other Parquet files,
    raises a :class:`SchemaError` that says so.
    """
    p = Path(folder)
    if p.is_file():
        return [p]
    if not p.exists():
        raise SchemaError(f"{p}: no such samples folder")
    if not p.is_dir():
        raise SchemaError(f"{p}: not a folder or a file")
    files = _parquet_files(p)
    shards = [q for q in files if q.name.startswith(SAMPLES_PREFIX)]
    if not shards and any(q.name.startswith(COUNTS_PREFIX) for q in files):
        raise SchemaError(
            f"{p}: holds per-question counts (counts-*.parquet), not per-sample rows; counts give "
            "pass@k curves and forecasts (`ttc fit`, `ttc forecast`), while this step needs samples"
        )
    if not shards:
        other = [q.name for q in files if not q.name.startswith(COUNTS_PREFIX)]
        more = " ..." if len(other) > 3 else ""
        found = (
            f"; found {', '.join(other[:3])}{more}: give a file's path, or `ttc import` it" if other else ""
        )
        raise SchemaError(f"{p}: no samples shards found (expected files named samples-*.parquet){found}")
    return shards


def counts_paths(folder: str | Path) -> list[Path]:
    """Counts shards (``counts-*.parquet``) of a folder (or the single file given), sorted;
    empty when the folder has none."""
    p = Path(folder)
    if p.is_file():
        return [p]
    if not p.exists():
        raise SchemaError(f"{p}: no such folder")
    return [q for q in _parquet_files(p) if q.name.startswith(COUNTS_PREFIX)]


def has_samples(folder: str | Path) -> bool:
    """Whether a folder holds samples shards (a file counts as one unless named ``counts-*``)."""
    p = Path(folder)
    if p.is_file():
        return not p.name.startswith(COUNTS_PREFIX)
    return p.is_dir() and any(q.name.startswith(SAMPLES_PREFIX) for q in _parquet_files(p))


def validate_counts(df: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """Check a counts DataFrame and return it normalized to :data:`COUNTS_SCHEMA`.

    Missing identity columns get their defaults, missing cost columns are null, extra
    columns are kept at the end. Raises :class:`SchemaError` on a missing required column,
    a non-integer or negative count, ``n_samples < 1``, ``n_correct > n_samples``, a
    negative cost, or a duplicate ``(run, model, strategy, config, question_id)``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = validate_counts(pd.DataFrame({"question_id": [1, 2], "n_samples": [10, 10], "n_correct": [0, 3]}))
    >>> df[["question_id", "n_samples", "n_correct", "strategy"]].values.tolist()
    [['1', 10, 0, 'pool'], ['2', 10, 3, 'pool']]
    """
    where = _where(source)
    out = _with_identity(df, REQUIRED_COUNT_COLUMNS, where)
    problems = _coerce_columns(out, COUNTS_SCHEMA, COUNT_VALUES, where)
    n = out[N_SAMPLES].to_numpy(dtype=float, na_value=np.nan)
    c = out[N_CORRECT].to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        few = np.flatnonzero(~(n >= 1))  # NaN (null) too
        over = np.flatnonzero(np.isnan(c) | (c > n))
    if len(few):
        problems.append(
            V.Problem(int(few[0]), N_SAMPLES, "an integer >= 1", V.plain(out[N_SAMPLES].iloc[few[0]]))
        )
    if len(over):
        i = int(over[0])
        expected = (
            V.EXPECTED[V.COUNT] if np.isnan(c[i]) else f"<= n_samples = {V.plain(out[N_SAMPLES].iloc[i])}"
        )
        problems.append(V.Problem(i, N_CORRECT, expected, V.plain(out[N_CORRECT].iloc[i])))
    _raise_earliest(problems, where)
    same = _first_duplicate(out, COUNT_KEYS)
    if same is not None:
        first = out.iloc[same[0]]
        raise DuplicateCounts(
            f"{where}duplicate counts for question_id {first[QUESTION_ID]!r} of model {first[MODEL]!r} "
            "(same run, strategy and config)",
            same,
        )
    extra = [c for c in out.columns if c not in COUNTS_SCHEMA]
    return out[list(COUNTS_SCHEMA) + extra].reset_index(drop=True)


def counts_to_arrow(df: pd.DataFrame) -> pa.Table:
    """A validated counts DataFrame as a pyarrow Table with :data:`COUNTS_SCHEMA`."""
    fields = [pa.field(c, t) for c, t in COUNTS_SCHEMA.items()]
    return pa.Table.from_pandas(df[list(COUNTS_SCHEMA)], schema=pa.schema(fields), preserve_index=False)


def read_counts(folder: str | Path) -> pd.DataFrame:
    """Read every counts shard (``counts-*.parquet``) of a folder into one validated DataFrame.

    Raises :class:`SchemaError` when the folder holds no counts shards, naming the shard at
    fault (both shards, and where each was imported from, for a row held twice).
    """
    paths = counts_paths(folder)
    if not paths:
        raise SchemaError(f"{folder}: no counts shards found (expected files like counts-*.parquet)")
    return _read_shards(folder, paths, validate_counts)


def read_samples(folder: str | Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Read every Parquet shard of a samples folder into one validated DataFrame.

    Raises :class:`SchemaError` naming the shard at fault (both shards, and where each came
    from, for a sample held twice).

    Examples
    --------
    >>> df = read_samples("examples/samples")  # doctest: +SKIP
    """
    return _read_shards(folder, shard_paths(folder), validate_samples, columns)


def _read_shards(folder, paths: list[Path], validate, columns: Iterable[str] | None = None) -> pd.DataFrame:
    frames = []
    for path in paths:
        try:
            frames.append(pd.read_parquet(path, columns=list(columns) if columns else None))
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise SchemaError(f"{path}: cannot read Parquet shard: {exc}") from None
    try:
        return validate(pd.concat(frames, ignore_index=True), source=str(folder))
    except DuplicateRows as exc:
        _raise_for_shard(validate, frames, paths)  # a duplicate within one shard
        ends = np.cumsum([len(f) for f in frames])
        held = sorted({paths[int(np.searchsorted(ends, i, side="right"))] for i in exc.rows})
        raise type(exc)(
            f"{exc} in shards {describe_shards(held)}; {_duplicate_advice(folder)}", exc.rows
        ) from None
    except SchemaError:
        _raise_for_shard(validate, frames, paths)
        raise


def _duplicate_advice(folder) -> str:
    if (Path(folder) / RUN_FILE).exists():
        return (
            f"two profilers wrote this folder at once? `ttc merge NEW {folder} --dedupe` writes one copy of "
            "each unit to NEW"
        )
    return "each holds a copy of these rows: remove the shard you do not want"


def import_record(path: str | Path) -> dict | None:
    """What ``ttc import`` recorded in a shard's Parquet metadata (``source``: the file's
    resolved path, ``sha256``: its content's hash, ``kind``), or None (a shard written by
    ``ttc profile``, ``ttc merge`` or an older ``ttc import``)."""
    try:
        meta = pq.read_schema(path).metadata or {}
        record = json.loads(meta[IMPORT_META_KEY]) if IMPORT_META_KEY in meta else None
    except (OSError, ValueError, pa.ArrowException):
        return None
    return record if isinstance(record, dict) else None


def describe_shards(paths: Iterable[Path]) -> str:
    """Shard names, each with the file it was imported from where ``ttc import`` recorded it.

    Examples
    --------
    >>> describe_shards([Path("no/such/samples-w0of1-1.parquet")])
    'samples-w0of1-1.parquet'
    """
    out = []
    for p in paths:
        record = import_record(p)
        out.append(
            f"{p.name} (imported from {record['source']})" if record and "source" in record else p.name
        )
    return ", ".join(out)


def _raise_for_shard(validate, frames: list[pd.DataFrame], paths: list[Path]) -> None:
    """Re-raise a folder's validation error naming the shard at fault: validates each shard
    alone (only on the error path) and raises the first one's error with its file name."""
    for frame, path in zip(frames, paths, strict=True):
        validate(frame, source=str(path))
