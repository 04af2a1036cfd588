"""``ttc costs``: predicted cost of one strategy execution (FLOPs, KV bytes, latency, $)."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ..report.format import strict_json
from ._common import console, fail, finite_option, one_value
from ._options import Api, CatalogFile, Concurrency, Gpu, Json, Model, ModelSpec, Qps, Strategy, Tp
from ._options_cmd import (
    Dtype,
    GenTokens,
    InputUsdPerMtok,
    LatencySloS,
    MaxGpus,
    OutputUsdPerMtok,
    PrefixSharing,
    PriceUsdPerHour,
    PromptTokens,
    TpEfficiency,
)

_EXAMPLE = (
    "ttc costs --model llama-3.1-70b --gpu h100 --strategy pool:n=16 --prompt-tokens 512 --gen-tokens 2048"
)


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _usd(value: float) -> str:
    return f"${value:.4g}"


def _parse_lengths(text: str):
    """``--gen-tokens``: one number (every chain alike), per-sample lengths ``100,10000``,
    ``@FILE`` (one length per line), or moments ``mean=5050,mean_sq=5.0005e7,max=10000``."""
    from planner.costs import TokenLengths

    raw = text.strip()
    try:
        if raw.startswith("@"):
            path = Path(raw[1:])
            try:
                lines = [
                    ln.strip()
                    for ln in path.read_text().splitlines()
                    if ln.strip() and not ln.startswith("#")
                ]
            except OSError as exc:
                fail(f"--gen-tokens {raw}: cannot read {path}: {exc.strerror or exc}")
            values = []
            for k, ln in enumerate(lines, 1):
                try:
                    values.append(float(ln))
                except ValueError:
                    fail(f"{path} line {k}: expected a token count, got {ln!r}")
            return _sample_lengths(values, raw)
        if "=" in raw:
            fields = dict(part.split("=", 1) for part in raw.split(",") if "=" in part)
            missing = [k for k in ("mean", "mean_sq", "max") if k not in fields]
            if missing:
                fail(
                    f"--gen-tokens {raw!r}: moments need {', '.join(missing)} (e.g. mean=5050,mean_sq=5.0005e7,max=10000)"
                )
            count = fields.get("count")
            return TokenLengths.from_moments(
                float(fields["mean"]),
                float(fields["mean_sq"]),
                float(fields["max"]),
                count=int(float(count)) if count else None,
            )
        values = [float(x) for x in raw.split(",") if x.strip()]
    except ValueError as exc:
        fail(
            f"--gen-tokens {raw!r}: {exc}"
            if "could not convert" not in str(exc)
            else f"--gen-tokens {raw!r}: expected a number, per-sample lengths 100,10000, @FILE or mean=..,mean_sq=..,max=.."
        )
    if not values:
        fail("--gen-tokens is empty; give a number of tokens per chain, e.g. --gen-tokens 2048")
    if len(values) == 1:
        if not values[0] >= 1 or not float(values[0]).is_integer():
            fail(f"--gen-tokens must be a whole number of tokens >= 1, got {raw!r}")
        return int(values[0])
    return _sample_lengths(values, raw)


def _sample_lengths(values: list[float], raw: str):
    """Per-sample lengths, refused unless finite, >= 0 and not all 0 (a pool that generates
    nothing has no throughput to price)."""
    from planner.costs import TokenLengths

    if not all(math.isfinite(v) and v >= 0 for v in values) or max(values) < 1:
        fail(f"--gen-tokens {raw!r}: per-sample lengths must be finite, >= 0 and not all 0")
    return TokenLengths.from_samples(values)


def costs(
    model: Model = None,
    model_spec: ModelSpec = None,
    gpu: Gpu = None,
    strategy: Strategy = ["greedy"],  # noqa: B006 - typer copies the default
    prompt_tokens: PromptTokens = 0,
    gen_tokens: GenTokens = ...,
    concurrency: Concurrency = None,
    tp: Tp = None,
    max_gpus: MaxGpus = None,
    tp_efficiency: TpEfficiency = 1.0,
    prefix_sharing: PrefixSharing = True,
    price_usd_per_hour: PriceUsdPerHour = None,
    api: Api = None,
    input_usd_per_mtok: InputUsdPerMtok = None,
    output_usd_per_mtok: OutputUsdPerMtok = None,
    qps: Qps = None,
    latency_slo_s: LatencySloS = None,
    dtype: Dtype = None,
    catalog_file: CatalogFile = None,
    as_json: Json = False,
) -> None:
    """Predict what one execution of a strategy costs: FLOPs, KV-cache bytes, memory traffic,
    effective FLOPs, roofline latency and dollars (self-hosted GPU time, or API tokens with `--api`).

    Every number is PREDICTED by the analytic cost model (planner.costs) from the token counts
    and the model's architecture; nothing is measured. Closed forms: any --gen-tokens answers
    at once. Prices come from the catalog (dated, with sources; `--price-usd-per-hour` or
    `--catalog-file` override them).

    Example:

        ttc costs --model llama-3.1-70b --gpu h100 --strategy pool:n=16 --prompt-tokens 512 --gen-tokens 2048

        ttc costs --model qwen3-8b --gpu h100 --strategy pool:n=2 --gen-tokens 100,10000

        ttc costs --model-spec mine=params:8.0e9,layers:32,kv_heads:8,head_dim:128 --gpu h100 --gen-tokens 4096

        ttc costs --api deepseek-r1 --strategy pool:n=8 --prompt-tokens 300 --gen-tokens 4000 --json
    """
    _check_numbers(
        qps, latency_slo_s, tp_efficiency, price_usd_per_hour, input_usd_per_mtok, output_usd_per_mtok
    )
    lengths = _parse_lengths(gen_tokens)
    given, hardware, price = _pricing(model_spec, dtype, catalog_file, api, gpu)
    if input_usd_per_mtok is not None or output_usd_per_mtok is not None:
        price = _override_api(price, input_usd_per_mtok, output_usd_per_mtok)
    if hardware is not None and price_usd_per_hour is not None:
        hardware = hardware.with_price(price_usd_per_hour)
    name = _model_name(one_value("--model", model), given, price)
    spec = _spec(name, given, catalog_file, dtype)
    work, est, plan = _estimate(
        spec,
        one_value("--strategy", strategy),
        prompt_tokens,
        lengths,
        hardware,
        price,
        prefix_sharing=prefix_sharing,
        concurrency=concurrency,
        tp=tp,
        max_gpus=max_gpus,
        tp_efficiency=tp_efficiency,
        qps=qps,
        latency_slo_s=latency_slo_s,
    )
    if as_json:
        typer.echo(strict_json(_json(spec, work, est, hardware, plan), indent=2, sort_keys=True))
        return
    _print_table(spec, work, est, hardware, plan)


def _check_numbers(qps, latency_slo_s, tp_efficiency, price_usd_per_hour, input_usd, output_usd) -> None:
    """The numeric flags, refused in one line naming the flag before any work."""
    if latency_slo_s is not None and not latency_slo_s > 0:
        fail(f"--latency-slo-s must be > 0 seconds, got {latency_slo_s:g}")
    for flag, value in (
        ("--qps", qps),
        ("--latency-slo-s", latency_slo_s),
        ("--tp-efficiency", tp_efficiency),
    ):
        finite_option(flag, value, positive=True)
    for flag, value in (
        ("--price-usd-per-hour", price_usd_per_hour),
        ("--input-usd-per-mtok", input_usd),
        ("--output-usd-per-mtok", output_usd),
    ):
        finite_option(flag, value)
    if latency_slo_s is not None and qps is None:
        fail("--latency-slo-s is the latency target of --qps; give --qps too")


def _pricing(model_spec, dtype, catalog_file, api, gpu):
    """The ``--model-spec`` models by name, the GPU and the API price of the catalog."""
    from planner.catalog import CatalogError, load_catalog
    from planner.costs import SpecError, parse_model_spec

    try:
        given = {}
        for text in model_spec or []:
            spec_given = parse_model_spec(text, dtype=dtype)
            given[spec_given.name] = spec_given
        catalog = load_catalog(catalog_file)
        price = catalog.api_price(api) if api else None
        hardware = catalog.gpu(gpu) if gpu else None
    except (CatalogError, SpecError) as exc:
        fail(str(exc))
    return given, hardware, price


def _model_name(model: str | None, given: dict, price) -> str:
    """The model to price: ``--model``, else the one ``--model-spec``, else the API's open model."""
    if model is None and len(given) == 1:
        model = next(iter(given))
    if model is None and price is not None and price.model:
        model = price.model
    if model is None:
        fail(
            "--model is required (or one --model-spec, or --api naming an API whose open model is in the catalog); e.g.\n  "
            + _EXAMPLE
        )
    return model


