"""ModelSpec: parameter counts equal numel() of instantiated models; catalog counts match the
published headline numbers; KV bytes per token match known figures; errors name the field."""

from __future__ import annotations

import json
import warnings

import pytest

from planner.catalog import load_catalog
from planner.costs import ModelSpec, SpecError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from costs_helpers import BASE, TINY, tiny_config  # noqa: E402


def tiny_model(key: str):
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(tiny_config(key))


def active_by_brute_force(model, spec: ModelSpec) -> int:
    """numel() of every parameter, with each stacked expert tensor counted for top-k experts only."""
    total = 0
    for name, p in model.named_parameters():
        if ".experts." in name:
            total += p.numel() // p.shape[0] * spec.experts_per_token
        else:
            total += p.numel()
    return total


@pytest.mark.parametrize("key", list(TINY))
def test_params_total_equals_numel_of_instantiated_model(key):
    model = tiny_model(key)
    numel = sum(p.numel() for p in model.parameters())
    from_dict = ModelSpec.from_hf_config(model.config.to_dict())
    from_object = ModelSpec.from_hf_config(model.config)
    from_raw_fields = ModelSpec.from_hf_config({"model_type": TINY[key][0], **BASE, **TINY[key][1]})
    assert from_dict.params_total == from_object.params_total == from_raw_fields.params_total == numel


@pytest.mark.parametrize(
    "key", [k for k in TINY if "moe" in k or k in ("mixtral", "deepseek-v3", "deepseek-v2")]
)
def test_params_active_counts_top_k_experts_per_layer(key):
    model = tiny_model(key)
    spec = ModelSpec.from_hf_config(model.config)
    assert spec.is_moe and spec.params_active < spec.params_total
    assert spec.params_active == active_by_brute_force(model, spec)


def test_dense_first_layers_of_deepseek_are_dense_and_count_fully():
    spec = ModelSpec.from_hf_config(tiny_config("deepseek-v3"))
    assert [la.num_experts for la in spec.layers] == [0, 4]
    assert spec.layers[0].params_active == spec.layers[0].params_total


def test_config_json_folder_and_file_give_the_same_spec(tmp_path):
    cfg = tiny_config("qwen2").to_dict()
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    a = ModelSpec.from_hf_config(tmp_path)
    b = ModelSpec.from_hf_config(tmp_path / "config.json")
    assert a.params_total == b.params_total == ModelSpec.from_hf_config(cfg).params_total


def test_known_kv_bytes_per_token_in_bf16():
    assert ModelSpec.from_catalog("llama-3-8b").kv_bytes_per_token == 131_072
    assert ModelSpec.from_catalog("llama-3-70b").kv_bytes_per_token == 327_680
    # MLA: (kv_lora_rank + qk_rope_head_dim) x layers x 2 bytes = (512 + 64) x 61 x 2
    assert ModelSpec.from_catalog("deepseek-v3").kv_bytes_per_token == 70_272


@pytest.mark.parametrize("name", sorted(load_catalog().models))
def test_catalog_params_match_published_headline_within_3_percent(name):
    entry = load_catalog().model(name)
    spec = ModelSpec.from_catalog(name)
    assert entry.source.startswith("https://huggingface.co/") and entry.source.endswith("config.json")
    assert spec.params_total == pytest.approx(entry.headline_params, rel=0.03)
    if entry.headline_active_params:
        assert spec.params_active == pytest.approx(entry.headline_active_params, rel=0.03)
    else:
        assert spec.params_active == spec.params_total


def test_catalog_moe_active_parameters_known_figures():
    mixtral = ModelSpec.from_catalog("mixtral-8x7b")
    assert round(mixtral.params_total / 1e9, 1) == 46.7 and round(mixtral.params_active / 1e9, 1) == 12.9
    ds = ModelSpec.from_catalog("deepseek-v3")
    assert ds.attention == "MLA" and ds.weight_bytes_per_param == 1.0 and ds.kv_dtype_bytes == 2.0
    assert 36e9 < ds.params_active < 38e9 and 670e9 < ds.params_total < 672e9


def test_tied_embeddings_are_counted_once():
    tied = ModelSpec.from_catalog("qwen2.5-0.5b")
    assert tied.tie_word_embeddings and tied.params_lm_head == 0
    assert tied.params_total - tied.params_non_embedding == tied.params_embedding


def test_attention_kind_and_sliding_window_are_read_from_the_config():
    assert ModelSpec.from_catalog("llama-3.1-8b").attention == "GQA"
    assert ModelSpec.from_hf_config(tiny_config("llama-mha")).attention == "MHA"
    mistral = ModelSpec.from_hf_config(tiny_config("mistral"))
    assert mistral.sliding_window == 8 and mistral.num_sliding_layers == 2
    qwen = ModelSpec.from_hf_config(
        {
            "model_type": "qwen2",
            **BASE,
            "use_sliding_window": True,
            "sliding_window": 8,
            "max_window_layers": 1,
        }
    )
    assert [la.sliding for la in qwen.layers] == [False, True]
    off = ModelSpec.from_hf_config(
        {"model_type": "qwen2", **BASE, "use_sliding_window": False, "sliding_window": 8}
    )
    assert off.sliding_window is None and off.num_sliding_layers == 0


