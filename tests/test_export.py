"""`synth export`: trace rows → the formats other trainers read, each read back by its real
consumer (``datasets.load_from_disk``, TRL's conversational data path, OpenAI's documented
fine-tuning checks), with the split by prompt, reasoning keep / drop, and every bad input
refused with nothing written."""

import hashlib
import json
import sys
import types
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.dataset.export import ExportResult, export_run, split_side
from synth.errors import ConfigError, InputError
from synth.records import TRACE_SCHEMA

CARD = """---
license: apache-2.0
pretty_name: run
tags:
- synthetic
size_categories:
- n<1K
configs:
- config_name: default
  data_files:
  - split: train
    path: traces.parquet
---

# run

## Licence

Declared intent: **research**. Decision: **allow**.
"""


def row(pid, k=0, *, response="the answer", reasoning=None, status="ok", messages=None,
        **kw):
    r = {name: None for name in TRACE_SCHEMA.names}
    r.update(
        id=f"{pid}:{k}", prompt_id=pid, sample_index=k,
        messages=messages or [{"role": "system", "content": "be brief"},
                              {"role": "user", "content": f"question {pid}"}],
        response=None if status == "error" else response, reasoning=reasoning,
        status=status, error="rejected: 400" if status == "error" else None,
        finish_reason="stop", provider="openai", model="gpt-test", model_version="gpt-test-1",
        base_url="http://127.0.0.1", intent="research", licence_entries=["openai-api"],
        terms_versions=["openai terms (2025)"], licence_rule="allow-research",
        licence_decision="allow", terms_accepted=False, accepted_terms=[],
        template_id="qa", template_hash="abc", input_tokens=10, output_tokens=5,
        created_at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    r.update(kw)
    return r


def write_run(d, rows, *, name="traces.parquet", card=CARD, schema=TRACE_SCHEMA):
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), d / name)
    if card is not None:
        (d / "README.md").write_text(card)
    return d


def many(n_prompts, samples=2, **kw):
    return [row(f"p{i}", k, **kw) for i in range(n_prompts) for k in range(samples)]


def read_jsonl(p):
    return [json.loads(line) for line in p.read_text().splitlines()]


def side(pid, split, seed):
    """The documented rule (synth.rows: held out when sha256("synth-split:{seed}:{key}") as a
    number in [0, 1) is below the held-out share, here 1 - split), written out
    independently of the module."""
    u = int.from_bytes(hashlib.sha256(f"synth-split:{seed}:{pid}".encode()).digest()[:8],
                       "big") / 2**64
    return "test" if u < 1 - split else "train"


# ------------------------------------------------------------------------ hf

def test_hf_round_trip_with_load_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = many(40, reasoning="step one") + [row("bad", 0, status="error"),
                                             row("bad", 1, status="error")]
    run = write_run(tmp_path / "run", rows)
    out = tmp_path / "hf"
    res = export_run(run, format="hf", out=out, split=0.8, seed=3)

    want_test = sorted(f"p{i}" for i in range(40) if side(f"p{i}", 0.8, 3) == "test")
    assert 2 <= len(want_test) <= 16  # the rule itself is not degenerate
    assert res.rows == {"train": 80 - 2 * len(want_test), "test": 2 * len(want_test)}
    assert res.skipped == {"status=error": 2}
    assert res.summary["source_kind"] == "traces"
    assert sorted(p.name for p in res.paths) == sorted(
        ["dataset_dict.json", "train", "test", "README.md", "export.json"])

    dd = datasets.load_from_disk(str(out))
    assert set(dd) == {"train", "test"}
    assert dd["train"].column_names == [
        "messages", "prompt_id", "id", "sample_index", "provider", "model", "model_version",
        "finish_reason", "template_id", "template_hash", "intent", "licence_rule",
        "licence_decision", "licence_entries", "terms_versions"]
    assert dd["train"].num_rows == res.rows["train"]
    assert sorted(set(dd["test"]["prompt_id"])) == want_test
    assert not set(dd["train"]["prompt_id"]) & set(dd["test"]["prompt_id"])
    first = dd["train"][0]
    assert first["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": f"question {first['prompt_id']}"},
        {"role": "assistant", "content": "<think>\nstep one\n</think>\n\nthe answer"}]
    assert first["id"] == f"{first['prompt_id']}:0" and first["sample_index"] == 0
    assert (first["provider"], first["model"], first["licence_rule"]) == (
        "openai", "gpt-test", "allow-research")
    assert first["licence_entries"] == ["openai-api"]

    card = (out / "README.md").read_text()
    assert "Declared intent: **research**. Decision: **allow**." in card  # the source's
    assert "## Export" in card and "reasoning **keep**" in card
    summary = json.loads((out / "export.json").read_text())
    assert summary["rows"] == res.rows and summary["skipped"] == {"status=error": 2}
    # the card's header now points at the exported files: the Hub loader reads them
    hub = datasets.load_dataset(str(out))
    assert {k: v.num_rows for k, v in hub.items()} == res.rows
    assert hub["test"][0]["messages"][-1]["role"] == "assistant"
    assert not list(out.glob(".staging-*"))


