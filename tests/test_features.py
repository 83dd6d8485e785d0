"""Each feature transformer on hand-made emails, plus the offline lemmatiser."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from jeeves.model.cues import CueFeatures, MetaFeatures
from jeeves.model.features import CharNgrams, LemmaNgrams, build_features
from jeeves.model.nlp import WORDNET_ZIP, analyze, lemma, tokenize
from jeeves.model.text_fields import FieldText, JoinedText, new_text_of, quoted_text_of
from jeeves.parsing import EmailDocument


def doc(new_text="", subject="", quoted="", **kw) -> EmailDocument:
    return EmailDocument(subject=subject, new_text=new_text, quoted_text=quoted, **kw)


REQUEST = doc("Can we meet for lunch next Tuesday? Let me know what works for you.", "lunch?")
PLACED = doc("Please plan to attend the staff meeting Monday in EB 3321.", "Staff meeting")
CALL = doc("Conference call tomorrow at 10, dial 1-800-555-1212, passcode 1234.", "call")
DOCS = [REQUEST, PLACED, CALL, doc("Here is the report you asked for.", "report")]


def test_lemmatiser_works_offline_from_shipped_data(monkeypatch):
    import nltk

    monkeypatch.setattr(nltk, "download", lambda *a, **k: pytest.fail("must not download"))
    assert WORDNET_ZIP.is_file()
    assert lemma("meetings") == "meeting"
    assert lemma("lunches") == "lunch"
    assert lemma("met") == "meet"
    assert analyze("The Meetings were held") == ["the", "meeting", "be", "hold"]


def test_shipped_wordnet_is_small():
    assert WORDNET_ZIP.stat().st_size < 3_000_000


def test_tokenize_keeps_clock_times_and_question_marks():
    tokens = tokenize("Lunch at 12:30 or 3pm?")
    assert "12:30" in tokens and "3pm" in tokens and "?" in tokens


def test_field_text_selects_and_truncates():
    assert FieldText("subject").fit(DOCS).transform(DOCS)[0] == "lunch?"
    assert FieldText("new_text", max_chars=5).fit(DOCS).transform(DOCS)[0] == "Can w"
    with pytest.raises(ValueError):
        FieldText("nope").fit(DOCS)


def test_new_text_cuts_history_the_parser_missed():
    d = doc("I can't make it.-----Original Message-----\nFrom: x\nlunch tomorrow?")
    assert new_text_of(d) == "I can't make it."
    assert "lunch tomorrow" in quoted_text_of(d)


def test_lemma_ngrams_builds_lemmatised_trigrams():
    vec = LemmaNgrams(ngram_range=(1, 3), min_df=1).fit(["the meetings were held", "meetings again"])
    names = set(vec.get_feature_names_out())
    assert "meeting" in names and "the meeting be" in names and "meetings" not in names
    assert vec.transform(["meetings"]).shape == (1, len(names))


def test_char_ngrams_fit_vocabulary_in_fit():
    vec = CharNgrams(ngram_range=(2, 3), min_df=1).fit(["lunch", "mtg"])
    assert "mt" in set(vec.get_feature_names_out())
    assert vec.transform(["lunch"]).nnz > 0


def _cue(names, row, key):
    return row[list(names).index(key)]


def test_cue_features_encode_the_labelling_rules():
    cues = CueFeatures().fit(DOCS)
    x = cues.transform(DOCS).toarray()
    names = cues.get_feature_names_out()
    assert x.shape == (len(DOCS), len(names)) and (x >= 0).all()
    req, placed, call, report = x
    assert _cue(names, req, "pair:meet+request+noplace") == 1
    assert _cue(names, placed, "pair:meet+request+noplace") == 0
    assert _cue(names, placed, "cue:place_named") > 0
    assert _cue(names, call, "cue:call") > 0
    assert _cue(names, req, "cue:question") > 0
    assert _cue(names, report, "cue:meet_noun") == 0


def test_cue_features_see_proper_noun_venues():
    cues = CueFeatures().fit([])
    row = cues.transform([doc("See you at Ninfa's at noon.")]).toarray()[0]
    assert _cue(cues.get_feature_names_out(), row, "cue:place_proper") > 0


def test_meta_features_reply_forward_recipients():
    docs = [doc("hi", is_reply=True, n_recipients=30), doc("x" * 1000, is_forward=True)]
    meta = MetaFeatures().fit(docs)
    x = meta.transform(docs).toarray()
    names = list(meta.get_feature_names_out())
    assert x[0, names.index("meta:is_reply")] == 1 and x[1, names.index("meta:is_reply")] == 0
    assert x[1, names.index("meta:is_forward")] == 1
    assert x[0, names.index("meta:many_recipients")] == 1
    assert x[1, names.index("meta:new_len_log")] > x[0, names.index("meta:new_len_log")]


def test_joined_text_reads_subject_and_whole_body():
    assert JoinedText().fit_transform([doc("new", "subj", "old")]) == ["subj\nnew\nold"]


def test_feature_union_names_match_columns_and_pickles():
    union = build_features(use_char=True)
    x = union.fit_transform(DOCS * 2)
    names = union.get_feature_names_out()
    assert x.shape[1] == len(names)
    assert any(n.startswith("new__") for n in names) and any(n.startswith("subject__") for n in names)
    clone = pickle.loads(pickle.dumps(union))
    assert np.allclose(clone.transform(DOCS).toarray(), union.transform(DOCS).toarray())


def test_subject_cues_can_skip_the_sentence_count():
    # A subject is one sentence: its count would be a constant that only shifts the intercept.
    with_count = CueFeatures("subject").fit(DOCS)
    without = CueFeatures("subject", count_sentences=False).fit(DOCS)
    assert len(without.get_feature_names_out()) == len(with_count.get_feature_names_out()) - 1
    assert without.transform(DOCS).shape[1] == len(without.get_feature_names_out())
