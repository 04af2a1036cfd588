#!/usr/bin/env bash
# Conformance of the vllm backend with vLLM's real classes, without a GPU.
#
# Builds a throwaway virtual environment (under $TMPDIR, removed on exit) with the newest vLLM
# wheel from the registry installed WITHOUT its GPU dependencies: only what importing
# vllm.SamplingParams, vllm.outputs, vllm.v1.metrics.reader and the config classes needs, pinned
# as vLLM's own metadata pins them, on the CPU build of torch. Then runs
# tests/profiling/test_vllm_conformance.py there. Exits 0 only when every check ran and passed (no skips),
# and prints the vLLM version it checked.
#   bash benchmarks/vllm_conformance.sh                          # the newest vLLM
#   VLLM_SPEC=vllm==0.32.0 bash benchmarks/vllm_conformance.sh   # another version
#   KEEP_VENV=1 bash benchmarks/vllm_conformance.sh              # keep the environment (path printed)
# TORCH_SPEC (default torch==2.13.0, the CPU build this project's machines install) and PYTHON
# (default python3, >= 3.11 for recent vLLM) can be overridden too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
VLLM_SPEC=${VLLM_SPEC:-vllm}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ttc-vllm-conformance.XXXXXX")
cleanup() {
  if [ -n "${KEEP_VENV:-}" ]; then echo "kept $WORK/venv"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# vLLM's dependencies that importing its Python classes needs (no kernels, no CUDA libraries)
CPU_DEPS="packaging numpy msgspec pydantic regex cbor2 psutil pyzmq transformers tokenizers
huggingface-hub safetensors sentencepiece tqdm aiohttp requests openai oss-harmony cloudpickle
pillow pybase64 cachetools py-cpuinfo prometheus-client xgrammar llguidance fastapi
partial-json-parser einops blake3 pyyaml protobuf"

"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
vpip() {  # quiet pip; its log is shown only when it fails
  if ! "$VPY" -m pip --disable-pip-version-check -q "$@" >"$WORK/pip.log" 2>&1; then
    cat "$WORK/pip.log" >&2
    echo "pip $* failed" >&2
    exit 1
  fi
}
echo "== $TORCH_SPEC, then $VLLM_SPEC without its dependencies (in $WORK/venv)"
vpip install "$TORCH_SPEC" packaging
vpip install --no-deps "$VLLM_SPEC"
REQS=$(CPU_DEPS="$CPU_DEPS" "$VPY" - <<'EOF'
import importlib.metadata as md
import os

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

wanted = {canonicalize_name(n) for n in os.environ["CPU_DEPS"].split()}
pins = []
for line in md.requires("vllm") or []:
    req = Requirement(line)
    if canonicalize_name(req.name) in wanted and (req.marker is None or req.marker.evaluate({"extra": ""})):
        pins.append(f"{req.name}{req.specifier}")
print(" ".join(sorted(set(pins))))
EOF
)
echo "== vLLM's CPU-side dependencies: $REQS"
# shellcheck disable=SC2086  # one word per requirement
vpip install $REQS uvloop pytest
VERSION=$("$VPY" -c "import vllm; print(vllm.__version__)")
"$VPY" - <<'EOF'
import vllm.config, vllm.outputs, vllm.v1.metrics.reader  # noqa: F401  the modules the check needs
from vllm import SamplingParams  # noqa: F401
EOF

echo "== conformance of profiling/backends/vllm.py with vLLM $VERSION"
set +e
TTC_VLLM_CONFORMANCE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE PYTHONPATH="$ROOT" \
  "$VPY" -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
  --junitxml="$WORK/junit.xml" tests/profiling/test_vllm_conformance.py
status=$?
set -e
VERSION="$VERSION" "$VPY" - "$WORK/junit.xml" "$status" <<'EOF'
import os
import sys
import xml.etree.ElementTree as ET

path, status = sys.argv[1], int(sys.argv[2])
cases = ET.parse(path).getroot().iter("testcase")
outcome = {}
for case in cases:
    bad = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
    outcome[case.get("name")] = bad[0] if bad else "passed"
passed = sum(v == "passed" for v in outcome.values())
others = {k: v for k, v in outcome.items() if v != "passed"}
print(f"\nvLLM {os.environ['VERSION']}: {len(outcome)} checks ran, {passed} passed")
for name in sorted(outcome):
    print(f"  {outcome[name]:<7} {name}")
ok = status == 0 and outcome and not others
print("CONFORMANCE PASSED" if ok else f"CONFORMANCE FAILED ({len(others)} not passed, pytest status {status})")
sys.exit(0 if ok else 1)
EOF
