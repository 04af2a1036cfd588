"""The reference lab: the ``lab-arith`` task and a family of tiny trained models.

- :class:`LabArithTask` (``profiling.tasks.get_task("lab-arith")``): multi-step arithmetic with
  a checkable scratchpad, direct-answer prompts, an exact verifier and a step checker;
  :func:`simulated_noisy_step_checker` is a deliberately noisy (SIMULATED) step checker.
- :data:`LAB_MODELS` (name -> :class:`LabModelSpec`): ``lab-s``, ``lab-m``, ``lab-l`` (dense
  Llama) and ``lab-moe`` (Mixtral); :func:`checkpoint_path` gives each trained checkpoint's
  folder (``save_pretrained`` format with its tokenizer), trained by :mod:`profiling.lab.train`
  and evaluated by :mod:`profiling.lab.evaluate` (model card: ``profiling/lab/README.md``).
"""

from __future__ import annotations

from .models import LAB_MODELS, LabModelSpec, build_tokenizer, checkpoint_path, param_counts
from .task import LabArithTask, simulated_noisy_step_checker

__all__ = [
    "LAB_MODELS",
    "LabModelSpec",
    "LabArithTask",
    "build_tokenizer",
    "checkpoint_path",
    "param_counts",
    "simulated_noisy_step_checker",
]