def _spec(name: str, given: dict, catalog_file, dtype):
    from planner.catalog import CatalogError
    from planner.costs import ModelSpec, SpecError

    try:
        return given[name] if name in given else ModelSpec.resolve(name, extra_file=catalog_file, dtype=dtype)
    except (SpecError, CatalogError) as exc:
        fail(str(exc))


def _estimate(
    spec, strategy, prompt_tokens, lengths, hardware, price, *, prefix_sharing, qps, latency_slo_s, **serving
):
    """The workload, its cost estimate and (``--qps``) the capacity plan; ``serving`` holds
    concurrency, tp, max_gpus and tp_efficiency (None: the cost model's defaults)."""
    from planner.catalog import CatalogError
    from planner.costs import (
        DEFAULT_CONCURRENCY,
        DEFAULT_MAX_GPUS,
        SpecError,
        Workload,
        estimate_cost,
        plan_capacity,
    )

    serving["concurrency"] = serving["concurrency"] or DEFAULT_CONCURRENCY
    serving["max_gpus"] = serving["max_gpus"] or DEFAULT_MAX_GPUS
    try:
        work = Workload.from_strategy(strategy, prompt_tokens, lengths, prefix_sharing=prefix_sharing)
        est = estimate_cost(spec, work, hardware, api=price, **serving)
        if qps is None:
            return work, est, None
        if hardware is None:
            fail("--qps needs --gpu")
        serving.pop("concurrency")
        plan = plan_capacity(spec, work, hardware, qps, latency_slo_s=latency_slo_s, **serving)
    except (SpecError, CatalogError, ValueError) as exc:
        fail(str(exc))
    return work, est, plan


