"""Adversarial review of ``synth train --backend openai`` (synth/train/provider.py): each test
is one problem found, and fails on the code as reviewed. Helpers and the loopback server
come from tests/test_train_provider.py and tests/conftest.py."""

from __future__ import annotations

import json

import pytest

import synth
from synth.errors import ConfigError, InputError, LicenceDeniedError, TermsNotAcceptedError
from synth.train import provider
from tests.provider_server import ProviderServer
from tests.test_export import many, write_run
from tests.test_train_provider import _train

STUDENT = "gpt-4.1-nano-2025-04-14"


@pytest.fixture
def rows(tmp_path):
    return write_run(tmp_path / "run", many(12))


# ------------------------------------------------------------ bad input, nothing half-made

def test_fewer_than_ten_training_examples_is_refused_before_any_upload(server, tmp_path):
    """OpenAI refuses a training file of fewer than 10 examples; the export knows (it only
    warns), yet the file is uploaded and a job created, which then fails validation."""
    data = write_run(tmp_path / "run", many(4))  # 8 examples
    with pytest.raises((ConfigError, InputError), match="10"):
        _train(server, data, tmp_path / "o")
    assert not server.batches.files and server.fine_tuning.created == 0
    assert not (tmp_path / "o").exists()


def test_fractional_epochs_are_refused_before_anything_is_written_or_sent(server, rows,
                                                                          tmp_path):
    """--epochs 1.5 is refused only in _create_body, after the export, finetune.json and
    the upload: a folder and a provider file are left behind for a bad option."""
    with pytest.raises(ConfigError, match="whole epochs"):
        _train(server, rows, tmp_path / "o", epochs=1.5)
    assert not server.batches.files, "the training file was uploaded for a bad option"
    assert not (tmp_path / "o").exists(), sorted(p.name for p in (tmp_path / "o").iterdir())


def test_an_export_error_leaves_no_folder_that_the_fixed_command_refuses(server, rows,
                                                                         tmp_path):
    """An export that fails (here: --eval-split so small no prompt is held out) leaves
    OUT/.lock behind; the fixed command then says OUT 'is not empty and holds no
    fine-tuning job'."""
    out = tmp_path / "o"
    with pytest.raises(ConfigError, match="none in test"):
        _train(server, rows, out, eval_split=0.001)
    s = _train(server, rows, out).summary  # the same folder, the option fixed
    assert s["status"] == "succeeded" and server.fine_tuning.created == 1


def test_a_crash_between_the_export_and_the_first_record_does_not_brick_the_folder(
        server, rows, tmp_path, monkeypatch):
    """Killed after export_run committed OUT/data but before finetune.json was written: the
    same command must carry on (nothing was sent yet), not refuse its own folder."""
    real = provider._save

    def crash(out, state):
        raise KeyboardInterrupt  # as a SIGINT / kill right here

    monkeypatch.setattr(provider, "_save", crash)
    with pytest.raises(KeyboardInterrupt):
        _train(server, rows, tmp_path / "o")
    monkeypatch.setattr(provider, "_save", real)
    assert not server.batches.files
    s = _train(server, rows, tmp_path / "o").summary
    assert s["status"] == "succeeded" and server.fine_tuning.created == 1


# --------------------------------------------------- reruns that attach to the wrong job

@pytest.mark.parametrize("first,second", [({"epochs": 2}, {"epochs": 3}),
                                          ({"suffix": "aa"}, {"suffix": "bb"}),
                                          ({}, {"lr_multiplier": 0.1})])
def test_a_rerun_with_other_job_settings_is_refused(server, rows, tmp_path, first, second):
    """finetune.json records only the student: a rerun asking for other hyperparameters or
    another suffix silently attaches to (and reports as its own) a job made with others."""
    _train(server, rows, tmp_path / "o", **first)
    with pytest.raises(ConfigError):
        _train(server, rows, tmp_path / "o", **second)
    assert server.fine_tuning.created == 1


def test_a_rerun_after_the_data_changed_is_refused(server, tmp_path):
    """The rows changed (or --data names other rows): the rerun attaches to the job trained
    on the old export and writes a train.json naming the new --data."""
    data = write_run(tmp_path / "run", many(12))
    _train(server, data, tmp_path / "o")
    write_run(tmp_path / "run", many(20, response="a different answer"))
    with pytest.raises(ConfigError):
        _train(server, data, tmp_path / "o")
    other = write_run(tmp_path / "run2", many(15))
    with pytest.raises(ConfigError):
        _train(server, other, tmp_path / "o")


def test_a_rerun_against_another_base_url_is_refused_before_any_request(server, rows,
                                                                        tmp_path):
    """finetune.json records base_url but nothing compares it: a rerun whose --base-url (or
    OPENAI_BASE_URL) points elsewhere polls a job id that server never made (404), and the
    error then says 'the same command attaches to it'."""
    out = tmp_path / "o"
    _train(server, rows, out)
    recorded = json.loads((out / "finetune.json").read_text())["base_url"]
    with ProviderServer() as other:
        with pytest.raises(ConfigError, match=recorded.replace(".", r"\.")):
            synth.train(data=rows, student=STUDENT, out=out, backend="openai",
                        intent="internal", base_url=f"{other.url}/v1", poll_interval=0.01)
        assert not [r for r in other.requests if "fine_tuning" in json.dumps(r)]


# -------------------------------------------------------------------------- licence

def test_openais_fine_tuning_exception_needs_openai_as_the_target(tmp_path):
    """OpenAI's outputs may tune a model *through OpenAI's own fine-tuning*; sent to another
    service speaking its API (--base-url), they carry OpenAI's terms like any use:
    deny-competing. licence_decision takes base_url and never reads it."""
    data = many(12, provider="openai", model="gpt-4o-mini",
                base_url="https://api.openai.com/v1")
    with pytest.raises(LicenceDeniedError):
        provider.licence_decision(data, intent="competing", accept=(),
                                  base_url="https://api.together.xyz/v1")


def test_openai_base_url_env_to_another_service_is_checked_too(rows, tmp_path, monkeypatch):
    """The same hole through $OPENAI_BASE_URL (the target _http uses when --base-url is
    not given): the licence check passes base_url=cfg.base_url (None)."""
    data = write_run(tmp_path / "r2", many(12, provider="openai", model="gpt-4o-mini",
                                          base_url="https://api.openai.com/v1"))
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.together.xyz/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")

    def no_http(cfg):
        raise AssertionError("the licence check passed: rows would be sent to "
                             "api.together.xyz under OpenAI's own-fine-tuning exception")

    monkeypatch.setattr(provider, "_http", no_http)
    with pytest.raises(LicenceDeniedError):
        synth.train(data=data, student=STUDENT, out=tmp_path / "o", backend="openai",
                    intent="competing", poll_interval=0.01)
    assert not (tmp_path / "o").exists()


def test_rows_without_a_provider_do_not_get_openais_exception(server, tmp_path):
    """Rows with no provider and no base URL (provenance lost) but a model id that looks
    like OpenAI's are checked as provider 'unknown', which the proxy rule maps to
    openai-api, so they pass even for intent competing as if OpenAI made them."""
    data = write_run(tmp_path / "run", many(12, provider=None, model="gpt-4o",
                                            base_url=None, licence_entries=None))
    with pytest.raises((LicenceDeniedError, TermsNotAcceptedError)):
        _train(server, data, tmp_path / "o", intent="competing")
    assert not server.batches.files and server.fine_tuning.created == 0