def test_dtype_override_and_kv_dtype():
    spec = ModelSpec.from_catalog("llama-3-8b", dtype="fp8")
    assert spec.weight_bytes_per_param == 1.0 and spec.kv_bytes_per_token == 65_536
    fp32 = ModelSpec.from_hf_config(tiny_config("llama"), dtype="float32")
    assert fp32.weight_bytes == 4 * fp32.params_total


def test_unsupported_model_type_names_the_field_and_lists_supported():
    with pytest.raises(SpecError, match=r"model_type.*'gpt2'.*supported: llama"):
        ModelSpec.from_hf_config({"model_type": "gpt2", "hidden_size": 8})


def test_missing_field_names_the_source_and_field(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with pytest.raises(SpecError, match=r"config\.json: missing field 'num_hidden_layers'"):
        ModelSpec.from_hf_config(path)
    with pytest.raises(SpecError, match="no such config file"):
        ModelSpec.from_hf_config(tmp_path / "nope")
    with pytest.raises(SpecError, match="unknown dtype"):
        ModelSpec.from_hf_config({"model_type": "llama", **BASE, "torch_dtype": "float13"})


def test_run_metadata_builds_the_spec_and_warns_on_parameter_mismatch(tmp_path):
    model = tiny_model("llama")
    numel = sum(p.numel() for p in model.parameters())
    meta = {"model": "tiny", "config": model.config.to_dict(), "dtype": "float32", "num_parameters": numel}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = ModelSpec.from_run_metadata(path)
    assert spec.name == "tiny" and spec.params_total == numel and spec.weight_bytes_per_param == 4.0
    with pytest.warns(UserWarning, match="computed .* parameters but the run measured"):
        ModelSpec.from_run_metadata({**meta, "num_parameters": numel * 2})
    with pytest.raises(SpecError, match="needs a 'config' object"):
        ModelSpec.from_run_metadata({"model": "x"})


def test_resolve_catalog_then_path_then_one_line_error_naming_close_matches(tmp_path):
    assert ModelSpec.resolve("Llama-3.1-8B").name == "llama-3.1-8b"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", **BASE}))
    assert ModelSpec.resolve(tmp_path).model_type == "llama"
    with pytest.raises(SpecError) as err:
        ModelSpec.resolve("llama-3.1-7b")
    msg = str(err.value)
    assert "\n" not in msg and "closest: " in msg and "llama-3.1-8b" in msg and "params:" in msg
    # never the whole catalog (the old message listed all of it)
    assert len(msg) < 300 and "qwen3-32b" not in msg and "deepseek" not in msg


def test_resolve_finds_lab_checkpoints_by_name(tmp_path, monkeypatch):
    import planner.costs.spec as spec_module

    folder = tmp_path / "lab-x"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", **BASE, "tie_word_embeddings": True})
    )
    monkeypatch.setattr(spec_module, "lab_checkpoint_dirs", lambda: [folder])
    spec = ModelSpec.resolve("lab-x")
    assert spec.name == "lab-x" and spec.tie_word_embeddings
    with pytest.raises(SpecError, match=r"closest: .*lab-x"):
        ModelSpec.resolve("lab-y")


# ---- new families ----------------------------------------------------------------------------
PYTHIA_12B = dict(
    model_type="gpt_neox",
    hidden_size=5120,
    intermediate_size=20480,
    num_hidden_layers=36,
    num_attention_heads=40,
    vocab_size=50688,
    rotary_pct=0.25,
    use_parallel_residual=True,
    tie_word_embeddings=False,
    max_position_embeddings=2048,
)


def test_pythia_12b_has_its_published_parameter_count():
    # Biderman et al. 2023, Table 1: 11,846,072,320 (untied embed_in and embed_out, LayerNorms with bias)
    assert ModelSpec.from_hf_config(PYTHIA_12B).params_total == 11_846_072_320
    spec = ModelSpec.from_catalog("pythia-12b")
    assert spec.params_total == 11_846_072_320 and spec.attention == "MHA"
    assert spec.max_context_tokens == 2048 and spec.weight_bytes_per_param == 2.0  # float16
    # MHA: 2 x 40 heads x 128 x 36 layers x 2 bytes
    assert spec.kv_bytes_per_token == 2 * 40 * 128 * 36 * 2


@pytest.mark.parametrize("size", ["14m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"])
def test_every_pythia_size_is_in_the_catalog_with_its_exact_count(size):
    entry = load_catalog().model(f"pythia-{size}-deduped")
    assert ModelSpec.from_catalog(entry.name).params_total == entry.headline_params


