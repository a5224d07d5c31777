"""Templates render untrusted seed data inside Jinja2's immutable sandbox: a template that
reaches for Python internals is refused with file, line and field, seed data is never
evaluated as template code, and a recipe whose template tries to escape sends nothing."""

import json

import pytest

from synth.errors import InputError
from synth.templates import parse_template

HEAD = "---\nid: t/x\ndescription: d\nversion: 1\nvariables: [prompt]\n---\n"

ESCAPES = [
    "{{ prompt.__class__.__mro__[1].__subclasses__() }}",
    "{{ prompt.__class__.__base__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].system('touch /tmp/pwned') }}",
    "{{ self._TemplateReference__context }}",
    "{{ ''.__class__.__mro__ }}",
    "{% set x = prompt.__init__ %}{{ x }}",
    "{{ '{0.__class__.__mro__}'.format(prompt) }}",   # str.format is sandboxed too
    "{{ namespace.__init__.__globals__ }}",
    "{% set l = [1] %}{{ l.append(2) }}",   # immutable: lists cannot be changed either
]


@pytest.mark.parametrize("body", ESCAPES)
def test_escape_attempts_are_refused_with_file_line_and_field(tmp_path, body):
    path = tmp_path / "evil.j2"
    t = parse_template(HEAD + "line one\n" + body + "\n", path=str(path))
    with pytest.raises(InputError) as e:
        t.render(prompt="hello")
    err = e.value
    assert err.path == str(path) and err.field == "body" and err.line == 8, str(err)
    assert "render failed" in str(err)


def test_seed_data_is_data_not_template_code():
    t = parse_template(HEAD + "Q: {{ prompt }}\n", path="t.j2")
    evil = "{{ 7*7 }} {% for x in range(3) %}x{% endfor %} {{ cycler.__init__ }}"
    (msg,) = t.render(prompt=evil)
    assert msg["content"] == "Q: " + evil  # rendered verbatim, never evaluated


def test_a_recipe_whose_template_escapes_sends_nothing(server, tmp_path):
    from synth.pipeline import run_pipeline

    (tmp_path / "evil.j2").write_text(
        HEAD + "{{ cycler.__init__.__globals__.os.popen('id').read() }}\n")
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "prompt": "hi"}) + "\n")
    (tmp_path / "p.yaml").write_text(f"""\
name: evil
teacher: openai:gpt-test
accept_terms: [unknown]
options: {{base_url: "{server.url}/v1"}}
generate:
  - name: g
    recipe: responses
    input: in.jsonl
    template: evil.j2
report: {{vendi: false}}
""")
    with pytest.raises(InputError, match="render failed") as e:
        run_pipeline(tmp_path / "p.yaml", out=tmp_path / "run", progress=False)
    assert "evil.j2:7" in str(e.value)
    assert server.n_requests == 0
    assert not (tmp_path / "run" / "generate" / "g" / "traces.parquet").exists()