def _json(spec, work, est, hardware, plan) -> dict:
    """What ``--json`` prints: the estimate, the model, the workload, the GPU and the capacity plan."""
    out = {"estimate": est.to_dict(), "model_spec": spec.summary(), "workload": _workload_dict(work)}
    if hardware is not None:
        out["hardware"] = {
            "name": hardware.name,
            "peak_flops": hardware.peak_flops,
            "memory_bandwidth_bytes_per_s": hardware.memory_bandwidth_bytes_per_s,
            "memory_bytes": hardware.memory_bytes,
            "usd_per_gpu_hour": hardware.usd_per_gpu_hour,
            "price_date": hardware.price_date,
            "price_source": hardware.price_source,
            "measured": hardware.measured,
        }
    if plan is not None:
        out["capacity"] = plan.to_dict()
    return out


def _override_api(price, input_usd: float | None, output_usd: float | None):
    """The API price with user-given token prices (a "custom" API when none was named)."""
    from dataclasses import replace

    from planner.catalog import ApiPrice

    if price is None:
        if input_usd is None or output_usd is None:
            fail(
                "a custom API price needs both --input-usd-per-mtok and --output-usd-per-mtok (or name one with --api)"
            )
        return ApiPrice("custom", "user", input_usd, output_usd, source="user override")
    changes = {"source": f"user override of {price.name} ({price.source})", "price_date": ""}
    if input_usd is not None:
        changes.update(input_usd_per_mtok=input_usd, cached_input_usd_per_mtok=None)
    if output_usd is not None:
        changes["output_usd_per_mtok"] = output_usd
    return replace(price, **changes)


def _workload_dict(work) -> dict[str, object]:
    """The workload as JSON: its calls at the mean chain length, and the length distribution."""
    return {
        "strategy": work.describe(),
        "prompt_tokens": work.prompt_tokens,
        "gen_tokens": work.gen_tokens,
        "gen_lengths": work.lengths.summary() if work.lengths is not None else None,
        "prefix_sharing": work.prefix_sharing,
        "phases": [vars(ph) for ph in work.phases()],
    }


