"""Re-pickle the shipped model after the feature classes moved into ``jeeves.model`` (issue 14).

Why this exists: a joblib file names every class it holds by module path. The shipped model was
pickled when the feature transformers lived in ``jeeves.features`` (``FieldText``,
``LemmaNgrams``, ``CharNgrams``, ``CueFeatures``, ``ContextCues``, ``MetaFeatures``); they now
live in ``jeeves.model.text_fields``, ``jeeves.model.features`` and ``jeeves.model.cues``, so
the old file no longer unpickles. Retraining would change the model; this script does not. It
loads the file with the old module names aliased to the new classes, dumps the very same fitted
objects again (so the pickle names the new paths), writes the new sha256 into the model card
(``jeeves.model.registry.verify_model`` refuses a file whose hash differs from its card's), and
checks that the re-pickled model, loaded the normal way, gives bit-identical scores to the old
one on labelled corpus messages.

One-off, kept for the record and for any other model pickled before the move:

    .venv/bin/python scripts/repickle_model.py [--models-dir models] [--version V] [--check 400]
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import types
from pathlib import Path

import joblib
import numpy as np

from jeeves.model import cues, features, nlp, text_fields
from jeeves.model.corpus import DEFAULT_CORPORA, load_corpus
from jeeves.model.registry import file_sha256, write_card
from jeeves.model.serving import load_model

REPO = Path(__file__).resolve().parent.parent

#: Old module path -> the modules whose names it used to hold.
MOVED = {"jeeves.features": (text_fields, cues, features), "jeeves.nlp": (nlp,)}


def alias_old_modules() -> None:
    """Make ``jeeves.features`` & co. resolve to the moved classes, for unpickling only."""
    for old, modules in MOVED.items():
        alias = types.ModuleType(old)
        for module in modules:
            alias.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
        sys.modules[old] = alias


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--version", help="model version (default: the one CURRENT names)")
    parser.add_argument("--check", type=int, default=400, help="corpus messages to compare scores on")
    args = parser.parse_args(argv)

    models_dir = args.models_dir
    version = args.version or (models_dir / "CURRENT").read_text().strip()
    model_path, card_path = models_dir / f"{version}.joblib", models_dir / f"{version}.json"
    card = json.loads(card_path.read_text())
    if file_sha256(model_path) != card["sha256"]:
        raise SystemExit(f"{model_path.name} does not match its card; refusing to re-pickle an unknown file")

    corpus = load_corpus(DEFAULT_CORPORA[0])
    documents = corpus.documents[: args.check]

    alias_old_modules()
    old_pipeline = joblib.load(model_path)
    before = old_pipeline.predict_proba(documents)[:, 1]
    for old in MOVED:
        del sys.modules[old]  # from here on, only the new paths exist

    tmp = model_path.with_name(f".{model_path.name}.repickle")
    joblib.dump(old_pipeline, tmp, compress=("xz", 3))  # as jeeves.model.registry.save_model does
    with lzma.open(tmp) as stream:
        pickled = stream.read()
    if any(old.encode() in pickled for old in MOVED):
        raise SystemExit("the re-pickled file still names an old module path")
    tmp.replace(model_path)
    old_sha, card["sha256"] = card["sha256"], file_sha256(model_path)
    card.setdefault("notes", []).append(
        "Re-pickled unchanged for the jeeves.model package (scripts/repickle_model.py); "
        f"sha256 was {old_sha}.")
    write_card(models_dir, card)

    served = load_model(models_dir=models_dir)
    after = served.score(documents)
    identical = np.array_equal(before, after) and before.tobytes() == after.tobytes()
    print(f"{version}: {model_path.stat().st_size:,} bytes, sha256 {old_sha[:12]}… -> {card['sha256'][:12]}…")
    print(f"scores on {len(documents)} corpus messages: bit-identical={identical} "
          f"(max |diff| {float(np.max(np.abs(before - after))):.3g})")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
