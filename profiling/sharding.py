"""Which questions a worker owns: ``--shard i/n``, or ``--shard auto`` from a job array.

A question belongs to worker ``shard_of(id, n)`` (SHA-256 of its id, so every machine agrees
without coordination). ``--shard auto`` takes ``i/n`` from the job array the process runs in:

=========================  ===============================================================
scheduler                  environment read
=========================  ===============================================================
Slurm (``sbatch --array``)  ``SLURM_ARRAY_TASK_ID``, ``_COUNT``, ``_MIN``, ``_STEP``
Grid Engine (``qsub -t``)   ``SGE_TASK_ID``, ``SGE_TASK_FIRST``, ``SGE_TASK_LAST``, ``SGE_TASK_STEPSIZE``
=========================  ===============================================================

Array indices may start anywhere and step by any stride (``--array=1-7:2`` is 4 workers,
index 5 is worker 2); a list that is not an evenly spaced range (``--array=1,2,7``) is
refused, as its workers could not agree on who owns what. Schedulers that do not expose
the array's size (PBS, LSF, AWS Batch, Kubernetes indexed jobs) take ``--shard $INDEX/N``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

__all__ = ["parse_shard", "shard_of", "shard_from_scheduler", "partition_problem"]

#: (scheduler, id, first, count or None, last or None, step) environment variable names
_ARRAYS = (
    (
        "Slurm",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MAX",
        "SLURM_ARRAY_TASK_STEP",
    ),
    ("Grid Engine", "SGE_TASK_ID", "SGE_TASK_FIRST", None, "SGE_TASK_LAST", "SGE_TASK_STEPSIZE"),
)


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``"auto"`` -> :func:`shard_from_scheduler`;
    ``ValueError`` otherwise.

    Examples
    --------
    >>> parse_shard("1/4")
    (1, 4)
    >>> parse_shard("auto", env={"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"})
    (2, 4)
    """
    if str(text).strip().lower() == "auto":
        return shard_from_scheduler(os.environ if env is None else env)
    i, sep, n = str(text).partition("/")
    try:
        index, count = int(i), int(n)
    except ValueError:
        index, count = -1, 0
    if not sep or count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4) or auto, got {text!r}")
    return index, count


def shard_from_scheduler(env: Mapping[str, str]) -> tuple[int, int]:
    """``(i, n)`` of this job-array task (module docstring); ``ValueError`` naming the
    variables when the process is not in a job array or the array is not an even range.

    Examples
    --------
    >>> shard_from_scheduler({"SGE_TASK_ID": "5", "SGE_TASK_FIRST": "1", "SGE_TASK_LAST": "7", "SGE_TASK_STEPSIZE": "2"})
    (2, 4)
    """
    for scheduler, id_var, first_var, count_var, last_var, step_var in _ARRAYS:
        raw = env.get(id_var)
        if raw is None or raw.strip() in ("", "undefined"):  # SGE sets "undefined" outside arrays
            continue
        names = [v for v in (id_var, first_var, count_var, last_var, step_var) if v]
        shown = ", ".join(f"{v}={env.get(v)}" for v in names if env.get(v) is not None)
        try:
            task = int(raw)
            first = int(env.get(first_var) or 0)
            last = int(env[last_var]) if env.get(last_var) else None
            count = int(env[count_var]) if count_var and env.get(count_var) else None
            step = int(env.get(step_var) or 0)
        except ValueError:
            raise ValueError(
                f"--shard auto: {scheduler} array variables are not integers ({shown}); pass --shard i/n"
            ) from None
        if count is None and last is None:
            raise ValueError(
                f"--shard auto: {scheduler} does not give the array's size ({shown}); use --shard i/n"
            )
        if not step:  # a list such as --array=1,3,5,7 may come without a step: infer it
            step = (last - first) // (count - 1) if last is not None and count and count > 1 else 1
        if count is None:
            count = (last - first) // step + 1
        even = (
            step >= 1
            and (task - first) % step == 0
            and (last is None or (last - first) == step * (count - 1))
        )
        index = (task - first) // step if step >= 1 else -1
        if not even or not 0 <= index < count:
            raise ValueError(
                f"--shard auto: the {scheduler} array is not an evenly spaced range of indices ({shown}); "
                "submit a range such as --array=0-7 (or 1-15:2), or pass --shard i/n"
            )
        return index, count
    raise ValueError(
        "--shard auto: not in a job array (no SLURM_ARRAY_TASK_ID or SGE_TASK_ID); "
        "submit with sbatch --array=0-N (or qsub -t 1-N), or pass --shard i/n"
    )


def shard_of(question_id: str, count: int) -> int:
    """The worker (0..count-1) that owns a question: SHA-256 of its id modulo ``count``.

    Deterministic across machines and Python processes (unlike ``hash``).

    Examples
    --------
    >>> shard_of("q1", 1)
    0
    """
    digest = hashlib.sha256(str(question_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def partition_problem(recorded: list[tuple[str, list[str]]]) -> str | None:
    """What keeps run folders from being the workers of one ``--shard i/n`` run, in one line, or
    None. ``recorded``: each folder's name and the ``i/n`` its ``run.json`` records (``shards``).

    The workers of one run split the questions the same way (one ``n``), each ``i`` once, and
    all ``n`` of them are there. Folders that record no shard are not checked.

    Examples
    --------
    >>> partition_problem([("w0", ["0/2"]), ("w1", ["1/2"])]) is None
    True
    >>> partition_problem([("w3", ["3/4"]), ("w1", ["1/3"])])
    'w1 is worker 1/3 but w3 is worker 3/4: the workers of one run split the questions the same way (one n); these are parts of different runs'
    >>> partition_problem([("a", ["5/1000000"]), ("b", ["7/1000000"])])
    'workers 0/1000000, 1/1000000, 2/1000000 and 999995 more of 1000000 are missing (have 5/1000000 from a, 7/1000000 from b): merge once every worker has finished, or add --allow-mixed to merge part of a run on purpose'
    """
    owner: dict[tuple[int, int], str] = {}
    for folder, shards in recorded:
        for text in shards:
            try:
                i, n = parse_shard(text, env={})
            except ValueError:
                return f"{folder}: run.json records shard {text!r}, not i/n with 0 <= i < n"
            first = next(iter(owner.items()), None)
            if first is not None and first[0][1] != n:
                (i0, n0), other = first
                return (
                    f"{folder} is worker {i}/{n} but {other} is worker {i0}/{n0}: the workers of one run split "
                    "the questions the same way (one n); these are parts of different runs"
                )
            if (i, n) in owner and owner[(i, n)] != folder:
                return (
                    f"worker {i}/{n} is in both {owner[(i, n)]} and {folder}: merge one copy of each worker"
                )
            owner[(i, n)] = folder
    if not owner:
        return None
    n = next(iter(owner))[1]
    have = {i for i, _ in owner}
    missing = [i for i in range(min(n, len(have) + 3)) if i not in have][:3]
    count = n - len(have)
    if not count:
        return None
    shown = ", ".join(f"{i}/{n}" for i in missing) + (
        f" and {count - len(missing)} more" if count > len(missing) else ""
    )
    found = ", ".join(f"{i}/{n} from {owner[(i, n)]}" for i, _ in sorted(owner)[:4])
    return (
        f"worker{'s' if count > 1 else ''} {shown} of {n} {'are' if count > 1 else 'is'} missing (have {found}): merge "
        "once every worker has finished, or add --allow-mixed to merge part of a run on purpose"
    )
