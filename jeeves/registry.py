"""The models directory: versioned models with their cards, and ``CURRENT`` naming the served one.

Promotion and rollback only rewrite ``CURRENT`` (atomically), so a running daemon, which
watches that file, switches models between two messages and never sees a half-written name.
The model shipped inside the package serves until the default directory has a ``CURRENT``
(see ``jeeves.resources``); it is listed beside the trained ones and can be rolled back to.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

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
