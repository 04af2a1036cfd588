#!/usr/bin/env bash
# One short device check of the backends (see benchmarks/gpu_check.py for every check): hf on CUDA
# (lab checkpoints, or a random model when none exists); vllm when `import vllm` works (versions,
# KV pool vs num_gpu_blocks/kv_cache_size_tokens/the workers' tensors, seeded pools, peak KV blocks,
# polling on/off, greedy n>1, chat token ids, close and recreate). Prints what it measured and
# PASS/FAIL per check, exits 1 when a check fails; JSON goes to $OUT when set.
#   bash benchmarks/gpu_check.sh                 # on a GPU machine
#   bash benchmarks/gpu_check.sh --device cpu    # CPU smoke check of the hf part (small, one repeat)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader || true
fi
out_args=()
if [ -n "${OUT:-}" ]; then
  out_args=(--out "$OUT/gpu_check.json")
fi
python benchmarks/gpu_check.py ${out_args[@]+"${out_args[@]}"} "$@"