def test_hf_without_split_is_train_only(tmp_path):
    datasets = pytest.importorskip("datasets")
    run = write_run(tmp_path / "run", many(3, samples=1))
    res = export_run(run, format="hf", out=tmp_path / "hf")
    dd = datasets.load_from_disk(str(tmp_path / "hf"))
    assert list(dd) == ["train"] and dd["train"].num_rows == 3 and res.rows == {"train": 3}
    assert dd["train"]["id"] == ["p0:0", "p1:0", "p2:0"]


def test_hf_needs_datasets_with_a_clear_message(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", many(2))
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ConfigError, match=r"--format hf` needs datasets.*pip install datasets` "
                                          r"or `pip install 'synth\[export\]'`"):
        export_run(run, format="hf", out=tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


# ------------------------------------------------------------------------ chat-jsonl / TRL

def test_chat_jsonl_reads_through_trl(tmp_path):
    datasets = pytest.importorskip("datasets")
    data_utils = pytest.importorskip("trl.data_utils")
    from tests.tiny_models import build_tokenizer

    rows = many(30, reasoning="think hard") + [row("x", 0, status="error")]
    run = write_run(tmp_path / "run", rows)
    out = tmp_path / "chat"
    res = export_run(run, format="chat-jsonl", out=out, split=0.9)
    assert sorted(p.name for p in res.paths) == ["README.md", "export.json", "test.jsonl",
                                                 "train.jsonl"]
    train, test = read_jsonl(out / "train.jsonl"), read_jsonl(out / "test.jsonl")
    assert (len(train), len(test)) == (res.rows["train"], res.rows["test"])
    assert len(train) + len(test) == 60
    assert all(list(ex) == ["messages"] for ex in train + test)

    ds = datasets.load_dataset("json", data_files={"train": str(out / "train.jsonl"),
                                                   "test": str(out / "test.jsonl")})
    assert ds["train"].column_names == ["messages"]
    assert ds["train"].num_rows == res.rows["train"]
    tok = build_tokenizer()
    ex = ds["train"][0]
    assert data_utils.is_conversational(ex)
    text = data_utils.maybe_apply_chat_template(ex, tok)["text"]
    assert text == ("<|im_start|> system be brief <|im_end|> "
                    f"<|im_start|> user {ex['messages'][1]['content']} <|im_end|> "
                    "<|im_start|> assistant <think>\nthink hard\n</think>\n\nthe answer "
                    "<|im_end|> ")
    # TRL's own dataset-wide map, as SFTTrainer runs it
    mapped = ds["train"].map(data_utils.maybe_apply_chat_template,
                             fn_kwargs={"processing_class": tok})
    assert mapped.num_rows == res.rows["train"]
    assert all("the answer <|im_end|>" in t for t in mapped["text"])


def test_chat_jsonl_trains_with_trl_sft_trainer(tmp_path):
    pytest.importorskip("trl")
    datasets = pytest.importorskip("datasets")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tests.tiny_models import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tiny")
    run = write_run(tmp_path / "run", many(6, samples=1, response="one two three"))
    export_run(run, format="chat-jsonl", out=tmp_path / "chat")
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "chat" / "train.jsonl"),
                               split="train")
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.pad_token = tok.eos_token
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir), train_dataset=ds,
        processing_class=tok,
        args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1,
                       per_device_train_batch_size=2, report_to=[], save_strategy="no",
                       use_cpu=True, max_length=64, logging_steps=1))
    assert trainer.train_dataset.num_rows == 6
    assert "input_ids" in trainer.train_dataset.column_names
    trainer.train()


