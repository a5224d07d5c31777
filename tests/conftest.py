import contextlib
import json
from pathlib import Path

import pytest

from tests.provider_server import ProviderServer

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def two_node_ray(**worker: object):
    """A Ray head and a worker node on this machine, one CPU each (``worker``: more of the
    worker's node arguments, e.g. ``env_vars``), this process connected; stopped after."""
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 200 * 2**20, "include_dashboard": False})
    c.add_node(num_cpus=1, object_store_memory=200 * 2**20, **worker)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="session")
def _server():
    with ProviderServer() as s:
        yield s


@pytest.fixture
def server(_server):
    """A loopback OpenAI + Anthropic server, fresh state per test."""
    _server.reset()
    yield _server
    _server.reset()


@pytest.fixture
def prompts_file(tmp_path):
    def make(lines, name="in.jsonl"):
        p = tmp_path / name
        p.write_text("".join(json.dumps(x) + "\n" for x in lines))
        return p
    return make


@pytest.fixture
def price_file(tmp_path):
    """Prices for the loopback models (the built-in table only prices real API hosts)."""
    p = tmp_path / "prices.yaml"
    p.write_text("models:\n"
                 "  - {provider: openai, match: gpt-test, input: 1.0, cached_input: 0.5, "
                 "output: 2.0}\n"
                 "  - {provider: anthropic, match: claude-test, input: 3.0, output: 15.0}\n")
    return p


def logprobs_bytes(parquet_path) -> int:
    """Compressed bytes of all logprobs columns in a traces file."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(parquet_path).metadata
    return sum(meta.row_group(g).column(c).total_compressed_size
               for g in range(meta.num_row_groups) for c in range(meta.num_columns)
               if meta.row_group(g).column(c).path_in_schema.startswith("logprobs"))
