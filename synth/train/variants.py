"""``synth eval --compare``: the student as trained and its other versions (quantised GGUF
files, another directory) scored on the same prompts, so the size/quality trade is one table.

Every version answers every task prompt once, greedily, with the same settings as the
student (logprobs included when ``--cascade`` asks the student for them) and the teacher (:func:`synth.train.evaluation.answer_prompts`), and is scored by
the same checks over the same denominator. A row holds:

* ``bytes``: the weights on disk (a GGUF file's size; a directory's weight files at its
  top level, not its checkpoints: its ``*.safetensors``, else ``*.bin``, else ``*.gguf``,
  one copy as transformers loads one);
* ``format``: the directory's dtype (``fp32``) or the GGUF's ``general.file_type``
  (``Q8_0``, ``Q4_K_M``);
* ``tokens_per_s``: generation speed *through transformers on this machine*, which
  dequantises a GGUF on load: a quantised file runs at fp32 speed here, and the speed
  llama.cpp gets from it is measured by ``bench/edge.py``, not here;
* ``accuracy``, ``correct`` / ``wrong`` / ``unverifiable``, ``retained`` (of the teacher's
  accuracy), ``agreement`` (same verdict as the teacher) and ``same_as_student`` (the share
  of prompts whose answer text is identical to the student-as-trained's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.errors import ConfigError

__all__ = ["check_compare", "model_bytes", "model_format", "variant_row", "weight_files"]

_WEIGHTS = ("*.safetensors", "*.bin", "*.gguf")


def check_compare(specs: tuple[str, ...]) -> list[Path]:
    """Each ``--compare`` entry as a path: a ``.gguf`` file the gguf package can read, or a
    model directory with config.json and weights (checked before any model loads)."""
    out = []
    for s in specs:
        p = Path(s.removeprefix("local:"))
        if p.is_file() and p.suffix.lower() == ".gguf":
            from synth.train.gguf_export import read_gguf

            try:
                read_gguf(p)
            except Exception as e:  # any parse failure: truncated, not a GGUF, bad version
                raise ConfigError(f"--compare {s}: not a readable GGUF file "
                                  f"({type(e).__name__}: {str(e)[:120]})") from None
            out.append(p)
        elif p.is_dir() and (p / "config.json").is_file() and weight_files(p):
            out.append(p)
        else:
            raise ConfigError(f"--compare {s}: not a .gguf file or a model directory with "
                              "config.json and weights")
    return out


def weight_files(path: Path) -> list[Path]:
    """The weight files of a model directory, one copy: ``*.safetensors`` (the shards and
    their index count as one model), else ``*.bin``, else ``*.gguf``, at its top level."""
    for pat in _WEIGHTS:
        files = sorted(f for f in path.glob(pat) if f.is_file())
        if files:
            return files
    return []


def model_bytes(path: Path) -> int | None:
    """Bytes of the weights at ``path`` (see the module docstring); None when none found."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in weight_files(path)) or None


def model_format(path: Path) -> str:
    """``Q8_0`` for a GGUF (its ``general.file_type``), ``fp32`` (the config's dtype) for
    a directory."""
    if path.is_file():
        import gguf

        from synth.train.gguf_export import read_gguf

        f = read_gguf(path).fields.get("general.file_type")
        if f is None:
            return "gguf"
        v = int(f.parts[f.data[0]][0])
        try:
            return gguf.LlamaFileType(v).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            return f"gguf file_type {v}"
    import json

    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    dtype = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(dtype, dtype)


def variant_row(name: str, path: Path | None, answers: list, outcomes: list[tuple[str, str]],
                speed: dict[str, Any], *, teacher_outcomes: list[tuple[str, str]],
                teacher_accuracy: float | None, student_answers: list) -> dict[str, Any]:
    """One row of the table, for a version whose ``answers`` scored ``outcomes``."""
    n = len(outcomes)
    c = sum(o == "correct" for o, _ in outcomes)
    acc = c / n if n else None
    same = sum((a.text or "") == (s.text or "") for a, s in zip(answers, student_answers))
    return {
        "name": name, "path": None if path is None else str(path),
        "format": None if path is None else model_format(path),
        "bytes": None if path is None else model_bytes(path),
        "tokens_per_s": speed.get("gen_tokens_per_s"), "gen_s": speed.get("gen_s"),
        "n": n, "correct": c, "wrong": sum(o == "wrong" for o, _ in outcomes),
        "unverifiable": sum(o == "unverifiable" for o, _ in outcomes),
        "accuracy": acc,
        "retained": acc / teacher_accuracy if acc is not None and teacher_accuracy else None,
        "agreement": sum(a == b for (a, _), (b, _) in zip(outcomes, teacher_outcomes)) / n
        if n else None,
        "same_as_student": same / n if n else None,
    }
