#!/usr/bin/env bash
# Runs lm-evaluation-harness and Inspect AI on a lab checkpoint over lab_questions.jsonl, offline.
# Usage (from the repository root): bash tests/data/evallogs/run_tools.sh OUT [LIMIT] [MODEL]
#   OUT/lm-eval/<model>/results_<time>.json, samples_lab_arith_<time>.jsonl   (repeats: 8)
#   OUT/inspect/<time>_lab-arith_<id>.eval                                     (--epochs 8)
# LIMIT: the first LIMIT questions only (default: all 10); MODEL: a lab checkpoint (default lab-l).
# PYTHON: the interpreter whose lm_eval and inspect_ai run (default: python).
set -euo pipefail
out=$1
limit=${2:-}
model=profiling/lab/checkpoints/${3:-lab-l}
py=${PYTHON:-python}
here=tests/data/evallogs
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_WAIT_POLICY=PASSIVE
"$py" -m lm_eval run --model hf \
  --model_args "pretrained=$model,dtype=float32,add_bos_token=True" \
  --tasks lab_arith --include_path "$here/lmeval_task" --device cpu --seed 0 \
  --log_samples --output_path "$out/lm-eval" ${limit:+--limit "$limit"}
"$py" -m inspect_ai eval "$here/inspect_task.py" --model hf/local \
  --model-config "$here/inspect_model.yaml" -M "model_path=$model" \
  --epochs 8 --max-tokens 96 --temperature 1.0 --max-connections 1 --seed 0 \
  --log-dir "$out/inspect" --display none ${limit:+--limit "$limit"}
