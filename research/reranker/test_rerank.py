"""The reranker serves what its card describes: the same text as training, truncated the same,
combined with the first stage by the stored weights, and never with files it was not measured with.

A tiny reranker is built here (a real ONNX graph run by onnxruntime, a real WordPiece tokenizer):
its score is the mean, over the tokens it reads, of a per-token weight in which only "meet"
counts, so what the reranker reads shows in its score.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
onnx = pytest.importorskip("onnx")

from jeeves.errors import ModelError  # noqa: E402
from jeeves.rerank import CARD_NAME, Reranker, logit  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "meet", "can", "we", "thanks", "for", "lunch", "today", "hello", "x"]
MEET_WEIGHT = 6.0
MAX_LEN = 8
STACK = {"first_stage": 0.8, "reranker": 1.5, "intercept": -2.0}


@dataclass
class Doc:
    subject: str
    new_text: str


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny_model(path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    weights = np.zeros((len(VOCAB), 1), dtype=np.float32)
    weights[VOCAB.index("meet"), 0] = MEET_WEIGHT
    nodes = [
        helper.make_node("Gather", ["token_weight", "input_ids"], ["per_token3"]),
        helper.make_node("Squeeze", ["per_token3", "axis2"], ["per_token"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["per_token", "mask"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axis1"], ["count"], keepdims=0),
        helper.make_node("Div", ["total", "count"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_reranker",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        initializer=[numpy_helper.from_array(weights, "token_weight"),
                     numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
                     numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _tiny_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", VOCAB.index("[CLS]")), ("[SEP]", VOCAB.index("[SEP]"))])
    tokenizer.save(str(path))


@pytest.fixture
def reranker_dir(tmp_path: Path) -> Path:
    _tiny_model(tmp_path / "reranker.int8.onnx")
    _tiny_tokenizer(tmp_path / "tokenizer.json")
    card = {"kind": "jeeves-reranker", "format": 1, "model": "reranker.int8.onnx", "tokenizer": "tokenizer.json",
            "max_len": MAX_LEN, "stack": STACK,
            "sha256": {n: _sha256(tmp_path / n) for n in ("reranker.int8.onnx", "tokenizer.json")}}
    (tmp_path / CARD_NAME).write_text(json.dumps(card))
    return tmp_path


def test_the_reranker_reads_the_subject_and_the_new_text(reranker_dir):
    reranker = Reranker(reranker_dir)
    plain, in_text, in_subject = reranker.scores([Doc("hello", "thanks for lunch"), Doc("hello", "can we meet"),
                                                  Doc("meet", "thanks for lunch")])
    assert plain == pytest.approx(0.0)
    # [CLS] hello can we meet [SEP]: one "meet" in the six tokens read.
    assert in_text == pytest.approx(MEET_WEIGHT / 6, rel=1e-5)
    assert in_subject > plain


def test_words_past_the_token_limit_are_not_read(reranker_dir):
    reranker = Reranker(reranker_dir)
    early, late = reranker.scores([Doc("", "meet " + "x " * 20), Doc("", "x " * 20 + "meet")])
    # Truncated to MAX_LEN tokens ([CLS] + 6 words + [SEP]) as in training.
    assert early == pytest.approx(MEET_WEIGHT / MAX_LEN, rel=1e-5)
    assert late == pytest.approx(0.0)


def test_a_document_scores_the_same_alone_as_in_a_batch_of_longer_ones(reranker_dir):
    reranker = Reranker(reranker_dir, batch_size=4)
    docs = [Doc("lunch", "can we meet"), Doc("", "x " * 30), Doc("meet", ""), Doc("today", "thanks x x meet"),
            Doc("", ""), Doc("hello", "meet meet")]
    together = reranker.scores(docs)
    alone = np.array([reranker.scores([d])[0] for d in docs])
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-7)
    assert reranker.scores([]).shape == (0,)


def test_the_stack_combines_both_stages_with_the_card_weights(reranker_dir):
    reranker = Reranker(reranker_dir)
    docs = [Doc("hello", "can we meet"), Doc("hello", "thanks for lunch")]
    first = np.array([0.3, 0.3])
    combined = reranker.probabilities(docs, first)
    z = STACK["first_stage"] * logit(first) + STACK["reranker"] * reranker.scores(docs) + STACK["intercept"]
    np.testing.assert_allclose(combined, 1 / (1 + np.exp(-z)))
    # Same first-stage probability: the reranker alone decides the order.
    assert combined[0] > combined[1]
    # A surer first stage raises the combined probability (positive weight on it).
    assert reranker.combine([0.9], [0.0])[0] > reranker.combine([0.1], [0.0])[0]
    with pytest.raises(ValueError, match="2 documents"):
        reranker.probabilities(docs, [0.3])


def test_a_changed_model_file_is_refused(reranker_dir):
    model = reranker_dir / "reranker.int8.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match the sha256"):
        Reranker(reranker_dir)


def test_a_directory_without_a_card_is_refused_in_one_line(tmp_path):
    with pytest.raises(ModelError, match="not a reranker directory") as info:
        Reranker(tmp_path)
    assert "\n" not in str(info.value)


def test_a_card_of_another_format_is_refused(reranker_dir):
    card_path = reranker_dir / CARD_NAME
    card = json.loads(card_path.read_text())
    card["format"] = 99
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="retrain the reranker"):
        Reranker(reranker_dir)
