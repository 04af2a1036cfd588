"""Backend for any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, ``transformers serve``,
hosted APIs), over ``/v1/completions`` (or ``/v1/chat/completions`` with ``chat=True``).

Only the standard library is used (``urllib``), so no HTTP client is added to the dependencies.

What is measured
----------------
* Token counts come from the server: ``usage.prompt_tokens``; a completion's tokens are the
  number of tokens in its ``logprobs`` (one entry per generated token) or, for a call with one
  choice, ``usage.completion_tokens``. Servers count the tokens they generated, stop-string
  tokens included, while the returned text stops before the stop string.
* ``latency_s``: wall time (``time.perf_counter``) from sending the request's first HTTP call
  to the end of its last, retries and backoff included (``extra["retries"]`` counts them).
  Requests run concurrently (at most ``max_concurrency`` HTTP calls in flight), so the
  latencies of concurrent requests overlap; they are what a client of that server sees.
* ``ttft_s``: with streaming (the default), time from sending the call until the first chunk
  with text arrived (the earliest over the request's calls).
* ``kv_bytes_peak`` is None with ``kv_source="unavailable-remote"``: servers do not expose the
  KV-cache bytes held per request.
* Reasoning tokens: a reasoning model's hidden tokens, reported as
  ``usage.completion_tokens_details.reasoning_tokens``, are generated tokens (and billed as
  output): a completion counted from its logprobs (visible tokens only) gets its call's
  reasoning tokens added (split evenly over the call's choices, the remainder to the first);
  ``usage.completion_tokens`` already includes them. ``extra["reasoning_tokens"]`` sums them.

Reasoning effort
----------------
``reasoning_effort=low|medium|high`` (the constructor's default for every request, or a
request's own :attr:`GenerationRequest.reasoning_effort`, set by a strategy's
``reasoning_effort`` knob) is sent as the request body's ``reasoning_effort`` field (OpenAI's
chat completions and o-series models; servers that do not know it may refuse it: HTTP 400 is
an :class:`OpenAIBackendError`, not retried).

Samples per request (``n``)
---------------------------
A request with ``n > 1`` is first sent as one call with ``n`` and ``logprobs=1``. Some servers
ignore ``n`` (``transformers serve``, llama.cpp) or ``logprobs`` (then the choices' token counts
are unknown); the backend detects a reply with fewer than ``n`` choices or without per-choice
logprobs, keeps what is usable, makes the missing samples as separate calls with ``n=1`` and
remembers the server's behaviour for later requests (``extra["n_fallback"]`` says why). Sample
``i > 0`` of a separate-call pool is seeded with ``derive_subseed(seed, i)``. Note that some
servers (``transformers serve``) seed one global RNG on arrival of each request, so seeded
results are reproducible only with ``max_concurrency=1`` there.

Retries: HTTP 429 and 5xx, connection errors and timeouts are retried with exponential backoff
``min(backoff_max_s, backoff_s * 2**attempt)`` (times a jitter in [0.5, 1] from a seeded
generator, and at least the server's ``Retry-After``), at most ``max_retries`` times and never
past ``deadline_s`` for one call; other HTTP errors raise :class:`OpenAIBackendError` at once.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._base import REASONING_EFFORTS, Backend, Completion, GenerationRequest, GenerationResult
from ._checks import check_request

__all__ = ["OpenAIBackend", "OpenAIBackendError", "derive_subseed", "backoff_delay_s"]

KV_SOURCE = "unavailable-remote"


class OpenAIBackendError(RuntimeError):
    """An HTTP call that failed for good (non-retryable status, or retries exhausted)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Retryable(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def derive_subseed(seed: int, index: int) -> int:
    """Seed of sample ``index`` of a pool made of separate calls (``index=0`` keeps ``seed``).

    Examples
    --------
    >>> derive_subseed(7, 0)
    7
    >>> derive_subseed(7, 1) == derive_subseed(7, 1) != derive_subseed(8, 1)
    True
    """
    if index == 0:
        return int(seed)
    digest = hashlib.sha256(f"{int(seed)}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def backoff_delay_s(attempt: int, backoff_s: float, backoff_max_s: float, jitter: float = 1.0) -> float:
    """Delay before retry ``attempt`` (0-based): ``min(backoff_max_s, backoff_s * 2**attempt) * jitter``.

    Examples
    --------
    >>> [backoff_delay_s(a, 0.5, 3.0) for a in range(4)]
    [0.5, 1.0, 2.0, 3.0]
    """
    return min(backoff_max_s, backoff_s * 2.0**attempt) * jitter


@dataclass
class _Choice:
    text: str = ""
    tokens: int | None = None  # from logprobs (one entry per token)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class _CallResult:
    choices: list[_Choice]
    prompt_tokens: int | None
    completion_tokens: int | None
    start_s: float
    end_s: float
    ttft_s: float | None
    retries: int
    seed: int | None
    reasoning_tokens: int | None = None  # usage.completion_tokens_details.reasoning_tokens


def _reasoning_share(call: _CallResult, choice: _Choice) -> int:
    """The reasoning tokens of ``call`` attributed to ``choice``: an even split over the call's
    choices, the remainder to the first ones (0 when the server reported none)."""
    total = int(call.reasoning_tokens or 0)
    k = len(call.choices)
    i = next(j for j, c in enumerate(call.choices) if c is choice)
    return total // k + (1 if i < total % k else 0)


def _retry_after_s(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OpenAIBackend(Backend):
    """A model served behind an OpenAI-compatible HTTP API (see the module docstring).

    Parameters
    ----------
    base_url : str
        The API root including ``/v1``, e.g. ``http://127.0.0.1:8000/v1``.
    model : str
        The served model name sent in each request.
    api_key : str, optional
        Bearer token; default the ``OPENAI_API_KEY`` environment variable (none sent if unset).
    tokenizer : str or Path or tokenizer, optional
        Tokenizer for :meth:`count_tokens` (a local folder or a loaded tokenizer); default the
        model itself when it is a local folder, else the server's ``/tokenize`` (vLLM, SGLang).
    chat : bool, default False
        Use ``/v1/chat/completions`` with the prompt as one user message (the server applies
        the chat template).
    max_concurrency : int, default 8
        HTTP calls in flight at once.
    stream : bool, default True
        Stream responses (measures TTFT; asks for ``stream_options.include_usage``).
    logprobs : bool, default True
        Ask for the sampled tokens' log-probs (gives per-choice token counts and ``logprob``).
    timeout_s, max_retries, backoff_s, backoff_max_s, deadline_s
        Socket timeout of one call; retry policy (see the module docstring).
    extra_body : dict, optional
        Fields merged into every request body (server-specific knobs, e.g. ``top_k``).
    seed : int, default 0
        Seed of the backoff jitter generator.
    model_name : str, optional
        Name written to the samples table; default ``model``.
    reasoning_effort : {"low", "medium", "high"}, optional
        Sent with every request that does not set its own (module docstring); None: not sent.
    """

    name = "openai"
    request_options = frozenset({"reasoning_effort"})

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        tokenizer: Any = None,
        chat: bool = False,
        max_concurrency: int = 8,
        stream: bool = True,
        logprobs: bool = True,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        deadline_s: float = 600.0,
        extra_body: dict[str, Any] | None = None,
        seed: int = 0,
        model_name: str | None = None,
        reasoning_effort: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0 or deadline_s <= 0:
            raise ValueError("need max_concurrency >= 1, max_retries >= 0, timeout_s > 0 and deadline_s > 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_name = model_name or model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.chat = bool(chat)
        self.max_concurrency = int(max_concurrency)
        self.stream = bool(stream)
        self.logprobs = bool(logprobs)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.deadline_s = float(deadline_s)
        self.extra_body = dict(extra_body or {})
        if reasoning_effort is not None and reasoning_effort not in REASONING_EFFORTS:
            raise ValueError(
                f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, got {reasoning_effort!r}"
            )
        self.reasoning_effort = reasoning_effort
        self._tokenizer_spec = tokenizer
        self._tokenizer: Any = None
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        #: None until detected: "native" (n choices with token counts) or "separate" (n calls)
        self.n_mode: str | None = None
        self.n_fallback_reason: str | None = None
        self.logprobs_returned: bool | None = None

    # ---- HTTP -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _open(self, url: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            url, data=data, headers=self._headers(), method="GET" if body is None else "POST"
        )
        try:
            return urllib.request.urlopen(req, timeout=self.timeout_s)  # noqa: S310 - URL given by the user
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:500]
            if err.code == 429 or err.code >= 500:
                raise _Retryable(f"HTTP {err.code}: {detail}", _retry_after_s(err.headers)) from err
            raise OpenAIBackendError(f"{url}: HTTP {err.code}: {detail}", status=err.code) from err
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as err:
            raise _Retryable(f"{type(err).__name__}: {err}") from err

    def _with_retries(self, fn: Any) -> tuple[Any, int]:
        """``fn()`` retried on :class:`_Retryable`; returns its value and the number of retries."""
        started = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            try:
                return fn(), attempt
            except _Retryable as err:
                last = err
                if attempt == self.max_retries:
                    break
                with self._rng_lock:
                    jitter = float(self._rng.uniform(0.5, 1.0))
                delay = backoff_delay_s(attempt, self.backoff_s, self.backoff_max_s, jitter)
                if err.retry_after_s is not None:
                    delay = min(self.backoff_max_s, max(delay, err.retry_after_s))
                if time.perf_counter() - started + delay > self.deadline_s:
                    break
                time.sleep(delay)
        raise OpenAIBackendError(f"{self.base_url}: giving up after {attempt + 1} attempt(s): {last}")

    def _get_json(self, path: str) -> Any:
        def call() -> Any:
            with self._open(self.base_url + path, None) as resp:
                return json.loads(resp.read())

        return self._with_retries(call)[0]

    # ---- one completion call --------------------------------------------------------------
    def _body(self, request: GenerationRequest, n: int, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": int(request.max_new_tokens),
            "temperature": float(request.temperature),
            "top_p": float(request.top_p),
            "stream": self.stream,
        }
        if self.chat:
            body["messages"] = [{"role": "user", "content": request.prompt}]
        else:
            body["prompt"] = request.prompt
        if n != 1:
            body["n"] = int(n)
        if request.stop:
            body["stop"] = list(request.stop)
        if seed is not None:
            body["seed"] = int(seed)
        if self.logprobs:
            body["logprobs"] = True if self.chat else 1
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        effort = request.reasoning_effort or self.reasoning_effort
        if effort is not None:
            body["reasoning_effort"] = effort
        body.update(self.extra_body)
        return body

    def _absorb(self, choices: dict[int, _Choice], raw: dict[str, Any]) -> bool:
        """Add one (streamed or complete) choice to ``choices``; True when it carried text."""
        choice = choices.setdefault(int(raw.get("index", 0)), _Choice())
        if self.chat:
            part = raw.get("delta") or raw.get("message") or {}
            text = part.get("content") or ""
            entries = (raw.get("logprobs") or {}).get("content") or []
            token_lps = [e.get("logprob") for e in entries]
        else:
            text = raw.get("text") or ""
            token_lps = (raw.get("logprobs") or {}).get("token_logprobs") or []
        choice.text += text
        if raw.get("logprobs"):
            choice.tokens = (choice.tokens or 0) + len(token_lps)
            choice.logprobs += [float(x) for x in token_lps if x is not None]
        if raw.get("finish_reason"):
            choice.finish_reason = raw["finish_reason"]
        return bool(text)

    def _call(self, request: GenerationRequest, n: int, seed: int | None) -> _CallResult:
        path = "/chat/completions" if self.chat else "/completions"
        body = self._body(request, n, seed)

        started = time.perf_counter()

        def once() -> tuple[dict[int, _Choice], dict[str, Any], float | None, float]:
            choices: dict[int, _Choice] = {}
            usage: dict[str, Any] = {}
            ttft = None
            with self._open(self.base_url + path, body) as resp:
                if not self.stream:
                    payload = json.loads(resp.read())
                    for raw in payload.get("choices") or []:
                        self._absorb(choices, raw)
                    usage = payload.get("usage") or {}
                else:
                    try:
                        for line in resp:
                            line = line.decode("utf-8", "replace").strip()
                            if not line.startswith("data:"):
                                continue
                            data = line[5:].strip()
                            if data == "[DONE]":
                                break
                            chunk = json.loads(data)
                            if "error" in chunk:
                                raise _Retryable(f"error in stream: {chunk['error']}")
                            for raw in chunk.get("choices") or []:
                                if self._absorb(choices, raw) and ttft is None:
                                    ttft = time.perf_counter() - started
                            usage = chunk.get("usage") or usage
                    except (ConnectionError, TimeoutError, http.client.HTTPException) as err:
                        raise _Retryable(f"stream broken: {type(err).__name__}: {err}") from err
                    except json.JSONDecodeError as err:
                        raise _Retryable(f"malformed stream chunk: {err}") from err
            return choices, usage, ttft, time.perf_counter()

        (choices, usage, ttft, t1), retries = self._with_retries(once)
        ordered = [choices[k] for k in sorted(choices)]
        return _CallResult(
            choices=ordered,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            start_s=started,
            end_s=t1,
            ttft_s=ttft,
            retries=retries,
            seed=seed,
            reasoning_tokens=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
        )

    # ---- contract -------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order; calls run concurrently (see the module docstring)."""
        for i, r in enumerate(requests):
            check_request(r, i)
        calls: list[list[_CallResult]] = [[] for _ in requests]
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            pending = list(range(len(requests)))
            if self.n_mode is None:  # probe the server with the first pool before the rest
                probe = next((i for i in pending if requests[i].n > 1), None)
                if probe is not None:
                    calls[probe].append(self._call(requests[probe], requests[probe].n, requests[probe].seed))
                    self._judge_native(calls[probe][0], requests[probe].n)
            futures = []
            for i in pending:
                r = requests[i]
                have = self._usable(calls[i], r.n)
                if len(have) >= r.n:
                    continue
                if r.n > 1 and self.n_mode == "native" and not calls[i]:
                    futures.append((i, pool.submit(self._call, r, r.n, r.seed)))
                    continue
                for k in range(len(have), r.n):
                    seed = None if r.seed is None else derive_subseed(r.seed, k)
                    futures.append((i, pool.submit(self._call, r, 1, seed)))
            for i, fut in futures:
                calls[i].append(fut.result())
        return [self._result(r, calls[i]) for i, r in enumerate(requests)]

    def _judge_native(self, call: _CallResult, n: int) -> None:
        if len(call.choices) < n:
            self.n_mode = "separate"
            self.n_fallback_reason = f"server returned {len(call.choices)} of n={n} choices"
        elif any(c.tokens is None for c in call.choices):
            self.n_mode = "separate"
            self.n_fallback_reason = "server gave no per-choice token counts (no logprobs) for n > 1"
        else:
            self.n_mode = "native"

    def _usable(self, calls: list[_CallResult], n: int) -> list[tuple[_Choice, _CallResult]]:
        """Choices whose token count is known: from logprobs, or the only choice of a call."""
        out = []
        for call in calls:
            for c in call.choices:
                if c.tokens is not None or (len(call.choices) == 1 and call.completion_tokens is not None):
                    out.append((c, call))
        return out[:n]

    def _result(self, request: GenerationRequest, calls: list[_CallResult]) -> GenerationResult:
        usable = self._usable(calls, request.n)
        counted_locally = 0
        if len(usable) < request.n and self._load_tokenizer() is not None:
            # the server gave no token counts for these choices: count their text with the tokenizer
            have = {id(c) for c, _ in usable}
            extra_choices = [(c, call) for call in calls for c in call.choices if id(c) not in have]
            usable += extra_choices[: request.n - len(usable)]
            counted_locally = sum(1 for c, _ in usable if id(c) not in have)
        if len(usable) < request.n:
            raise OpenAIBackendError(
                f"{self.base_url}: got {len(usable)} usable completions of {request.n} "
                "(choices without a token count; pass tokenizer= to count them locally)"
            )
        completions = []
        for choice, call in usable:
            text = choice.text
            for s in request.stop:  # servers that keep the stop string in the text
                if s and s in text:
                    text = text[: text.find(s)]
            if choice.tokens is not None:
                tokens = choice.tokens + _reasoning_share(call, choice)
            elif len(call.choices) == 1 and call.completion_tokens is not None:
                tokens = int(call.completion_tokens)  # reasoning tokens included
            else:
                tokens = self.count_tokens(text) + _reasoning_share(call, choice)
            if choice.logprobs:
                self.logprobs_returned = True
            elif self.logprobs and self.logprobs_returned is None:
                self.logprobs_returned = False
            completions.append(
                Completion(
                    text=text,
                    completion_tokens=int(tokens),
                    logprob=float(np.mean(choice.logprobs)) if choice.logprobs else None,
                    finish_reason="length" if choice.finish_reason == "length" else "stop",
                )
            )
        prompt_tokens = next((c.prompt_tokens for c in calls if c.prompt_tokens is not None), None)
        if prompt_tokens is None and self._load_tokenizer() is not None:
            prompt_tokens = self.count_tokens(request.prompt)
            counted_locally += 1
        if prompt_tokens is None:
            raise OpenAIBackendError(f"{self.base_url}: the server reported no usage.prompt_tokens")
        first = min(c.start_s for c in calls)
        ttfts = [c.start_s + c.ttft_s - first for c in calls if c.ttft_s is not None]
        extra: dict[str, Any] = {
            "http_calls": len(calls),
            "retries": sum(c.retries for c in calls),
            "seeds": [c.seed for c in calls],
            "usage_completion_tokens": sum(int(c.completion_tokens or 0) for c in calls),
        }
        if any(c.reasoning_tokens is not None for c in calls):
            extra["reasoning_tokens"] = sum(int(c.reasoning_tokens or 0) for c in calls)
        if counted_locally:
            extra["token_counts"] = (
                f"local tokenizer for {counted_locally} count(s) the server did not report"
            )
        if self.n_fallback_reason and request.n > 1:
            extra["n_fallback"] = self.n_fallback_reason
        if self.logprobs and all(c.logprob is None for c in completions):
            extra["logprobs"] = "not returned by the server"
        return GenerationResult(
            completions=completions,
            prompt_tokens=int(prompt_tokens),
            latency_s=max(c.end_s for c in calls) - first,
            ttft_s=min(ttfts) if ttfts else None,
            kv_bytes_peak=None,
            kv_source=KV_SOURCE,
            extra=extra,
        )

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text``: local tokenizer if available, else the server's ``/tokenize``."""
        tok = self._load_tokenizer()
        if tok is not None:
            return len(tok(text, add_special_tokens=False)["input_ids"])
        root = self.base_url.removesuffix("/v1")
        body = {"model": self.model, "prompt": text, "add_special_tokens": False}

        def call() -> Any:
            with self._open(root + "/tokenize", body) as resp:
                return json.loads(resp.read())

        try:
            payload = self._with_retries(call)[0]
        except OpenAIBackendError as err:
            raise RuntimeError(
                f"cannot count tokens for {self.model!r}: pass tokenizer=PATH (the server has no /tokenize: {err})"
            ) from err
        return int(payload.get("count", len(payload.get("tokens", []))))

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is not None:
            return self._tokenizer
        spec = self._tokenizer_spec
        if spec is None and (Path(self.model) / "config.json").is_file():
            spec = self.model
        if spec is None:
            return None
        if isinstance(spec, (str, Path)):
            from transformers import AutoTokenizer

            spec = AutoTokenizer.from_pretrained(spec)
        self._tokenizer = spec
        return spec

    def metadata(self) -> dict[str, Any]:
        """Server URL, served models (``GET /models``, best effort), detected behaviour; the
        model's config when the model (or tokenizer) is a local checkpoint folder."""
        meta: dict[str, Any] = {
            **super().metadata(),
            "base_url": self.base_url,
            "endpoint": "/chat/completions" if self.chat else "/completions",
            "n_mode": self.n_mode,
            "n_fallback": self.n_fallback_reason,
            "logprobs_returned": self.logprobs_returned,
            "stream": self.stream,
            "reasoning_effort": self.reasoning_effort,
        }
        try:
            meta["server_models"] = [m.get("id") for m in self._get_json("/models").get("data", [])]
        except (OpenAIBackendError, ValueError, AttributeError) as err:
            meta["server_models"] = f"unavailable: {err}"
        for candidate in (self.model, self._tokenizer_spec):
            if isinstance(candidate, (str, Path)) and (Path(candidate) / "config.json").is_file():
                meta["config"] = json.loads((Path(candidate) / "config.json").read_text())
                break
        return meta