def test_gemma_layer_patterns_without_layer_types():
    """Configs written before transformers listed ``layer_types`` (Gemma 2's and Gemma 3's
    config.json) slide on even layers (Gemma 2) or on 5 of every 6 (Gemma 3)."""
    g2 = ModelSpec.from_hf_config(
        {"model_type": "gemma2", **BASE, "num_hidden_layers": 4, "sliding_window": 16}
    )
    assert [la.sliding for la in g2.layers] == [True, False, True, False]
    g3 = ModelSpec.from_hf_config(
        {"model_type": "gemma3_text", **BASE, "num_hidden_layers": 12, "sliding_window": 16}
    )
    assert [la.sliding for la in g3.layers] == [True] * 5 + [False] + [True] * 5 + [False]
    wrapped = ModelSpec.from_hf_config(
        {"model_type": "gemma3", "text_config": {**BASE, "num_hidden_layers": 12, "sliding_window": 16}}
    )
    assert wrapped.params_total == g3.params_total and "vision tower is not counted" in wrapped.source


def test_context_limit_from_max_positions_and_rope_scaling():
    assert ModelSpec.from_catalog("llama-3-8b").max_context_tokens == 8192
    yarn = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    spec = ModelSpec.from_hf_config(
        {"model_type": "qwen3", **BASE, "max_position_embeddings": 40960, "rope_scaling": yarn}
    )
    assert spec.max_context_tokens == 131072
    assert ModelSpec.from_hf_config({"model_type": "llama", **BASE}).max_context_tokens is None


# ---- given numbers -----------------------------------------------------------------------------
def test_given_numbers_price_an_unknown_architecture():
    spec = ModelSpec.resolve("mine=params:8.0e9,layers:32,kv_heads:8,head_dim:128")
    assert spec.name == "mine" and spec.params_total == spec.params_active == 8_000_000_000
    assert spec.kv_bytes_per_token == 2 * 8 * 128 * 32 * 2 and spec.weight_bytes == 16e9
    assert spec.matmul_params_active + spec.params_final_norm == 8_000_000_000  # 2N FLOPs per token
    assert spec.num_heads == 32 and any("ESTIMATED" in a for a in spec.assumptions)
    exact = ModelSpec.resolve("params:8e9,layers:32,kv_heads:8,head_dim:128,heads:32,context:8192", name="x")
    assert (
        exact.name == "x"
        and exact.max_context_tokens == 8192
        and not any("ESTIMATED" in a for a in exact.assumptions)
    )


def test_given_numbers_for_a_moe_keep_totals_and_active_parameters():
    spec = ModelSpec.from_numbers(
        "moe",
        params=46.7e9,
        active_params=12.9e9,
        layers=32,
        kv_heads=8,
        head_dim=128,
        experts=8,
        experts_per_token=2,
    )
    assert spec.params_total == 46_700_000_000 and spec.is_moe
    assert abs(spec.params_active - 12.9e9) <= 32 * 8
    with pytest.raises(SpecError, match="needs experts and experts_per_token"):
        ModelSpec.from_numbers(
            "moe", params=46.7e9, active_params=12.9e9, layers=32, kv_heads=8, head_dim=128
        )


@pytest.mark.parametrize(
    "text, message",
    [
        ("x=params:8e9,layers:32", r"missing field\(s\) kv_heads, head_dim \(expected NAME=params:8\.0e9"),
        (
            "x=params:8e9,layers:32,kv_heads:8,head_dim:128,colour:3",
            r"unknown field\(s\) colour; known: params",
        ),
        ("x=params:lots,layers:32,kv_heads:8,head_dim:128", r"field 'params' must be a number"),
        ("x=params:8e9,layers:32.5,kv_heads:8,head_dim:128", r"field 'layers' must be a whole number"),
        (
            "x=params:8e9,layers:32,kv_heads:8,head_dim:128,heads:12",
            r"heads \(12\) must be a multiple of kv_heads",
        ),
    ],
)
def test_given_numbers_errors_are_one_line_and_name_the_fields(text, message):
    with pytest.raises(SpecError, match=message) as err:
        ModelSpec.resolve(text)
    assert "\n" not in str(err.value)


def test_a_catalog_file_entry_can_give_numbers_instead_of_a_config(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text(
        "[models.my-model]\nparams = 7.0e9\nlayers = 28\nkv_heads = 4\nhead_dim = 128\nheads = 28\n"
    )
    spec = ModelSpec.resolve("my-model", extra_file=user)
    assert (
        spec.params_total == 7_000_000_000
        and spec.num_heads == 28
        and spec.kv_bytes_per_token == 2 * 4 * 128 * 28 * 2
    )
    bad = tmp_path / "bad.toml"
    bad.write_text("[models.half]\nparams = 7.0e9\nlayers = 28\n")
    from planner.catalog import CatalogError

    with pytest.raises(CatalogError, match=r"\[models\.half\]: missing field\(s\) kv_heads, head_dim"):
        load_catalog(bad)
