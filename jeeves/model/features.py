"""The feature union: email documents in, one sparse matrix out.

The subject, the new text and the quoted history are separate inputs (``jeeves.model.text_fields``),
so "lunch" in a quoted message does not look like a request. Each is read as lemmatised word
n-grams and character n-grams (TF-IDF), beside the rule-shaped cues of ``jeeves.model.cues``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import MaxAbsScaler

from jeeves.model.cues import ContextCues, CueFeatures, MetaFeatures
from jeeves.model.nlp import analyze
from jeeves.model.text_fields import FieldText, JoinedText


def lemma_analyzer(text: str) -> list[str]:
    """Module-level so fitted vectorizers pickle."""
    return analyze(text)


class _TfidfBranch(BaseEstimator, TransformerMixin):
    """A TF-IDF vectorizer as a transformer whose settings are grid params; subclasses say which vectorizer."""

    def _vectorizer(self) -> TfidfVectorizer:
        raise NotImplementedError

    def fit(self, texts, y=None):
        self.vectorizer_ = self._vectorizer()
        self.vectorizer_.fit(texts)
        return self

    def transform(self, texts):
        return self.vectorizer_.transform(texts)

    def get_feature_names_out(self, input_features=None):
        return self.vectorizer_.get_feature_names_out()


class LemmaNgrams(_TfidfBranch):
    """TF-IDF over lemmatised word n-grams; a thin wrapper so n-gram range and pruning are grid params."""

    def __init__(self, ngram_range=(1, 3), min_df=2, max_features=50_000, sublinear_tf=True):
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf

    def _ngrams(self, text: str) -> list[str]:
        tokens = lemma_analyzer(text)
        lo, hi = self.ngram_range
        out = []
        for n in range(lo, hi + 1):
            out.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        return out

    def _vectorizer(self) -> TfidfVectorizer:
        return TfidfVectorizer(analyzer=self._ngrams, min_df=self.min_df, max_features=self.max_features,
                               sublinear_tf=self.sublinear_tf, dtype=np.float32)


class CharNgrams(_TfidfBranch):
    """TF-IDF over character n-grams inside word boundaries: robust to typos ("mtg", "tmrw")."""

    def __init__(self, ngram_range=(2, 5), min_df=3, max_features=50_000):
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_features = max_features

    def _vectorizer(self) -> TfidfVectorizer:
        return TfidfVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, lowercase=True,
                               min_df=self.min_df, max_features=self.max_features, sublinear_tf=True,
                               dtype=np.float32)


def _text_branch(field: str, vectorizer) -> Pipeline:
    return Pipeline([("text", FieldText(field)), ("tfidf", vectorizer)])


def build_features(*, word_ngrams=(1, 3), char_ngrams=(2, 5), use_char: bool = True, use_cues: bool = True,
                   use_quoted: bool = False) -> FeatureUnion:
    """The full feature union. Names are prefixed by branch, which :meth:`explain` shows."""
    parts = [
        ("subject", _text_branch("subject", LemmaNgrams(ngram_range=(1, 2), min_df=2))),
        ("new", _text_branch("new_text", LemmaNgrams(ngram_range=word_ngrams, min_df=2))),
    ]
    if use_char:
        parts.append(("char", _text_branch("new_text", CharNgrams(ngram_range=char_ngrams))))
    if use_quoted:
        parts.append(("quoted", _text_branch("quoted_text", LemmaNgrams(ngram_range=(1, 1), min_df=3,
                                                                            max_features=5000))))
    if use_cues:
        parts.append(("cues", Pipeline([("cues", CueFeatures("new_text")), ("scale", MaxAbsScaler())])))
        parts.append(("subjcues", Pipeline([("cues", CueFeatures("subject", count_sentences=False)), ("scale", MaxAbsScaler())])))
        parts.append(("quotedcues", Pipeline([("cues", CueFeatures("quoted_text")), ("scale", MaxAbsScaler())])))
        parts.append(("context", Pipeline([("cues", ContextCues()), ("scale", MaxAbsScaler())])))
    parts.append(("meta", MetaFeatures()))
    return FeatureUnion(parts)


def baseline_features() -> Pipeline:
    """The plain baseline a user would try first: word 1–2-grams over subject + whole body."""
    return Pipeline([("text", JoinedText()), ("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2,
                                                                       sublinear_tf=True))])
