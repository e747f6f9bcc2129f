"""The model resolver: builtins, folders, GGUF files, hub ids, and the errors a user meets."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from korquad_tune import KorquadTuneError
from korquad_tune.cli import app
from korquad_tune.models import _smollm2_gguf, load_model_with_adapters, resolve_model


def test_tiny_random_is_built_once_and_reused():
    first = resolve_model("tiny-random")
    marker = Path(first.path) / ".complete"
    mtime = marker.stat().st_mtime
    again = resolve_model("tiny-random")
    assert again.path == first.path and marker.stat().st_mtime == mtime
    model, tok, names = load_model_with_adapters("tiny-random")
    assert names == [] and model.config.vocab_size == len(tok)
    assert tok.decode(tok("노아의 방주", add_special_tokens=False).input_ids) == "노아의 방주"


def test_local_folder(tmp_path):
    src = resolve_model("tiny-random").path
    shutil.copytree(src, tmp_path / "m")
    r = resolve_model(str(tmp_path / "m"))
    assert r.kind == "folder"
    model, tok, _ = load_model_with_adapters(str(tmp_path / "m"))
    assert model.config.num_hidden_layers == 2


def test_models_load_without_hub_kernels():
    """transformers swaps layers for hub-fetched kernels by default; offline on CUDA that fails at model.train()
    (seen on a lent H200, BENCHMARKS 6). Loading turns it off, and training mode does not turn it back on."""
    from korquad_tune.models import load_base_model
    model = load_base_model(resolve_model("tiny-random"), device="cpu")
    model.train()
    assert model.use_kernels is False


def test_adapters_whose_names_contain_each_other_load_quietly_and_whole(tiny_run, tmp_path):
    """peft 0.22 took every `no-aug` weight for a missing `aug` one ("aug" is in the key) and printed them all; the
    check is by the adapter's own name now, and every saved weight of both is in the model."""
    import warnings

    from safetensors.torch import load_file
    shutil.copytree(tiny_run / "adapters" / "no-aug", tmp_path / "aug")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _, names = load_model_with_adapters("tiny-random", [tiny_run / "adapters" / "no-aug", tmp_path / "aug"])
    assert names == ["no-aug", "aug"]
    assert not [w for w in caught if "adapter keys" in str(w.message)]
    state = model.state_dict()
    saved = load_file(tmp_path / "aug" / "adapter_model.safetensors")
    lora = {key: value for key, value in saved.items() if ".lora_" in key}
    assert lora
    for name in names:
        for key, value in lora.items():
            loaded = state[key.replace(".weight", f".{name}.weight")]
            assert loaded.equal(value.to(loaded.dtype))


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(KorquadTuneError, match="no config.json"):
        resolve_model(str(tmp_path))


@pytest.mark.slow
def test_builtin_smollm2_converts_from_its_package():
    r = resolve_model("smollm2-135m")
    assert r.kind == "builtin"
    model, tok, _ = load_model_with_adapters("smollm2-135m")
    assert model.config.model_type == "llama"
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0])


@pytest.mark.slow
def test_gguf_file_path(tmp_path):
    gguf = tmp_path / "copy.gguf"
    gguf.symlink_to(_smollm2_gguf())
    r = resolve_model(str(gguf))
    assert r.kind == "gguf"
    assert json.loads((Path(r.path) / "config.json").read_text())["model_type"] == "llama"


def test_missing_gguf_file(tmp_path):
    with pytest.raises(KorquadTuneError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "nope.gguf"))


def test_unknown_name_lists_builtins():
    with pytest.raises(KorquadTuneError, match="gemma3-270m, smollm2-135m, tiny-random"):
        resolve_model("no-such-model")


def test_hub_id_offline_is_a_clear_error():
    res = CliRunner().invoke(app, ["ask", "질문", "--model", "meta-llama/Llama-2-7b-hf"])
    assert res.exit_code == 2
    assert "Hugging Face hub" in res.output and "gemma3-270m" in res.output
    assert "Traceback" not in res.output


def test_int4_needs_cuda():
    from korquad_tune.models import load_base_model
    with pytest.raises(KorquadTuneError, match="needs a CUDA GPU"):
        load_base_model(resolve_model("tiny-random"), device="cpu", load_in_4bit=True)