# ------------------------------------------------------------------------ OpenAI

def openai_problems(path):
    """OpenAI's fine-tuning data checks (cookbook "Data preparation and analysis for chat
    model fine-tuning" and the fine-tuning guide) for what synth writes: each line a JSON
    object with only ``messages``; each message only role / content (and weight on an
    assistant message, 0 or 1); roles system, user, assistant; string, non-empty content;
    at least one assistant message."""
    from openai.types.chat import ChatCompletionMessageParam
    from pydantic import TypeAdapter

    message_type = TypeAdapter(ChatCompletionMessageParam)
    problems = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        ex = json.loads(line)
        if not isinstance(ex, dict) or set(ex) != {"messages"}:
            problems.append((n, "keys"))
            continue
        msgs = ex["messages"]
        if not isinstance(msgs, list) or not msgs:
            problems.append((n, "missing_messages_list"))
            continue
        for m in msgs:
            if set(m) - {"role", "content", "weight"}:
                problems.append((n, "message_unrecognized_key"))
            if m.get("role") not in ("system", "user", "assistant"):
                problems.append((n, "unrecognized_role"))
            if not isinstance(m.get("content"), str) or not m["content"]:
                problems.append((n, "missing_content"))
            if "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1)):
                problems.append((n, "bad_weight"))
            message_type.validate_python({k: v for k, v in m.items() if k != "weight"})
        if not any(m.get("role") == "assistant" for m in msgs):
            problems.append((n, "example_missing_assistant_message"))
    return problems


def test_openai_finetune_is_valid_and_drops_reasoning_by_default(tmp_path):
    few_shot = [{"role": "user", "content": "two plus two"},
                {"role": "assistant", "content": "four"},
                {"role": "user", "content": "three plus three"}]
    rows = many(12, samples=1, reasoning="secret thoughts") + [
        row("fs", 0, messages=few_shot, response="six")]
    run = write_run(tmp_path / "run", rows)
    out = tmp_path / "oa"
    res = export_run(run, format="openai-finetune", out=out)
    assert res.rows == {"train": 13} and res.skipped == {}
    assert res.summary["reasoning"] == "drop"
    assert res.summary["token_counter"].startswith("estimate")  # tiktoken not installed here
    assert openai_problems(out / "train.jsonl") == []
    lines = read_jsonl(out / "train.jsonl")
    assert lines[0] == {"messages": [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": "question p0"},
                                     {"role": "assistant", "content": "the answer"}]}
    assert "secret" not in (out / "train.jsonl").read_text()
    # the request's own assistant turn is context, not a target: weight 0
    assert lines[-1]["messages"] == few_shot[:1] + [
        {"role": "assistant", "content": "four", "weight": 0}] + few_shot[2:] + [
        {"role": "assistant", "content": "six"}]
    assert res.warnings == []


