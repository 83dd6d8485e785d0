"""The models directory: versioned models with their cards, and ``CURRENT`` naming the served one.

This module is the only writer of that directory, and every write is atomic (a temporary file
renamed into place): a model file, then its card (a listed model is always complete), and
``CURRENT``. Training saves a model without serving it; promotion and rollback only rewrite
``CURRENT``, so a running daemon, which watches that file, switches models between two
messages and never sees a half-written name.
``verify_model`` checks a model against its card without unpickling it or importing
scikit-learn, so ``status`` and ``health`` answer in well under a second.
The model shipped inside the package serves until the default directory has a ``CURRENT``
(see ``jeeves.resources``); it is listed beside the trained ones and can be rolled back to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from jeeves.clock import utc_now
from jeeves.errors import ModelError


@dataclass(frozen=True)
class ModelEntry:
    version: str
    created: str
    chosen: str
    roc_auc: float | None
    pr_auc: float | None
    threshold: float | None
    current: bool


def current_version(models_dir: Path) -> str | None:
    try:
        return (Path(models_dir) / "CURRENT").read_text().strip() or None
    except FileNotFoundError:
        return None


def resolve_model_path(path: Path | None, models_dir: Path) -> Path:
    """The model file to serve: ``path`` itself, or the one ``models_dir/CURRENT`` names."""
    target = Path(path) if path is not None else Path(models_dir)
    if target.is_dir():
        current = target / "CURRENT"
        if not current.is_file():
            raise ModelError(f"no model in {target}: CURRENT is missing; train one with `jeeves train`")
        version = current.read_text().strip()
        target = target / f"{version}.joblib"
    if not target.is_file():
        raise ModelError(f"model file not found: {target}; train one with `jeeves train`")
    return target


def file_sha256(*paths: Path) -> str:
    """SHA-256 of the files' bytes, one file after the other (a model file; a corpus's mbox + labels)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, lambda: digest)  # feeds the one running digest
    return digest.hexdigest()


@dataclass(frozen=True)
class SavedModel:
    """A model file written by :func:`save_model`; its version names the file and its card."""

    version: str
    path: Path
    sha256: str
    created: datetime


def save_model(models_dir: Path, pipeline) -> SavedModel:
    """Write ``pipeline`` as ``<version>.joblib``, the version being its time and hash; not served.

    The file is complete before it has its name; its card (:func:`write_card`) follows it, and
    only :func:`set_current` makes it serve.
    """
    import joblib

    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    created = utc_now()
    tmp = models_dir / f".tmp-{created:%Y%m%d%H%M%S%f}-{os.getpid()}.joblib"
    joblib.dump(pipeline, tmp, compress=("xz", 3))
    digest = file_sha256(tmp)
    version = f"{created:%Y%m%d-%H%M%S}-{digest[:8]}"
    path = models_dir / f"{version}.joblib"
    tmp.replace(path)
    return SavedModel(version, path, digest, created)


def write_card(models_dir: Path, card: dict[str, Any]) -> Path:
    """Write ``card`` as ``<version>.json`` beside its model (a reader never sees half a card)."""
    path = Path(models_dir) / f"{card['version']}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(card, indent=2, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def _json_default(value):
    """numpy scalars and arrays, as the card's figures come from numpy."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(type(value))


def verify_model(path: Path | None, models_dir: Path) -> tuple[Path, dict]:
    """(model file, card) once the card vouches for the file: present, same sha256, and trained
    with the installed scikit-learn. Raises ``ModelError`` with the remedy otherwise.

    Nothing is unpickled (a joblib file is code) and scikit-learn is not imported: its version
    comes from the installed package's metadata.
    """
    model_path = resolve_model_path(path, models_dir)
    card_path = model_path.with_suffix(".json")
    if not card_path.is_file():
        raise ModelError(f"model card {card_path.name} not found beside {model_path}; retrain with `jeeves train`")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"model card {card_path} is unreadable ({exc}); retrain with `jeeves train`") from None
    if not isinstance(card, dict) or not isinstance(card.get("version"), str) or not isinstance(card.get("threshold"), (int, float)):
        raise ModelError(f"model card {card_path} lacks its version or threshold; retrain with `jeeves train`")
    digest = file_sha256(model_path)
    if digest != card.get("sha256"):
        raise ModelError(f"{model_path.name} does not match its model card (sha256 {digest[:12]}… vs "
                         f"{str(card.get('sha256'))[:12]}…); the file was changed or corrupted — retrain with "
                         "`jeeves train` or restore the original file")
    trained_with = card.get("library_versions", {}).get("scikit-learn")
    installed = metadata.version("scikit-learn")
    if trained_with != installed:
        raise ModelError(f"model {card.get('version')} was trained with scikit-learn {trained_with}, but "
                         f"{installed} is installed; retrain it with `jeeves train`")
    return model_path, card


def list_models(models_dir: Path, shipped_dir: Path | None = None) -> list[ModelEntry]:
    """Every model with a card in ``models_dir`` (and in ``shipped_dir``, the models shipped with
    Jeeves, which serve while ``models_dir`` has no ``CURRENT``), oldest first."""
    current = current_version(models_dir)
    if current is None and shipped_dir is not None:
        current = current_version(shipped_dir)
    card_paths = sorted(Path(models_dir).glob("*.json"))
    if shipped_dir is not None:
        card_paths += [p for p in sorted(Path(shipped_dir).glob("*.json")) if not (Path(models_dir) / p.name).exists()]
    entries = []
    for card_path in card_paths:
        try:
            card = json.loads(card_path.read_text())
        except (OSError, ValueError):
            continue
        if "version" not in card or not (card_path.with_suffix(".joblib")).exists():
            continue
        scores = (card.get("cv") or {}).get("all") or {}
        entries.append(ModelEntry(
            version=card["version"], created=card.get("created", ""), chosen=card.get("chosen", ""),
            roc_auc=scores.get("roc_auc"), pr_auc=scores.get("pr_auc"), threshold=card.get("threshold"),
            current=card["version"] == current,
        ))
    return sorted(entries, key=lambda e: (e.created, e.version))


def set_current(models_dir: Path, version: str, *, shipped_dir: Path | None = None) -> None:
    """Serve ``version`` from now on (promotion or rollback).

    A version found only in ``shipped_dir`` is first copied into ``models_dir`` (the shipped
    files are read-only), so rolling back to the shipped model works like any other rollback.
    """
    models_dir = Path(models_dir)
    files = (f"{version}.joblib", f"{version}.json")
    if shipped_dir is not None and not all((models_dir / f).is_file() for f in files) \
            and all((Path(shipped_dir) / f).is_file() for f in files):
        models_dir.mkdir(parents=True, exist_ok=True)
        for name in files:
            tmp = models_dir / f".{name}.{os.getpid()}"
            shutil.copyfile(Path(shipped_dir) / name, tmp)
            tmp.replace(models_dir / name)
    if not all((models_dir / f).is_file() for f in files):
        known = ", ".join(e.version for e in list_models(models_dir, shipped_dir)) or "none"
        raise ModelError(f"no model {version!r} in {models_dir} (known: {known})")
    tmp = models_dir / f".CURRENT.{os.getpid()}"
    tmp.write_text(version + "\n")
    tmp.replace(models_dir / "CURRENT")