def _print_table(spec, work, est, hardware, plan) -> None:
    from rich.table import Table

    title = f"{spec.name} ({spec.architecture}, {spec.params_active / 1e9:.3g}B active of {spec.params_total / 1e9:.3g}B) · {work.describe()}"
    if spec.sparse is None:
        attended = "every cached token at each decode step"
    else:
        s = spec.sparse
        attended = (
            f"at most {spec.attended_cap:,} tokens per decode step (top {s.attn_blocks} blocks of "
            f"{s.block_size} + the recent block); the KV held stays whole"
        )
    table = Table(
        title=title, caption="predicted by the analytic cost model (planner.costs); nothing here is measured"
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("notes")
    _model_rows(table, spec, work, est, attended)
    if hardware is not None:
        table.add_section()
        _hardware_rows(table, est, hardware)
    if est.api is not None:
        table.add_section()
        _api_rows(table, est.api)
    for note in est.notes:
        table.add_row("note", "", note)
    if plan is not None:
        table.add_section()
        _capacity_rows(table, plan)
    console.print(table)


def _model_rows(table, spec, work, est, attended: str) -> None:
    """Tokens, FLOPs, KV and memory traffic: what the model does, whatever the hardware."""
    sharing = "shared prefix" if work.prefix_sharing else "no prefix sharing"
    g_text = work.lengths.describe() if work.lengths is not None else f"{work.gen_tokens:,}"
    table.add_row("tokens generated", f"{est.generated_tokens:,.0f}", f"P={work.prompt_tokens:,}, G={g_text}")
    table.add_row("tokens prefilled", f"{est.prefilled_tokens:,.0f}", sharing)
    table.add_row("prefill FLOPs", _si(est.prefill_flops, "FLOP"), "")
    table.add_row("decode FLOPs", _si(est.decode_flops, "FLOP"), "2 x active params per token + attention")
    table.add_row("  of which attention", _si(est.decode_attention_flops, "FLOP"), attended)
    table.add_row("total FLOPs", _si(est.flops, "FLOP"), "")
    table.add_row(
        "KV cache at peak", _si(est.kv_bytes_peak, "B"), f"{spec.kv_bytes_per_token:,.0f} B per token"
    )
    table.add_row("weights", _si(est.weight_bytes, "B"), f"{spec.weight_bytes_per_param:g} B per parameter")
    table.add_row(
        "memory traffic",
        _si(est.memory_bytes, "B"),
        f"weights {_si(est.memory_bytes_weights, 'B')} (read once per step, shared by {est.concurrency} sequences)"
        f" + KV {_si(est.memory_bytes_kv, 'B')} + prefill",
    )
    table.add_row(
        "decode steps", f"{est.decode_steps:,.0f}", "of the longest chain(s): what latency waits for"
    )


def _hardware_rows(table, est, hardware) -> None:
    """Effective FLOPs, latency, memory and dollars on the GPU."""
    hw_note = "measured on this machine" if hardware.measured else "datasheet"
    how = "smallest that fits" if est.tp_source == "auto" else "given"
    table.add_row("hardware", f"{est.tp} x {hardware.name}", f"tensor parallel ({how}); {hw_note}")
    table.add_row(
        "concurrency",
        f"{est.concurrency} sequences",
        f"{est.executions_in_flight:.3g} executions in flight per replica (an assumption: --concurrency)",
    )
    table.add_row(
        "effective FLOPs",
        _si(est.effective_flops, "FLOP"),
        f"FLOPs + bytes x {hardware.flops_per_byte:.0f} FLOP/B (Kinetics)",
    )
    table.add_row("prefill latency", f"{est.prefill_s:.4g} s", "")
    table.add_row(
        "decode latency", f"{est.decode_s:.4g} s", f"{est.decode_steps:,.0f} steps of the full batch"
    )
    table.add_row(
        "latency", f"{est.latency_s:.4g} s", f"{est.compute_bound_fraction:.0%} of the time compute-bound"
    )
    table.add_row(
        "GPU-seconds", f"{est.gpu_seconds:.4g}", "tp x this execution's share of the replica's time"
    )
    fits = "fits" if est.fits_in_memory else "DOES NOT FIT"
    table.add_row(
        "memory needed",
        _si(est.memory_needed_bytes, "B"),
        f"{fits} in {_si(est.memory_available_bytes, 'B')} usable",
    )
    table.add_row(
        "cost (self-hosted)",
        _usd(est.cost_usd),
        f"at ${hardware.usd_per_gpu_hour:g}/GPU-h ({hardware.price_date or 'undated'})",
    )


def _api_rows(table, a) -> None:
    """Tokens and dollars of the hosted API."""
    table.add_row(
        f"API input tokens ({a.api})",
        f"{a.input_tokens:,.0f}",
        f"{a.cached_input_tokens:,.0f} at the cached price",
    )
    table.add_row("API output tokens", f"{a.output_tokens:,.0f}", "reasoning tokens bill as output")
    table.add_row("cost (API)", _usd(a.usd), f"prices of {a.price_date}")


def _capacity_rows(table, plan) -> None:
    """GPUs, replicas and dollars per 1k queries of ``--qps``."""
    table.add_row(
        "capacity", f"{plan.gpus} GPUs", f"{plan.replicas} replica(s) x tp {plan.tp} for {plan.qps:g} QPS"
    )
    table.add_row("binding constraint", plan.binding, plan.reason)
    table.add_row(
        "per replica",
        f"{plan.throughput_qps_per_replica:.3g} QPS",
        f"{plan.concurrency} sequences, latency {plan.latency_s:.3g} s",
    )
    table.add_row("$ per 1k queries", _usd(plan.usd_per_1k_queries), f"{plan.utilization:.0%} utilization")


def register(app: typer.Typer) -> None:
    app.command("costs", epilog="Example: " + _EXAMPLE)(costs)
