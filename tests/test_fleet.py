"""Many servers behind one teacher: ``--base-url A,B,C`` (a fleet of replicas serving the same
model). Requests go to the least-loaded server in rotation; one that fails is taken out and
tried again later; every prompt is answered once, and each row says which server answered."""

import json
import threading

import pyarrow.parquet as pq
import pytest

import synth
from synth.errors import ConfigError, TeacherUnreachableError
from tests.provider_server import ProviderServer

LICENCE = dict(intent="research", accept_terms=("unknown",))


def prompts(tmp_path, n, extra=""):
    p = tmp_path / f"in-{n}.jsonl"
    p.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"question {i}{extra}"}) + "\n"
                         for i in range(n)))
    return p


def gen(urls, src, out, **kw):
    kw.setdefault("concurrency", 8)
    return synth.generate(input=src, teacher="openai:gpt-test", out=out,
                          base_url=",".join(f"{u}/v1" for u in urls), progress=False,
                          retry_initial_delay=0.01, **LICENCE, **kw)


def free_url():
    """The URL of a server that was just stopped: nothing listens there."""
    with ProviderServer() as s:
        url, port = s.url, int(s.url.rsplit(":", 1)[1])
    return url, port


def test_a_server_that_dies_mid_run_loses_no_prompt(tmp_path):
    n = 120
    with ProviderServer() as a, ProviderServer() as b:
        answered, stopper = [], []

        def die_after_ten(text, body):  # b dies with requests in flight
            answered.append(text)
            if len(answered) == 10:
                stopper.append(threading.Thread(target=b.stop))
                stopper[0].start()
            return None  # the usual answer

        b.responder = die_after_ten
        res = gen([a.url, b.url], prompts(tmp_path, n, " [[delay:0.01]]"), tmp_path / "out")
        stopper[0].join()
    rows = res.table().to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * n
    assert len({r["id"] for r in rows}) == n
    by = {r["served_by"] for r in rows}
    assert by == {f"{a.url}/v1", f"{b.url}/v1"}  # b answered until it died, a the rest
    assert {r["base_url"] for r in rows} == {f"{a.url}/v1"}  # the fleet's name: its first
    assert res.summary["retries"]  # the requests b dropped were asked again, of a


def test_a_dead_server_is_taken_out_at_start_and_back_in_rotation_when_it_returns(tmp_path,
                                                                                 caplog):
    url_b, port_b = free_url()
    n = 300
    with ProviderServer() as a:
        back = {}
        timer = threading.Timer(0.3, lambda: back.setdefault(
            "b", ProviderServer(port=port_b).start()))
        timer.start()
        try:
            res = gen([a.url, url_b], prompts(tmp_path, n, " [[delay:0.02]]"),
                      tmp_path / "out", concurrency=4)
        finally:
            timer.join()
            if "b" in back:
                back["b"].stop()
    rows = res.table().to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * n
    served = [r["served_by"] for r in rows]
    assert served.count(f"{url_b}/v1") > 0  # it came back and took work
    assert "cannot connect" in caplog.text and "out of rotation" in caplog.text


def test_the_least_loaded_server_gets_the_work(tmp_path):
    with ProviderServer() as fast, ProviderServer(latency_s=0.15) as slow:
        res = gen([slow.url, fast.url], prompts(tmp_path, 40), tmp_path / "out",
                  concurrency=4)
    served = [r["served_by"] for r in res.table().to_pylist()]
    assert served.count(f"{fast.url}/v1") > 3 * served.count(f"{slow.url}/v1") > 0


def test_answers_are_cached_under_the_fleets_name_whichever_server_answered(tmp_path):
    src = prompts(tmp_path, 20)
    with ProviderServer() as a, ProviderServer() as b:
        gen([a.url, b.url], src, tmp_path / "out")
        a.reset()
        again = gen([a.url], src, tmp_path / "out")  # b retired: the fleet is named by a
        assert again.summary["from_cache"] == 20 and a.n_requests == 0
    t = pq.read_table(tmp_path / "out" / "traces.parquet")
    assert t.column("served_by").null_count == 0  # from the cache: who answered, kept


def test_no_server_reachable_names_each_and_a_fleet_is_one_kind_of_server(tmp_path,
                                                                         price_file):
    (u1, _), (u2, _) = free_url(), free_url()
    with pytest.raises(TeacherUnreachableError) as e:
        gen([u1, u2], prompts(tmp_path, 2), tmp_path / "out")
    assert f"{u1}/v1: " in str(e.value) and f"{u2}/v1: " in str(e.value)
    with ProviderServer() as a:
        other = a.url.replace("127.0.0.1", "localhost")
        price = tmp_path / "host-price.yaml"
        price.write_text("models:\n  - {provider: openai, host: 127.0.0.1, match: gpt-test, "
                         "input: 1.0, output: 2.0}\n")
        with pytest.raises(ConfigError, match="priced apart"):
            gen([a.url, other], prompts(tmp_path, 2), tmp_path / "out2", price_file=price)
        with pytest.raises(ConfigError, match="--batch: give one --base-url"):
            gen([a.url, other], prompts(tmp_path, 2), tmp_path / "out3", batch=True)
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_a_pipeline_list_and_a_comma_list_are_one_option():
    from synth.generate.config import GenerateConfig

    a = GenerateConfig(input="x", teacher="openai:m", out="o",
                       base_urls=["http://a:1/v1", "http://b:2/v1"])
    b = GenerateConfig(input="x", teacher="openai:m", out="o",
                       base_url="http://a:1/v1, http://b:2/v1")
    assert a.base_url == b.base_url == "http://a:1/v1,http://b:2/v1"
    assert a.fleet == ["http://a:1/v1", "http://b:2/v1"]
    with pytest.raises(ValueError, match="named twice"):
        GenerateConfig(input="x", teacher="openai:m", out="o",
                       base_url="http://a:1/v1,http://a:1/v1")