def test_openai_skips_examples_over_the_token_limit(tmp_path):
    # estimate: sum(len(content) + 8) // 4 + 4 → short rows 17 tokens, the long one
    # (8 + 8) + (13 + 8) + (4000 + 8) = 4045 → 1011 + 4 = 1015
    rows = many(11, samples=1) + [row("long", 0, response="x" * 4000)]
    run = write_run(tmp_path / "run", rows)
    res = export_run(run, format="openai-finetune", out=tmp_path / "oa",
                     max_tokens_per_example=1000)
    assert res.rows == {"train": 11} and res.skipped == {"over 1000 tokens": 1}
    assert res.summary["tokens"] == {"train": {"total": 11 * 17, "max": 17}}
    assert "long" not in (tmp_path / "oa" / "train.jsonl").read_text()
    assert "x" * 4000 not in (tmp_path / "oa" / "train.jsonl").read_text()  # not truncated
    res = export_run(run, format="openai-finetune", out=tmp_path / "oa2",
                     max_tokens_per_example=1015)  # at the limit is within it
    assert res.rows == {"train": 12} and res.skipped == {}
    assert res.summary["tokens"]["train"]["max"] == 1015
    res = export_run(run, format="openai-finetune", out=tmp_path / "oa3",
                     max_tokens_per_example=1014)
    assert res.rows == {"train": 11} and res.skipped == {"over 1014 tokens": 1}


def test_openai_warns_under_ten_examples_and_on_kept_reasoning(tmp_path):
    run = write_run(tmp_path / "run", many(4, samples=1, reasoning="hmm"))
    res = export_run(run, format="openai-finetune", out=tmp_path / "oa", reasoning="keep")
    assert res.rows == {"train": 4}
    assert any("at least 10" in w for w in res.warnings)
    assert any("<think>" in w for w in res.warnings)
    assert read_jsonl(tmp_path / "oa" / "train.jsonl")[0]["messages"][-1]["content"] == \
        "<think>\nhmm\n</think>\n\nthe answer"


def test_openai_token_count_uses_tiktoken_when_present(tmp_path, monkeypatch):
    class Enc:
        def encode(self, text, disallowed_special=()):
            return text.split()  # one token a word

    fake = types.ModuleType("tiktoken")
    fake.get_encoding = lambda name: Enc() if name == "o200k_base" else None
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    run = write_run(tmp_path / "run", many(10, samples=1))
    res = export_run(run, format="openai-finetune", out=tmp_path / "oa")
    assert res.summary["token_counter"] == "tiktoken o200k_base"
    # 3 + per message 3 + words of role and content: system(1+2) user(1+2) assistant(1+2)
    assert res.summary["tokens"]["train"] == {"total": 10 * 21, "max": 21}


def test_openai_refuses_empty_content(tmp_path):
    bad = [{"role": "system", "content": ""}, {"role": "user", "content": "q"}]
    run = write_run(tmp_path / "run", many(3) + [row("e", 0, messages=bad)])
    with pytest.raises(InputError, match=r"traces.parquet:7: field 'messages': .*empty content"):
        export_run(run, format="openai-finetune", out=tmp_path / "oa")
    assert not (tmp_path / "oa").exists()
    export_run(run, format="chat-jsonl", out=tmp_path / "chat")  # TRL takes it


# ------------------------------------------------------------------------ split

