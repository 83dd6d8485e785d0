"""Offline tokenising and lemmatising with NLTK.

Jeeves must never download anything at run time, yet NLTK's ``WordNetLemmatizer`` reads the
WordNet database through ``nltk.data``. The package therefore ships a *lemmatiser-only* WordNet
subset in ``jeeves/model/nlp_data/corpora/wordnet.zip`` (built by :func:`build_wordnet_subset` from
Debian's ``wordnet-base``): the exception lists, ``lexnames``, the index files without their
pointer symbols, and a ``data.adj`` stub carrying only the licence header and the
adjective-satellite offsets the reader scans on start. That is everything ``morphy`` consults,
at 1.7 MB instead of ~30 MB, and it makes a plain ``pip install`` work without apt.

Synset lookups (definitions, hypernyms) are *not* available from this subset; Jeeves never
uses them. Tokenising uses a regexp tokenizer, so no punkt model is needed either.
"""

from __future__ import annotations

import logging
import zipfile
from functools import lru_cache
from pathlib import Path

import nltk
from nltk.tokenize import RegexpTokenizer

logger = logging.getLogger(__name__)

NLP_DATA_DIR = Path(__file__).resolve().parent / "nlp_data"
WORDNET_ZIP = NLP_DATA_DIR / "corpora" / "wordnet.zip"

_WORDNET_FILES = ("lexnames", "index.noun", "index.verb", "index.adj", "index.adv",
                  "noun.exc", "verb.exc", "adj.exc", "adv.exc")

# Words, clock times ("10:30", "3pm"), numbers, and the punctuation that carries meaning here.
_TOKENIZER = RegexpTokenizer(r"\d{1,2}:\d{2}(?:\s?[ap]\.?m\b\.?)?|\d+\s?[ap]\.?m\b\.?|[a-z]+(?:'[a-z]+)?|\d+|[?!$@]")


def ensure_nltk_data() -> None:
    """Put the shipped data first on NLTK's search path, so lemmas never depend on the host."""
    root = str(NLP_DATA_DIR)
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)


@lru_cache(maxsize=1)
def _lemmatizer():
    ensure_nltk_data()
    from nltk.stem import WordNetLemmatizer

    lemmatizer = WordNetLemmatizer()
    try:
        lemmatizer.lemmatize("meetings")
    except LookupError as exc:  # pragma: no cover - only when the package data is missing
        from jeeves.errors import ModelError

        raise ModelError(
            f"NLTK WordNet data not found in {WORDNET_ZIP}; reinstall Jeeves (the file is package data)"
        ) from exc
    return lemmatizer


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    """Noun lemma, else verb lemma: no POS tagger is shipped, and this order keeps
    "meetings"→"meeting" while still mapping "met"/"meets"→"meet"."""
    lem = _lemmatizer()
    noun = lem.lemmatize(word, "n")
    if noun != word:
        return noun
    return lem.lemmatize(word, "v")


def tokenize(text: str) -> list[str]:
    """Lower-cased tokens; clock times kept whole so "3pm" and "10:30" survive as features."""
    return [t.replace(" ", "").replace(".", "") if t[0].isdigit() else t for t in _TOKENIZER.tokenize(text.lower())]


def lemmatize_tokens(tokens: list[str]) -> list[str]:
    return [lemma(t) if t.isalpha() and len(t) > 2 else t for t in tokens]


def analyze(text: str) -> list[str]:
    """Tokens then lemmas; the analyzer the word TF-IDF features are built on."""
    return lemmatize_tokens(tokenize(text))


def build_wordnet_subset(source: Path = Path("/usr/share/wordnet"), dest: Path = WORDNET_ZIP) -> Path:
    """Write the lemmatiser-only WordNet zip from a full WordNet 3.0 directory.

    Index lines keep lemma, part of speech and synset offsets but drop the pointer symbols
    (morphy only asks whether a lemma exists for a part of speech); ``lexnames`` is written
    when the source lacks it (Debian's ``wordnet-base`` does).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in _WORDNET_FILES:
            path = source / name
            if name == "lexnames":
                text = path.read_text() if path.exists() else _LEXNAMES
            elif name.startswith("index."):
                out = []
                for line in path.read_text(encoding="latin-1").splitlines():
                    if line.startswith(" "):
                        continue
                    fields = line.split()
                    n_synsets, n_pointers = int(fields[2]), int(fields[3])
                    offsets = fields[6 + n_pointers:6 + n_pointers + n_synsets]
                    out.append(f"{fields[0]} {fields[1]} {len(offsets)} 0 {len(offsets)} 0 {' '.join(offsets)}")
                text = "\n".join(out) + "\n"
            else:
                text = path.read_text(encoding="latin-1")
            zf.writestr(f"wordnet/{name}", text)
        # data.adj stub: licence header (carries the version line) + satellite synsets only.
        header, sats = [], []
        for line in (source / "data.adj").read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                header.append(line)
            else:
                fields = line.split(maxsplit=3)
                if len(fields) >= 3 and fields[2] == "s":
                    sats.append(f"{fields[0]} {fields[1]} s")
        zf.writestr("wordnet/data.adj", "\n".join(header + sats) + "\n")
        for pos in ("noun", "verb", "adv"):
            zf.writestr(f"wordnet/data.{pos}", "\n".join(header) + "\n")
        # NLTK 3.10 maps sense keys between versions on start; an empty index makes that a no-op.
        zf.writestr("wordnet/index.sense", "")
    logger.info("wrote %s", dest)
    return dest


_LEXNAMES = "\n".join(
    f"{i:02d}\t{name}\t{cat}"
    for i, (name, cat) in enumerate(
        [("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
         ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
         ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1),
         ("noun.food", 1), ("noun.group", 1), ("noun.location", 1), ("noun.motive", 1),
         ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1), ("noun.plant", 1),
         ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1),
         ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1),
         ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2),
         ("verb.competition", 2), ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2),
         ("verb.emotion", 2), ("verb.motion", 2), ("verb.perception", 2), ("verb.possession", 2),
         ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2), ("adj.ppl", 3)]
    )
) + "\n"
