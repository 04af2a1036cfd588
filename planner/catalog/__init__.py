"""The catalog: model architectures, accelerators and API prices, as data (TOML) with sources.

Three built-in files sit beside this module:

* ``models.toml`` — each model's Hugging Face ``config.json`` architecture fields, its source
  URL and the published (headline) parameter counts; :class:`planner.costs.ModelSpec` computes
  everything else from the fields.
* ``hardware.toml`` — dense BF16 peak FLOP/s, HBM bandwidth, memory and a dated default
  $/GPU-hour with its source, for A100-80GB, H100-SXM, H200, L4, MI300X and B200. The ``cpu``
  entry holds no numbers: :func:`calibrate_cpu` measures them on this machine.
* ``api_prices.toml`` — $/M input and output tokens of hosted reasoning models, dated.

A user catalog file (``extra_file=`` here, ``--catalog-file`` on the CLI, or the
``TTC_CATALOG_FILE`` environment variable) has the same layout (``[hardware.NAME]``,
``[api.NAME]``, ``[models.NAME]`` tables); its entries replace built-in entries field by field
(an entry named like a built-in one, or like one of its aliases, updates it) or add new ones.

Examples
--------
>>> get_hardware("h100").name
'H100-SXM'
>>> get_api_price("deepseek-r1").output_usd_per_mtok
2.19
>>> get_model_entry("llama-3.1-70b").config["num_hidden_layers"]
80
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from ._cpu import calibrate_cpu, default_cache_path

__all__ = [
    "CatalogError",
    "HardwareSpec",
    "ApiPrice",
    "ModelEntry",
    "Catalog",
    "load_catalog",
    "get_hardware",
    "get_api_price",
    "get_model_entry",
    "calibrate_cpu",
    "default_cache_path",
    "CATALOG_ENV",
]

CATALOG_ENV = "TTC_CATALOG_FILE"
_HERE = Path(__file__).resolve().parent
_FILES = {"models": "models.toml", "hardware": "hardware.toml", "api": "api_prices.toml"}


class CatalogError(LookupError):
    """An unknown name or a malformed catalog entry; the message lists the known names or
    names the file and field."""

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class HardwareSpec:
    """One accelerator (per GPU) as the roofline model sees it.

    Attributes
    ----------
    peak_flops : dense BF16 peak, FLOP/s (for the calibrated cpu: measured matmul FLOP/s in the
        calibration dtype).
    memory_bandwidth_bytes_per_s : HBM (or DRAM) bandwidth, bytes/s.
    memory_bytes : memory per GPU, bytes.
    usd_per_gpu_hour : default rental price, US$ per GPU-hour (dated: ``price_date``).
    step_overhead_s, layer_overhead_s : seconds per forward step outside the roofline, fixed and
        per decoder layer (0 for datasheet entries; measured for the cpu).
    measured : True when the numbers were measured on this machine rather than taken from a datasheet.
    """

    name: str
    peak_flops: float
    memory_bandwidth_bytes_per_s: float
    memory_bytes: float
    usd_per_gpu_hour: float
    price_date: str = ""
    price_source: str = ""
    spec_source: str = ""
    step_overhead_s: float = 0.0
    layer_overhead_s: float = 0.0
    measured: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def flops_per_byte(self) -> float:
        """Ridge point of the roofline, FLOP per byte = ``peak_flops / memory_bandwidth_bytes_per_s``.

        A kernel whose arithmetic intensity is below it is memory-bound. It is also the exchange
        rate of "effective FLOPs" (Kinetics, Sadhukhan et al. 2025): bytes moved x this ratio.
        """
        return self.peak_flops / self.memory_bandwidth_bytes_per_s

    def with_price(self, usd_per_gpu_hour: float, source: str = "user override") -> HardwareSpec:
        """A copy with another $/GPU-hour (``source`` says where it came from)."""
        if not usd_per_gpu_hour >= 0:
            raise CatalogError(f"price must be >= 0 US$ per GPU-hour, got {usd_per_gpu_hour!r}")
        return replace(self, usd_per_gpu_hour=float(usd_per_gpu_hour), price_source=source, price_date="")


@dataclass(frozen=True)
class ApiPrice:
    """Price of a hosted model, US$ per million tokens. Reasoning tokens bill as output."""

    name: str
    provider: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    cached_input_usd_per_mtok: float | None = None
    price_date: str = ""
    source: str = ""
    model: str | None = None  # catalog model the API serves (open models), for FLOP estimates
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelEntry:
    """A catalog model: its ``config.json`` architecture fields plus published counts."""

    name: str
    config: dict[str, Any]
    hf_id: str = ""
    source: str = ""
    headline_params: float | None = None
    headline_active_params: float | None = None
    headline_source: str = ""
    notes: str = ""
    aliases: tuple[str, ...] = ()
    numbers: dict[str, Any] = field(default_factory=dict)  # given numbers instead of a config


@dataclass(frozen=True)
class Catalog:
    """The merged catalog (built-in files plus an optional user file)."""

    models: dict[str, ModelEntry] = field(default_factory=dict)
    hardware: dict[str, dict[str, Any]] = field(default_factory=dict)
    api: dict[str, ApiPrice] = field(default_factory=dict)

    def model(self, name: str) -> ModelEntry:
        """The model entry called ``name`` (or an alias), else :class:`CatalogError` listing names."""
        return self.models[_resolve(name, self.models, "model")]

    def gpu(self, name: str, *, recalibrate: bool = False) -> HardwareSpec:
        """The accelerator called ``name``; ``cpu`` is calibrated (see :func:`calibrate_cpu`)."""
        key = _resolve(name, self.hardware, "GPU")
        raw = dict(self.hardware[key])
        if raw.pop("calibrated", False):
            return _calibrated_cpu(key, raw, recalibrate=recalibrate)
        return _hardware_from_raw(key, raw)

    def api_price(self, name: str) -> ApiPrice:
        """The API price entry called ``name`` (or an alias), else :class:`CatalogError`."""
        return self.api[_resolve(name, self.api, "API")]

    def names(self, kind: str) -> list[str]:
        """Sorted entry names of ``kind`` ("models", "hardware" or "api")."""
        return sorted(getattr(self, kind))


def _norm(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def _aliases(entry: Any) -> tuple[str, ...]:
    if isinstance(entry, dict):
        return tuple(entry.get("aliases", ()))
    return tuple(getattr(entry, "aliases", ()))


_LIST_AT_MOST = 12  # longer tables name the closest entries instead of all of them


def _resolve(name: str, table: dict[str, Any], what: str) -> str:
    want = _norm(name)
    for key, entry in table.items():
        if want == _norm(key) or want in {_norm(a) for a in _aliases(entry)}:
            return key
    if len(table) > _LIST_AT_MOST:
        close = difflib.get_close_matches(want, [_norm(k) for k in table], n=4, cutoff=0.5)
        keys = [k for c in close for k in table if _norm(k) == c]
        hint = f"closest: {', '.join(keys)}" if keys else f"{len(table)} entries, none close"
        raise CatalogError(f"unknown {what} {name!r} ({hint})")
    listing = ", ".join(
        key + (f" ({', '.join(_aliases(table[key]))})" if _aliases(table[key]) else "")
        for key in sorted(table)
    )
    raise CatalogError(f"unknown {what} {name!r}; known: {listing}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise CatalogError(f"{path}: no such catalog file") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None


_HW_FLOATS = ("peak_flops", "memory_bandwidth_bytes_per_s", "memory_bytes", "usd_per_gpu_hour")


def _check_number(where: str, key: str, value: Any, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CatalogError(f"{where}: field {key!r} must be a number, got {value!r}")
    if (positive and not value > 0) or value < 0:
        raise CatalogError(f"{where}: field {key!r} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _hardware_from_raw(name: str, raw: dict[str, Any], where: str | None = None) -> HardwareSpec:
    where = where or f"hardware catalog [hardware.{name}]"
    missing = [k for k in _HW_FLOATS if k not in raw]
    if missing:
        raise CatalogError(f"{where}: missing field(s) {missing}")
    nums = {k: _check_number(where, k, raw[k], positive=k != "usd_per_gpu_hour") for k in _HW_FLOATS}
    return HardwareSpec(
        name=name,
        **nums,
        price_date=str(raw.get("price_date", "")),
        price_source=str(raw.get("price_source", "")),
        spec_source=str(raw.get("spec_source", "")),
        step_overhead_s=_check_number(
            where, "step_overhead_s", raw.get("step_overhead_s", 0.0), positive=False
        ),
        layer_overhead_s=_check_number(
            where, "layer_overhead_s", raw.get("layer_overhead_s", 0.0), positive=False
        ),
        measured=bool(raw.get("measured", False)),
        aliases=tuple(raw.get("aliases", ())),
    )


def _calibrated_cpu(name: str, raw: dict[str, Any], *, recalibrate: bool) -> HardwareSpec:
    cal = calibrate_cpu(recompute=recalibrate)
    return HardwareSpec(
        name=name,
        peak_flops=cal["peak_flops"],
        memory_bandwidth_bytes_per_s=cal["memory_bandwidth_bytes_per_s"],
        memory_bytes=cal["memory_bytes"],
        usd_per_gpu_hour=float(raw.get("usd_per_gpu_hour", 0.0)),
        price_date=str(raw.get("price_date", "")),
        price_source=str(raw.get("price_source", "")),
        spec_source=f"measured {cal['measured_at']} ({cal['dtype']}, {cal['threads']} threads): {raw.get('spec_source', '')}",
        step_overhead_s=cal["step_overhead_s"],
        layer_overhead_s=cal["layer_overhead_s"],
        measured=True,
        aliases=tuple(raw.get("aliases", ())),
    )


def _api_from_raw(name: str, raw: dict[str, Any], where: str) -> ApiPrice:
    for key in ("input_usd_per_mtok", "output_usd_per_mtok"):
        if key not in raw:
            raise CatalogError(f"{where}: missing field {key!r}")
    cached = raw.get("cached_input_usd_per_mtok")
    return ApiPrice(
        name=name,
        provider=str(raw.get("provider", "")),
        input_usd_per_mtok=_check_number(
            where, "input_usd_per_mtok", raw["input_usd_per_mtok"], positive=False
        ),
        output_usd_per_mtok=_check_number(
            where, "output_usd_per_mtok", raw["output_usd_per_mtok"], positive=False
        ),
        cached_input_usd_per_mtok=None
        if cached is None
        else _check_number(where, "cached_input_usd_per_mtok", cached, positive=False),
        price_date=str(raw.get("price_date", "")),
        source=str(raw.get("source", "")),
        model=raw.get("model"),
        aliases=tuple(raw.get("aliases", ())),
    )


_NUMBER_KEYS = (
    "params",
    "layers",
    "kv_heads",
    "head_dim",
    "active_params",
    "heads",
    "hidden",
    "experts",
    "experts_per_token",
    "top_k",
    "context",
    "dtype",
)


def _model_from_raw(name: str, raw: dict[str, Any], where: str) -> ModelEntry:
    cfg = raw.get("config")
    numbers = {k: raw[k] for k in _NUMBER_KEYS if k in raw}
    if cfg is None and numbers:
        missing = [k for k in ("params", "layers", "kv_heads", "head_dim") if k not in numbers]
        if missing:
            raise CatalogError(
                f"{where}: missing field(s) {', '.join(missing)} "
                "(a model without a [config] table needs params, layers, kv_heads and head_dim)"
            )
        cfg = {}
    elif not isinstance(cfg, dict) or "model_type" not in cfg:
        raise CatalogError(
            f"{where}: needs a [config] table with the config.json fields (at least model_type), "
            "or the numbers params, layers, kv_heads and head_dim"
        )
    else:
        numbers = {}
    return ModelEntry(
        name=name,
        numbers=numbers,
        config=dict(cfg),
        hf_id=str(raw.get("hf_id", "")),
        source=str(raw.get("source", "")),
        headline_params=raw.get("headline_params"),
        headline_active_params=raw.get("headline_active_params"),
        headline_source=str(raw.get("headline_source", "")),
        notes=str(raw.get("notes", "")),
        aliases=tuple(raw.get("aliases", ())),
    )


def _merge(base: dict[str, dict[str, Any]], extra: dict[str, Any], kind: str, path: Path) -> None:
    if not isinstance(extra, dict):
        raise CatalogError(f"{path}: [{kind}] must be a table of named entries")
    for name, entry in extra.items():
        if not isinstance(entry, dict):
            raise CatalogError(f"{path}: [{kind}.{name}] must be a table")
        try:
            key = _resolve(name, base, kind)
        except CatalogError:
            base[name] = copy.deepcopy(entry)
            continue
        merged = base[key]
        for k, v in entry.items():
            if k == "config" and isinstance(v, dict):
                merged.setdefault("config", {}).update(v)
            else:
                merged[k] = v
        if "peak_flops" in entry and merged.get("calibrated"):
            merged["calibrated"] = False  # the user gave numbers for the cpu: use them


@functools.lru_cache(maxsize=8)
def _load(extra: str | None, _mtime_ns: int = 0) -> Catalog:  # mtime: an edited user file is reread
    raw = {kind: dict(_read_toml(_HERE / fname).get(kind, {})) for kind, fname in _FILES.items()}
    raw = copy.deepcopy(raw)
    if extra:
        path = Path(extra)
        user = _read_toml(path)
        unknown = sorted(set(user) - set(_FILES))
        if unknown:
            raise CatalogError(f"{path}: unknown top-level table(s) {unknown}; expected {sorted(_FILES)}")
        for kind in _FILES:
            if kind in user:
                _merge(raw[kind], user[kind], kind, path)
    src = f"user catalog {extra}" if extra else "built-in catalog"
    models = {n: _model_from_raw(n, e, f"{src} [models.{n}]") for n, e in raw["models"].items()}
    api = {n: _api_from_raw(n, e, f"{src} [api.{n}]") for n, e in raw["api"].items()}
    for n, e in raw["hardware"].items():  # validate eagerly so a bad file fails on load
        if not e.get("calibrated"):
            _hardware_from_raw(n, dict(e), f"{src} [hardware.{n}]")
    return Catalog(models=models, hardware=raw["hardware"], api=api)


def load_catalog(extra_file: str | os.PathLike[str] | None = None) -> Catalog:
    """Load the built-in catalog merged with ``extra_file`` (or ``$TTC_CATALOG_FILE`` when unset).

    Raises :class:`CatalogError` naming the file and field on bad input.
    """
    extra = extra_file if extra_file is not None else os.environ.get(CATALOG_ENV) or None
    if not extra:
        return _load(None)
    path = Path(extra).resolve()
    return _load(str(path), path.stat().st_mtime_ns if path.exists() else 0)


def get_hardware(
    name: str,
    *,
    extra_file: str | os.PathLike[str] | None = None,
    usd_per_gpu_hour: float | None = None,
    recalibrate: bool = False,
) -> HardwareSpec:
    """Look up an accelerator by name or alias (``h100``, ``mi300x``, ``cpu``...).

    ``usd_per_gpu_hour`` overrides the catalog price. ``cpu`` is measured by
    :func:`calibrate_cpu` (cached; ``recalibrate=True`` measures again).

    Examples
    --------
    >>> hw = get_hardware("h100", usd_per_gpu_hour=2.0)
    >>> round(hw.flops_per_byte)
    295
    """
    hw = load_catalog(extra_file).gpu(name, recalibrate=recalibrate)
    return hw if usd_per_gpu_hour is None else hw.with_price(usd_per_gpu_hour)


def get_api_price(name: str, *, extra_file: str | os.PathLike[str] | None = None) -> ApiPrice:
    """Look up a hosted model's token prices by name or alias (``deepseek-r1``, ``o1``...)."""
    return load_catalog(extra_file).api_price(name)


def get_model_entry(name: str, *, extra_file: str | os.PathLike[str] | None = None) -> ModelEntry:
    """Look up a catalog model (config fields and headline counts) by name or alias."""
    return load_catalog(extra_file).model(name)
