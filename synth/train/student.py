"""Resolve a student (or a training teacher) spec into a model and tokenizer; cut a student
from its teacher; check that a teacher and a student can be distilled by KL.

Specs:

* a Hugging Face model directory, a ``.gguf`` file, an embedded name
  (``smollm2-135m-instruct``), each optionally written ``local:SPEC`` as for
  ``synth generate --teacher``;
* ``from-teacher:layers=N``: the teacher with N of its layers kept, **evenly spaced, first
  and last always kept**. Why this choice: the first layers turn token embeddings into
  features every later layer reads and the last ones map features back to the vocabulary, so
  removing either end costs most (Gromov et al. 2024, "The Unreasonable Ineffectiveness of
  the Deeper Layers"; Men et al. 2024, ShortGPT); spacing the rest evenly keeps every depth
  of the computation represented, which continued training recovers fastest when nothing
  has been measured. Minitron (Muralidharan et al. 2024) instead ranks layers by importance
  on calibration data; ``layers=0-7,22-29`` keeps an explicit set when you have such a
  ranking (ranges inclusive, 0-based, in the teacher's order).

A cut student keeps the teacher's config (hidden size, heads, vocabulary, rope) and tokenizer;
``num_hidden_layers`` and every per-layer list in the config (``layer_types`` such as
sliding/full attention, ``no_rope_layers``...) follow the kept layers, and each attention
module's ``layer_idx`` is renumbered so the KV cache indexes the right slot.

Progressive distillation: train a student, then run ``synth train`` again with that student
as ``--teacher`` and ``--student from-teacher:layers=M``: each step halves the depth from a
model that already imitates the one above it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from synth.errors import ConfigError, ModelLoadError

__all__ = ["parse_layers", "keep_layers", "load_pretrained", "cut_student", "LoadedModel",
           "check_shared_vocab", "shared_vocab_size", "param_count"]

_FROM_TEACHER = re.compile(r"^from-teacher:layers=(?P<spec>[0-9,\- ]+)$")


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    spec: str
    note: str = ""            # how it was made, for the model card
    kept_layers: list[int] | None = None
    base: str | None = None   # the model it derives from (the teacher, for a cut)


def is_cut_spec(spec: str) -> bool:
    return spec.strip().startswith("from-teacher:")


def _strip(spec: str) -> str:
    return spec[len("local:"):] if spec.startswith("local:") else spec


def parse_layers(spec: str, total: int) -> list[int]:
    """``"N"`` → N evenly spaced layer indices of ``total`` (first and last included);
    ``"0-7,22-29"`` → those indices. Raises :class:`~synth.errors.ConfigError`."""
    spec = spec.replace(" ", "")
    if spec.isdigit():
        n = int(spec)
        if not 1 <= n <= total:
            raise ConfigError(f"--student from-teacher:layers={n}: the teacher has {total} "
                              f"layers; keep between 1 and {total}")
        return keep_layers(n, total)
    out: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"--student from-teacher:layers={spec}: {part!r} is not N or "
                              "A-B (e.g. layers=15 or layers=0-7,22-29)")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        if a > b or b >= total:
            raise ConfigError(f"--student from-teacher:layers={spec}: {part!r} is outside "
                              f"the teacher's layers 0-{total - 1}")
        out.extend(range(a, b + 1))
    if len(set(out)) != len(out):
        raise ConfigError(f"--student from-teacher:layers={spec}: a layer is listed twice")
    return sorted(out)


def keep_layers(n: int, total: int) -> list[int]:
    """N evenly spaced indices in ``range(total)``, first and last included."""
    if n == 1:
        return [0]
    return sorted({round(i * (total - 1) / (n - 1)) for i in range(n)})


def load_pretrained(spec: str, *, dtype: str = "fp32") -> LoadedModel:
    """Load a model spec (see the module docstring) for training: fp32 master weights."""
    from synth.models import load_model

    name = _strip(spec.strip())
    model, tok = load_model(name, dtype=dtype)  # ModelLoadError names what is wrong
    tok.padding_side = "right"
    return LoadedModel(model, tok, spec, note=f"initialised from {name}", base=name)


def _layers_module(model: Any) -> tuple[Any, str]:
    decoder = model.get_decoder()
    for attr in ("layers", "h", "blocks"):
        layers = getattr(decoder, attr, None)
        if layers is not None and hasattr(layers, "__len__"):
            return decoder, attr
    raise ModelLoadError(f"cannot find the decoder layers of {type(model).__name__} to cut "
                         "a student from it")


def cut_student(teacher: LoadedModel, layer_spec: str) -> LoadedModel:
    """A copy of ``teacher`` with only the layers ``layer_spec`` names (module docstring)."""
    import torch

    model = copy.deepcopy(teacher.model)
    decoder, attr = _layers_module(model)
    layers = getattr(decoder, attr)
    total = len(layers)
    keep = parse_layers(layer_spec, total)
    setattr(decoder, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    for new, layer in enumerate(getattr(decoder, attr)):
        for mod in layer.modules():
            if hasattr(mod, "layer_idx"):
                mod.layer_idx = new
    cfg = model.config
    for conf in {id(cfg): cfg, id(getattr(cfg, "text_config", cfg)):
                 getattr(cfg, "text_config", cfg)}.values():
        for key, value in list(vars(conf).items()):
            if isinstance(value, (list, tuple)) and len(value) == total and \
                    key not in ("architectures",):
                setattr(conf, key, type(value)(value[i] for i in keep))
        conf.num_hidden_layers = len(keep)
    for key in ("max_window_layers",):  # Qwen2: layers below this index use full attention
        if isinstance(getattr(cfg, key, None), int):
            setattr(cfg, key, sum(1 for i in keep if i < getattr(cfg, key)))
    tok = copy.deepcopy(teacher.tokenizer)
    spaced = "evenly spaced, first and last kept" if layer_spec.strip().isdigit() else \
        "as listed"
    note = (f"cut from {teacher.base or teacher.spec}: kept {len(keep)} of {total} layers "
            f"({spaced}): {keep}")
    return LoadedModel(model, tok, f"from-teacher:layers={layer_spec}", note, keep,
                       base=teacher.base or teacher.spec)


def param_count(model: Any) -> int:
    """Parameters, counting tied weights once."""
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def _vocab_rows(model: Any) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def check_shared_vocab(student: LoadedModel, teacher: LoadedModel) -> None:
    """KL compares distributions token by token: both must use one vocabulary.

    Identical tokenizers (same token → id map and special tokens) pass even when the two
    output heads have different row counts: rows past the tokenizer are padding
    (151,936 vs 152,064 in the Qwen family) and are cut away (:func:`shared_vocab_size`).
    Anything else raises :class:`~synth.errors.ConfigError` saying what differs and what to
    do instead.
    """
    s, t = student.tokenizer, teacher.tokenizer
    sv, tv = s.get_vocab(), t.get_vocab()
    if sv != tv:
        only_s = len(set(sv) - set(tv))
        only_t = len(set(tv) - set(sv))
        moved = sum(1 for k in set(sv) & set(tv) if sv[k] != tv[k])
        raise ConfigError(
            f"KL distillation needs one vocabulary, and the student's tokenizer "
            f"({len(sv):,} tokens) differs from the teacher's ({len(tv):,} tokens): "
            f"{only_s:,} tokens only in the student's, {only_t:,} only in the teacher's, "
            f"{moved:,} shared tokens with different ids. Use --loss sft (cross-entropy on the "
            "teacher's text works across tokenizers) or a student from the teacher's family "
            "(--student from-teacher:layers=N)")
    for name in ("eos_token", "bos_token", "unk_token"):
        if getattr(s, name, None) != getattr(t, name, None):
            raise ConfigError(f"KL distillation: student and teacher tokenizers differ in "
                              f"{name} ({getattr(s, name, None)!r} vs "
                              f"{getattr(t, name, None)!r}); use --loss sft")
    n = len(s)
    rows_s, rows_t = _vocab_rows(student.model), _vocab_rows(teacher.model)
    if rows_s < n or rows_t < n:
        raise ConfigError(f"an output head is smaller than the tokenizer ({n:,} tokens): "
                          f"student {rows_s:,} rows, teacher {rows_t:,} rows")


def shared_vocab_size(student: Any, teacher: Any | None) -> int | None:
    """The number of logit columns both heads share (``None`` when they match): the rows
    past it are padding that one model has and the other lacks."""
    if teacher is None:
        return None
    a, b = _vocab_rows(student), _vocab_rows(teacher)
    return None if a == b else min(a, b)
