"""``benchmarks/gpu_check.py`` runs to the end on this CPU machine: the hf section for real on a
lab model, and the vllm section's code paths on a stand-in engine (no GPU, no vLLM here). This
guards the device script against breaking where it cannot be run; it measures nothing and claims
nothing about vLLM."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from vllm_helpers import HeldGauge, engine_config

from profiling.lab import checkpoint_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StandInLLM:
    """Answers like ``vllm.LLM``: seeded texts depend on the seed only; the KV gauge shows the
    blocks of the last call's requests while it runs, until the sampling thread read it."""

    gauge = HeldGauge()

    def __init__(self, model, **kwargs):
        from transformers import AutoTokenizer

        self.kwargs = kwargs
        cfg = json.loads((Path(model) / "config.json").read_text())
        if kwargs.get("max_model_len", 0) > cfg["max_position_embeddings"]:  # as vLLM refuses it
            raise ValueError(f"max_model_len {kwargs['max_model_len']} > {cfg['max_position_embeddings']}")
        config = engine_config(cfg, num_gpu_blocks=200, kv_cache_size_tokens=None)
        config.model_config.max_model_len = cfg["max_position_embeddings"]
        config.cache_config.kv_cache_size_tokens = 200 * 256 // 16
        self.llm_engine = NS(vllm_config=config, engine_core=NS(shutdown=lambda: None))
        self.tokenizer = AutoTokenizer.from_pretrained(model)

    def get_tokenizer(self):
        return self.tokenizer

    def get_metrics(self):
        return [NS(name="vllm:kv_cache_usage_perc", value=StandInLLM.gauge.read())]

    def reset_prefix_cache(self):
        return True

    def collective_rpc(self, fn):
        blocks = self.llm_engine.vllm_config.cache_config.num_gpu_blocks
        from profiling.backends._vllm_kv import kv_layout_from_vllm_config

        layout, _ = kv_layout_from_vllm_config(self.llm_engine.vllm_config)
        return [{"bytes": blocks * layout.block_bytes, "num_blocks": blocks}]

    def generate(self, prompts, params, use_tqdm=False):
        outs = []
        for prompt, p in zip(prompts, params, strict=True):
            ids = prompt["prompt_token_ids"]
            samples = [
                NS(
                    index=i,
                    text=f"{p.seed}-{i}",
                    token_ids=[5] * min(p.max_tokens, 3 + i % 4),
                    cumulative_logprob=-1.0,
                    finish_reason="stop",
                )
                for i in range(p.n)
            ]
            outs.append(NS(prompt_token_ids=ids, num_cached_tokens=0, metrics=None, outputs=samples))
        with StandInLLM.gauge.raised(0.01):  # until the sampling thread has seen it
            pass
        return outs


def test_gpu_check_runs_every_section(gpu_check, monkeypatch, tmp_path):
    import torch

    module = types.ModuleType("vllm")
    module.__path__ = []
    module.LLM = StandInLLM
    module.SamplingParams = lambda **kw: NS(**kw)
    module.__version__ = "stand-in"
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (10 * 2**30, 80 * 2**30))
    monkeypatch.setattr(gpu_check, "CHECKS", [])
    args = NS(
        workloads={"greedy n=1": gpu_check.WORKLOADS["greedy n=1"]},
        vllm_memory=0.3,
        dtype="auto",
    )
    report = {"results": []}
    gpu_check.vllm_section("lab-s", str(checkpoint_path("lab-s")), args, 8, 1, report, tmp_path)
    names = [c["check"] for c in gpu_check.CHECKS]
    for expected in (
        "KV pool from the cache layout",
        "kv_cache_size_tokens",
        "workers' KV tensors",
        "seeded pool n=16 twice",
        "inside a batch",
        "peak KV blocks",
        "greedy n=4",
        "chat prompt sent as token ids with one BOS",
        "close() releases",
    ):
        assert any(expected in n for n in names), (expected, names)
    assert all(c["ok"] for c in gpu_check.CHECKS), gpu_check.CHECKS
    assert set(report["vllm"]["polling_wall_s"]) == {"on", "off"}


def test_gpu_check_cpu_smoke_runs_the_hf_checks(gpu_check, monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_check, "CHECKS", [])
    out = tmp_path / "gpu_check.json"
    code = gpu_check.main(
        [
            "--device",
            "cpu",
            "--models",
            "lab-s",
            "--workloads",
            "pool n=16",
            "--max-new-tokens",
            "8",
            "--out",
            str(out),
        ]
    )
    report = json.loads(out.read_text())
    assert code == 0 and report["checks"] and all(c["ok"] for c in report["checks"])
    assert any("seeded pool" in c["check"] for c in report["checks"])
