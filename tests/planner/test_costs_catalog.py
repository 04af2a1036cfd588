"""The catalog: built-in entries carry sources and dates, lookups accept aliases, unknown names
list the known ones (the closest ones for the long model table), user files override field by
field, and the cpu entry is calibrated."""

from __future__ import annotations

import json

import pytest

from planner.catalog import (
    CATALOG_ENV,
    CatalogError,
    calibrate_cpu,
    default_cache_path,
    get_api_price,
    get_hardware,
    get_model_entry,
    load_catalog,
)

GPUS = ("A100-80GB", "H100-SXM", "H200", "L4", "MI300X", "B200")
SMALL_PROBES = dict(matmul_n=64, bandwidth_bytes=2**20, repeats=1)


def test_every_gpu_entry_has_numbers_a_dated_price_and_sources():
    cat = load_catalog()
    for name in GPUS:
        hw = cat.gpu(name)
        assert hw.peak_flops > 1e13 and hw.memory_bandwidth_bytes_per_s > 1e11 and hw.memory_bytes >= 24e9
        assert hw.usd_per_gpu_hour > 0 and hw.price_date and hw.price_source and hw.spec_source
        assert not hw.measured and hw.step_overhead_s == 0.0


def test_datasheet_figures_and_ridge_points():
    h100, h200 = get_hardware("h100"), get_hardware("H200")
    assert (h100.peak_flops, h100.memory_bandwidth_bytes_per_s, h100.memory_bytes) == (
        989.4e12,
        3.35e12,
        80e9,
    )
    assert h200.memory_bandwidth_bytes_per_s == 4.8e12 and h200.memory_bytes == 141e9
    assert h100.flops_per_byte == pytest.approx(295.3, abs=0.1)
    assert get_hardware("a100").peak_flops == 312e12


def test_lookups_accept_aliases_and_case():
    assert get_hardware("H100_SXM5").name == "H100-SXM"
    assert get_api_price("deepseek-reasoner").name == "deepseek-r1"
    assert get_model_entry("Qwen3-30B-A3B").config["num_experts"] == 128


def test_unknown_names_list_the_known_ones():
    with pytest.raises(CatalogError, match=r"unknown GPU 'h999'; known: .*H100-SXM \(h100"):
        get_hardware("h999")
    with pytest.raises(CatalogError, match=r"unknown API 'gpt-9'; known: .*deepseek-r1"):
        get_api_price("gpt-9")
    # the model catalog is long: the error names the closest entries, not all of them
    with pytest.raises(CatalogError, match=r"unknown model 'mixtral-8x8b' \(closest: mixtral-8x7b") as err:
        get_model_entry("mixtral-8x8b")
    assert "qwen3" not in str(err.value)
    with pytest.raises(CatalogError, match=r"unknown model 'x' \(\d+ entries, none close\)"):
        get_model_entry("x")


def test_every_api_price_is_dated_with_a_source():
    for name, price in load_catalog().api.items():
        assert price.price_date and price.source, name
        assert price.output_usd_per_mtok >= price.input_usd_per_mtok > 0


def test_price_override_by_argument():
    hw = get_hardware("h100", usd_per_gpu_hour=1.25)
    assert hw.usd_per_gpu_hour == 1.25 and hw.price_source == "user override"
    with pytest.raises(CatalogError, match="price must be >= 0"):
        get_hardware("h100", usd_per_gpu_hour=-1)


def test_user_catalog_file_overrides_fields_and_adds_entries(tmp_path, monkeypatch):
    user = tmp_path / "mine.toml"
    user.write_text(
        """
[hardware.h100]
usd_per_gpu_hour = 1.99
price_source = "our contract"

[hardware.RTX-6000]
peak_flops = 182e12
memory_bandwidth_bytes_per_s = 960e9
memory_bytes = 48e9
usd_per_gpu_hour = 0.9

[api.my-r1]
input_usd_per_mtok = 0.3
output_usd_per_mtok = 1.2
"""
    )
    cat = load_catalog(user)
    assert cat.gpu("h100").usd_per_gpu_hour == 1.99 and cat.gpu("h100").peak_flops == 989.4e12
    assert cat.gpu("rtx-6000").memory_bytes == 48e9
    assert cat.api_price("my-r1").output_usd_per_mtok == 1.2
    assert load_catalog().gpu("h100").usd_per_gpu_hour == 2.95  # the built-in catalog is untouched
    monkeypatch.setenv(CATALOG_ENV, str(user))
    assert get_hardware("h100").usd_per_gpu_hour == 1.99


def test_bad_user_files_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[hardware.X]\npeak_flops = "fast"\nmemory_bandwidth_bytes_per_s = 1\nmemory_bytes = 1\nusd_per_gpu_hour = 1\n'
    )
    with pytest.raises(CatalogError, match=r"bad\.toml \[hardware\.X\]: field 'peak_flops' must be a number"):
        load_catalog(bad)
    missing = tmp_path / "missing.toml"
    missing.write_text("[hardware.Y]\npeak_flops = 1e12\n")
    with pytest.raises(CatalogError, match=r"missing field\(s\) \['memory_bandwidth_bytes_per_s'"):
        load_catalog(missing)
    typo = tmp_path / "typo.toml"
    typo.write_text("[gpus.Z]\npeak_flops = 1\n")
    with pytest.raises(CatalogError, match=r"unknown top-level table\(s\) \['gpus'\]"):
        load_catalog(typo)
    broken = tmp_path / "broken.toml"
    broken.write_text("[hardware\n")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(broken)
    with pytest.raises(CatalogError, match="no such catalog file"):
        load_catalog(tmp_path / "absent.toml")


def test_cpu_calibration_measures_caches_and_recomputes(tmp_path):
    cache = tmp_path / "cal.json"
    first = calibrate_cpu(cache_path=cache, **SMALL_PROBES)
    assert first["peak_flops"] > 1e6 and first["memory_bandwidth_bytes_per_s"] > 1e6
    assert first["step_overhead_s"] >= 0 and first["layer_overhead_s"] >= 0 and first["memory_bytes"] > 0
    stored = json.loads(cache.read_text())
    assert list(stored.values()) == [first]
    assert calibrate_cpu(cache_path=cache, **SMALL_PROBES) == first  # served from the cache
    cache.write_text("{not json")
    again = calibrate_cpu(cache_path=cache, **SMALL_PROBES)  # a corrupt cache is measured again
    assert json.loads(cache.read_text()) and again["dtype"] == "float32"


def test_cpu_hardware_entry_uses_the_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("TTC_CACHE_DIR", str(tmp_path))
    assert default_cache_path() == tmp_path / "cpu_calibration.json"
    cal = calibrate_cpu(**SMALL_PROBES)  # fills the cache get_hardware reads
    cpu = get_hardware("cpu")
    assert cpu.measured and cpu.peak_flops == cal["peak_flops"]
    assert cpu.memory_bandwidth_bytes_per_s == cal["memory_bandwidth_bytes_per_s"]
    assert cpu.layer_overhead_s == cal["layer_overhead_s"] and "measured" in cpu.spec_source