def test_split_keeps_prompts_on_one_side_close_to_the_ratio_and_deterministic(tmp_path):
    run = write_run(tmp_path / "run", many(300, samples=3))
    a = export_run(run, format="chat-jsonl", out=tmp_path / "a", split=0.9, seed=0)
    b = export_run(run, format="chat-jsonl", out=tmp_path / "b", split=0.9, seed=0)
    c = export_run(run, format="chat-jsonl", out=tmp_path / "c", split=0.9, seed=1)
    for name in ("train.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "test.jsonl").read_bytes() != \
        (tmp_path / "c" / "test.jsonl").read_bytes()

    def prompts(d, name):
        return {ex["messages"][1]["content"] for ex in read_jsonl(tmp_path / d / name)}

    for d in ("a", "c"):
        assert not prompts(d, "train.jsonl") & prompts(d, "test.jsonl")
    want = sum(side(f"p{i}", 0.9, 0) == "test" for i in range(300))
    assert a.rows == {"train": 3 * (300 - want), "test": 3 * want}
    assert a.summary["prompts"] == {"train": 300 - want, "test": want}
    assert 0.06 <= want / 300 <= 0.14
    assert b.rows == a.rows and b.summary["prompts"] == a.summary["prompts"]
    want1 = sum(side(f"p{i}", 0.9, 1) == "test" for i in range(300))
    assert c.rows == {"train": 3 * (300 - want1), "test": 3 * want1}
    assert split_side("p7", 0.9, 0) == side("p7", 0.9, 0)


def test_rows_without_prompt_id_are_grouped_by_their_messages(tmp_path):
    src = tmp_path / "rows.jsonl"
    lines = [{"prompt": f"question {i}", "response": f"answer {i}.{k}"}
             for i in range(40) for k in range(2)]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = export_run(src, format="chat-jsonl", out=tmp_path / "out", split=0.7)
    train = read_jsonl(tmp_path / "out" / "train.jsonl")
    test = read_jsonl(tmp_path / "out" / "test.jsonl")
    q = {ex["messages"][0]["content"] for ex in train}
    assert not q & {ex["messages"][0]["content"] for ex in test}
    assert len(train) % 2 == 0 and len(test) % 2 == 0 and res.rows["test"] > 0
    assert train[0]["messages"] == [{"role": "user", "content": train[0]["messages"][0][
        "content"]}, {"role": "assistant", "content": train[0]["messages"][1]["content"]}]
    assert any("no README.md" in w for w in res.warnings)
    assert not (tmp_path / "out" / "README.md").exists()


# ------------------------------------------------------------------------ reasoning, system

def test_reasoning_keep_and_drop(tmp_path):
    run = write_run(tmp_path / "run", [row("a", reasoning="  because  "),
                                       row("b", reasoning=None), row("c", reasoning=" ")])
    keep = export_run(run, format="chat-jsonl", out=tmp_path / "keep")
    drop = export_run(run, format="chat-jsonl", out=tmp_path / "drop", reasoning="drop")
    assert keep.summary["reasoning"] == "keep" and drop.summary["reasoning"] == "drop"
    answers = [ex["messages"][-1]["content"] for ex in read_jsonl(tmp_path / "keep" /
                                                                  "train.jsonl")]
    assert answers == ["<think>\nbecause\n</think>\n\nthe answer", "the answer", "the answer"]
    answers = [ex["messages"][-1]["content"] for ex in read_jsonl(tmp_path / "drop" /
                                                                  "train.jsonl")]
    assert answers == ["the answer"] * 3
    with pytest.raises(ConfigError, match="--reasoning maybe"):
        export_run(run, format="chat-jsonl", out=tmp_path / "x", reasoning="maybe")


def test_system_prompt_goes_first_where_there_is_none(tmp_path):
    run = write_run(tmp_path / "run", [
        row("a"), row("b", messages=[{"role": "user", "content": "hi"}])])
    export_run(run, format="chat-jsonl", out=tmp_path / "out", system="you teach")
    a, b = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert a["messages"][0] == {"role": "system", "content": "be brief"}
    assert b["messages"] == [{"role": "system", "content": "you teach"},
                             {"role": "user", "content": "hi"},
                             {"role": "assistant", "content": "the answer"}]


# ------------------------------------------------------------------------ sources

def test_pipeline_run_prefers_curated_rows_and_carries_the_card(tmp_path):
    run = write_run(tmp_path / "pipe", many(5), card=CARD.replace("**allow**", "**warn**"))
    write_run(run / "curate", many(2), name="curated.parquet", card=None)
    res = export_run(run, format="chat-jsonl", out=tmp_path / "out")
    assert res.summary["source_kind"] == "pipeline-curated"
    assert res.summary["data_file"] == str(run / "curate" / "curated.parquet")
    assert res.rows == {"train": 4}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Decision: **warn**" in card  # the run's card, as curate/ has none
    assert "path: train.jsonl" in card and "traces.parquet" not in card.split("---")[1]
    # without curate/: the top-level traces
    (run / "curate" / "curated.parquet").unlink()
    res = export_run(run, format="chat-jsonl", out=tmp_path / "out")
    assert res.summary["source_kind"] == "pipeline-traces" and res.rows == {"train": 10}


def test_curate_output_dir_and_files(tmp_path):
    cur = write_run(tmp_path / "cur", many(3), name="curated.parquet")
    write_run(cur, many(9), name="rejects.parquet", card=None)  # never read
    res = export_run(cur, format="chat-jsonl", out=tmp_path / "o1")
    assert res.summary["source_kind"] == "curated" and res.rows == {"train": 6}
    res = export_run(cur / "curated.parquet", format="chat-jsonl", out=tmp_path / "o2")
    assert res.rows == {"train": 6} and (tmp_path / "o2" / "README.md").is_file()


def test_reexport_removes_its_own_stale_files_only(tmp_path):
    run = write_run(tmp_path / "run", many(30))
    out = tmp_path / "out"
    export_run(run, format="chat-jsonl", out=out, split=0.5)
    (out / "notes.txt").write_text("mine")
    assert (out / "test.jsonl").is_file()
    res = export_run(run, format="chat-jsonl", out=out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "export.json", "notes.txt",
                                                     "train.jsonl"]
    assert len(read_jsonl(out / "train.jsonl")) == 60 == res.rows["train"]


# ------------------------------------------------------------------------ errors

def test_out_may_not_be_the_source_folder(tmp_path):
    run = write_run(tmp_path / "run", many(2))
    before = sorted(p.name for p in run.iterdir())
    for src in (run, run / "traces.parquet"):
        with pytest.raises(ConfigError, match="--out .*is where input"):
            export_run(src, format="chat-jsonl", out=run)
    pipe = write_run(tmp_path / "pipe", many(2))
    write_run(pipe / "curate", many(2), name="curated.parquet")
    for out in (pipe, pipe / "curate"):
        with pytest.raises(ConfigError, match="is where input"):
            export_run(pipe, format="hf", out=out)
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize("setup, match", [
    (lambda d: d / "nope", "no such file or directory"),
    (lambda d: write_run(d / "c", many(2), name="rejects.parquet") / "rejects.parquet",
     "rows curation rejected"),
    (lambda d: write_run(d / "c", many(2), name="rejects.parquet"), "only rejects.parquet"),
    (lambda d: (d / "empty").mkdir() or d / "empty",
     "neither traces.parquet nor curated.parquet in this directory"),
    (lambda d: (d / "x.csv").write_text("a") and d / "x.csv", "not a .parquet or .jsonl"),
    (lambda d: (d / "x.parquet").write_text("junk") and d / "x.parquet", "cannot read rows"),
])
def test_bad_sources(tmp_path, setup, match):
    src = setup(tmp_path)
    with pytest.raises(InputError, match=match) as e:
        export_run(src, format="chat-jsonl", out=tmp_path / "out")
    assert e.value.exit_code == 3
    assert not (tmp_path / "out").exists()


def test_rows_carrying_drop_reason_are_refused(tmp_path):
    schema = TRACE_SCHEMA.append(pa.field("drop_reason", pa.string()))
    rows = [{**r, "drop_reason": "too short"} for r in many(2)]
    src = write_run(tmp_path / "r", rows, name="kept.parquet", schema=schema) / "kept.parquet"
    with pytest.raises(InputError, match="kept.parquet: field 'drop_reason': .*rejects"):
        export_run(src, format="hf", out=tmp_path / "out")
    jl = tmp_path / "r.jsonl"
    jl.write_text(json.dumps({"prompt": "q", "response": "a", "drop_reason": "x"}) + "\n")
    with pytest.raises(InputError, match=r"r.jsonl:1: field 'drop_reason'"):
        export_run(jl, format="chat-jsonl", out=tmp_path / "out")


def test_bad_rows_name_file_line_and_field(tmp_path):
    run = write_run(tmp_path / "run", many(2) + [row("z", response=None)])
    with pytest.raises(InputError,
                       match=r"run/traces.parquet:5: field 'response': this row has no "
                             "response"):
        export_run(run, format="chat-jsonl", out=tmp_path / "out")
    run2 = write_run(tmp_path / "run2", [row("a"), row("b", response="   ")])
    with pytest.raises(InputError, match=r"traces.parquet:2: field 'response'"):
        export_run(run2, format="openai-finetune", out=tmp_path / "out")
    run3 = write_run(tmp_path / "run3", [row("a", messages=[{"role": "tool", "content": "x"}])])
    with pytest.raises(InputError, match=r":1: field 'messages\[0\].role': role 'tool'"):
        export_run(run3, format="openai-finetune", out=tmp_path / "out")
    nomsg = pa.schema([f for f in TRACE_SCHEMA if f.name != "messages"])
    run4 = write_run(tmp_path / "run4", [{k: v for k, v in row("a").items()
                                          if k != "messages"}], schema=nomsg)
    with pytest.raises(InputError, match=r"traces.parquet: field 'messages': missing column"):
        export_run(run4, format="hf", out=tmp_path / "out")
    jl = tmp_path / "rows.jsonl"
    jl.write_text('{"prompt": "q", "response": "a"}\n\n{"prompt": "q"\n')
    with pytest.raises(InputError, match=r"rows.jsonl:3: not valid JSON"):
        export_run(jl, format="chat-jsonl", out=tmp_path / "out")
    jl.write_text('{"prompt": "q", "response": "a"}\n{"messages": [], "response": "a"}\n')
    with pytest.raises(InputError, match=r"rows.jsonl:2: field 'messages': needs a non-empty"):
        export_run(jl, format="chat-jsonl", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_all_rows_errored_is_an_error(tmp_path):
    run = write_run(tmp_path / "run", [row("a", status="error"), row("b", status="error")])
    with pytest.raises(InputError, match=r"no rows to export \(all 2 were skipped: "
                                         r"status=error 2\)"):
        export_run(run, format="chat-jsonl", out=tmp_path / "out")


@pytest.mark.parametrize("kw, match", [
    ({"format": "csv"}, "--format csv: must be one of hf, chat-jsonl, openai-finetune"),
    ({"format": "hf", "split": 1.0}, "--split 1.0: must be a fraction"),
    ({"format": "hf", "split": 0}, "--split 0: must be a fraction"),
    ({"format": "hf", "system": " "}, "--system"),
])
def test_bad_options(tmp_path, kw, match):
    run = write_run(tmp_path / "run", many(2))
    with pytest.raises(ConfigError, match=match) as e:
        export_run(run, out=tmp_path / "out", **kw)
    assert e.value.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused(tmp_path):
    run = write_run(tmp_path / "run", many(2))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is an existing file"):
        export_run(run, format="chat-jsonl", out=tmp_path / "f")


def test_result_type(tmp_path):
    run = write_run(tmp_path / "run", many(1))
    res = export_run(run, format="chat-jsonl", out=tmp_path / "out")
    assert isinstance(res, ExportResult) and res.out == tmp_path / "out"
    assert res.paths == [tmp_path / "out" / n for n in ("train.jsonl", "README.md",
                                                        "export.json")]


def test_split_that_leaves_a_side_empty_is_refused(tmp_path):
    run = write_run(tmp_path / "run", many(1))  # one prompt: one side must be empty
    seeds = {side("p0", 0.5, s): s for s in range(40)}
    assert set(seeds) == {"train", "test"}
    with pytest.raises(ConfigError, match=r"all 1 source prompts \(2 rows\) fell in train, none in "
                                          "test"):
        export_run(run, format="hf", out=tmp_path / "o", split=0.5, seed=seeds["train"])
    with pytest.raises(ConfigError, match="fell in test, none in train"):
        export_run(run, format="chat-jsonl", out=tmp_path / "o", split=0.5,
                   seed=seeds["test"])
    assert not (tmp_path / "o").exists()
