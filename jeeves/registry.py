"""The models directory: versioned models with their cards, and ``CURRENT`` naming the served one.

Promotion and rollback only rewrite ``CURRENT`` (atomically), so a running daemon, which
watches that file, switches models between two messages and never sees a half-written name.
"""

from __future__ import annotations

import json
import os
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


def list_models(models_dir: Path) -> list[ModelEntry]:
    """Every model with a card in ``models_dir``, oldest first."""
    current = current_version(models_dir)
    entries = []
    for card_path in sorted(Path(models_dir).glob("*.json")):
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


def set_current(models_dir: Path, version: str) -> None:
    """Serve ``version`` from now on (promotion or rollback)."""
    models_dir = Path(models_dir)
    if not (models_dir / f"{version}.joblib").is_file() or not (models_dir / f"{version}.json").is_file():
        known = ", ".join(e.version for e in list_models(models_dir)) or "none"
        raise ModelError(f"no model {version!r} in {models_dir} (known: {known})")
    tmp = models_dir / f".CURRENT.{os.getpid()}"
    tmp.write_text(version + "\n")
    tmp.replace(models_dir / "CURRENT")
