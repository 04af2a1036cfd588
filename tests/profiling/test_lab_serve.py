"""A lab checkpoint behind a real ``transformers serve``: it samples at temperature > 0.

``transformers serve`` only samples when the checkpoint's generation config says
``do_sample: true`` (otherwise it decodes greedily at every temperature), so the lab
checkpoints ship with it; temperature 0 must still be greedy.
"""

from __future__ import annotations

import pytest
from backend_helpers import serve_available, transformers_serve

from profiling.backends import GenerationRequest
from profiling.backends.openai import OpenAIBackend
from profiling.lab import checkpoint_path
from profiling.tasks import get_task


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    reason = serve_available()
    if reason:
        pytest.skip(reason)
    ckpt = checkpoint_path("lab-l")
    if not (ckpt / "config.json").is_file():
        pytest.skip("lab-l checkpoint missing")
    log = tmp_path_factory.mktemp("labserve") / "serve.log"
    with transformers_serve(ckpt, log) as base_url:
        yield OpenAIBackend(base_url, str(ckpt), max_concurrency=1, timeout_s=60)


def test_served_lab_model_samples_at_temperature_one_and_is_greedy_at_zero(lab_server):
    task = get_task("lab-arith")
    problem = next(task.problems("eval", per_level=1))
    prompt = task.format_prompt(problem, cot=True)
    hot = lab_server.generate([GenerationRequest(prompt, n=6, max_new_tokens=40, temperature=1.0, seed=3)])[0]
    cold = lab_server.generate([GenerationRequest(prompt, n=3, max_new_tokens=40, temperature=0.0, seed=3)])[
        0
    ]
    assert len({c.text for c in hot.completions}) >= 2
    assert len({c.text for c in cold.completions}) == 1
