"""Where ``ttc import`` puts a file's rows, and the second copy it refuses to write.

An imported shard is keyed on its SOURCE, the file's resolved path, never on its bare name:
``samples-import-<name>-<id>.parquet`` or ``counts-import-<name>-<id>.parquet``, ``<id>`` being
10 hex digits of the SHA-256 of the path. The shard's Parquet metadata records the path and
the SHA-256 of the file's content (:func:`fitting.schema.import_record`). So:

* importing the same file again (an edited version at the same path) replaces its own
  shard, whatever its kind, and nothing else;
* ``a/results.csv`` and ``b/results.jsonl`` are two sources, kept side by side;
* rows that another shard of the folder already holds (the same question of the same run,
  model, strategy and config; a copy of a file under another name, for instance) are refused
  before anything is written, naming that shard and where it came from, since every reader
  would refuse the folder afterwards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import schema as S

_KEYS = {"samples": S.SAMPLE_KEYS, "counts": S.COUNT_KEYS}
_PREFIX = {"samples": S.SAMPLES_PREFIX, "counts": S.COUNTS_PREFIX}
_VALIDATE = {"samples": S.validate_samples, "counts": S.validate_counts}


def source_of(path: str | Path) -> str:
    """The source an import is keyed on: the file's resolved (absolute, links followed) path."""
    return str(Path(path).resolve())


def content_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    path = Path(path)
    # a folder (an evaluation tool's output) hashes its files' relative names and contents
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def shard_names(path: str | Path, key: str) -> dict[str, str]:
    """kind -> the shard name of an import of ``path`` (``key``: its readable name part)."""
    sid = hashlib.sha256(source_of(path).encode()).hexdigest()[:10]
    return {kind: f"{prefix}import-{key}-{sid}.parquet" for kind, prefix in _PREFIX.items()}


def earlier_imports(out_dir: Path, path: str | Path, names: dict[str, str]) -> list[Path]:
    """The shards of ``out_dir`` that an earlier import of the same source wrote (either kind)."""
    source = source_of(path)
    found = []
    for shard in sorted(out_dir.glob("*import-*.parquet")) if out_dir.is_dir() else []:
        record = S.import_record(shard)
        if shard.name in names.values() or (record is not None and record.get("source") == source):
            found.append(shard)
    return found


def with_record(table: pa.Table, record: dict) -> pa.Table:
    """``table`` with the import ``record`` in its Parquet metadata (:data:`S.IMPORT_META_KEY`)."""
    meta = dict(table.schema.metadata or {})
    meta[S.IMPORT_META_KEY] = json.dumps(record, sort_keys=True).encode()
    return table.replace_schema_metadata(meta)


def check_no_overlap(table: pd.DataFrame, kind: str, out_dir: Path, skip: list[Path], record: dict) -> None:
    """Raise :class:`fitting.schema.SchemaError` (one line) when a shard of ``out_dir`` other than
    ``skip`` already holds rows with the identifying columns of ``table``'s rows."""
    if not out_dir.is_dir():
        return
    keys = list(_KEYS[kind])
    new = pd.MultiIndex.from_frame(_key_frame(table, keys))
    for shard in sorted(out_dir.glob(f"{_PREFIX[kind]}*.parquet")):
        if shard in skip or shard.name.startswith((".", "_tmp")):
            continue
        held = new.isin(pd.MultiIndex.from_frame(_key_frame(_read_keys(shard, kind, keys), keys)))
        if held.any():
            raise S.SchemaError(_overlap_message(table[held].iloc[0], int(held.sum()), kind, shard, record))


def _read_keys(shard: Path, kind: str, keys: list[str]) -> pd.DataFrame:
    try:
        names = pq.read_schema(shard).names
        if set(keys) <= set(names):
            return pd.read_parquet(shard, columns=keys)
        return _VALIDATE[kind](pd.read_parquet(shard), source=str(shard))  # defaults filled in
    except (OSError, pa.ArrowException) as exc:
        raise S.SchemaError(f"{shard}: cannot read Parquet shard: {exc}") from None


def _key_frame(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = df[keys].copy()
    for col in keys:
        if col in S.IDENTITY_DEFAULTS:
            out[col] = out[col].astype(object).where(out[col].notna(), S.IDENTITY_DEFAULTS[col])
        out[col] = out[col].astype(str)
    return out


def _overlap_message(row: pd.Series, count: int, kind: str, shard: Path, record: dict) -> str:
    earlier = S.import_record(shard)
    if earlier is not None and "source" in earlier:
        origin = f"imported from {earlier['source']}"
        if earlier.get("sha256") == record["sha256"]:
            origin += ", the same content"
    elif "-import-" in shard.name:
        origin = "imported by an older ttc, which did not record its source"
    else:
        origin = "written by ttc profile or ttc merge"
    what = f"question_id {row[S.QUESTION_ID]!r} of model {row[S.MODEL]!r}"
    if kind == "samples":
        what += f" (sample_idx {row[S.SAMPLE_IDX]})"
    more = f" and {count - 1} more {kind} row(s)" if count > 1 else ""
    return (
        f"{record['source']}: {what}{more} already in {shard} ({origin}); nothing written: remove that "
        "shard to replace it, or give these rows a run_id column of their own to keep both as two runs"
    )
