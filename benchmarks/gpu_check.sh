#!/usr/bin/env bash
# One short device check of the backends: hf on CUDA (lab checkpoints, or a random model when none
# exists), vllm only if `import vllm` works. Prints what it measured; JSON goes to $OUT when set.
#   bash benchmarks/gpu_check.sh                 # on a GPU machine
#   bash benchmarks/gpu_check.sh --device cpu    # CPU smoke check (small, one repeat)
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
