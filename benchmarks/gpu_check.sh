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

# ---- `ttc profile --executor ray` with the vllm backend (only with vLLM, Ray and a GPU) ----------
# The same lab profile through one process and through one Ray actor holding the GPU; the two samples
# tables must agree in answers, verdicts and token counts (PASS/FAIL, exit 1 on FAIL). Skipped without vLLM,
# Ray or CUDA; the lab checkpoints hold 256 positions, hence 128 new tokens at most.
if python -c "import vllm, ray, torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  ray_dir="${OUT:-$(mktemp -d)}/ray_vllm"
  rm -rf "$ray_dir"
  ttc=(python -c "from planner.cli import main; main()" profile -m vllm:lab-s -t lab-arith -s greedy
       -s pool:n=8 --questions 20 --batch-size 64 --max-new-tokens 128 --no-progress)
  t0=$(date +%s.%N)
  "${ttc[@]}" --out "$ray_dir/one-process"
  t1=$(date +%s.%N)
  RAY_AUTH_MODE=disabled "${ttc[@]}" --out "$ray_dir/ray" --executor ray --workers 1 --gpus-per-worker 1
  t2=$(date +%s.%N)
  python - "$ray_dir" "$t0" "$t1" "$t2" <<'PY'
import json, sys
from fitting import schema as S
folder, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
key = [S.MODEL, S.STRATEGY, S.CONFIG, S.QUESTION_ID, S.SAMPLE_IDX]
cols = [S.ANSWER, S.CORRECT, S.PROMPT_TOKENS, S.COMPLETION_TOKENS]
a, b = (S.read_samples(f"{folder}/{side}").sort_values(key).reset_index(drop=True) for side in ("one-process", "ray"))
same = len(a) == len(b) and a[key + cols].equals(b[key + cols])
[ran] = json.load(open(f"{folder}/ray/run.json"))["executors"]
print(f"ray+vllm: {len(b)} rows, one process {t1 - t0:.1f} s, ray (cluster start and model load included) {t2 - t1:.1f} s; "
      f"ray {ran['ray']}, hosts {[h['versions'].get('vllm') for h in ran['hosts']]}")
print(("PASS" if same else "FAIL") + " ray+vllm: answers, verdicts and token counts equal one process's")
sys.exit(0 if same else 1)
PY
else
  echo "SKIP ray+vllm: needs vLLM, Ray (pip install 'ttc-planner[ray]') and a CUDA GPU"
fi
