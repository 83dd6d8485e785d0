"""Where the files Jeeves ships with live, and where the files it writes go.

Shipped files (the Alembic migrations, the model with its card and ``CURRENT``, the labelled
corpus and the demo mailbox) are found through ``importlib.resources``, so they are the same
files whether Jeeves runs from a checkout (editable install) or from a wheel in site-packages:
``migrations/``, ``models/`` and ``data/`` stay at the top of the repository and pyproject.toml
maps them into the package as ``jeeves._migrations``, ``jeeves._models`` and ``jeeves._data``.

Nothing is ever written there: models a user trains go to ``<data_dir>/models``, and until one
is promoted there the shipped model serves.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import platformdirs


def _package_dir(package: str) -> Path:
    # Installed packages are plain directories (pip unpacks wheels), so this is a real path that
    # Alembic, joblib and mailbox can open.
    return Path(str(files(package)))


def migrations_dir() -> Path:
    """The Alembic script directory (``script_location``)."""
    return _package_dir("jeeves._migrations")


def shipped_models_dir() -> Path:
    """The models directory shipped with Jeeves: its model, card and ``CURRENT``. Read-only."""
    return _package_dir("jeeves._models")


def shipped_data_dir() -> Path:
    return _package_dir("jeeves._data")


def shipped_corpus_dir() -> Path:
    """The labelled corpus (``messages.mbox`` + ``labels.csv``) that train, evaluate and retrain default to."""
    return shipped_data_dir() / "enron-meetings"


def sample_mailbox() -> Path:
    """The demo mailbox: real mail with planted, hand-labelled requests (``planted_csv``)."""
    return shipped_data_dir() / "sample" / "sample.mbox"


def planted_csv() -> Path:
    """Which messages of the demo mailbox were planted, and their hand labels."""
    return shipped_data_dir() / "sample" / "planted.csv"


def default_data_dir() -> Path:
    """The per-user data directory (e.g. ``~/.local/share/jeeves``) when the config names none."""
    return Path(platformdirs.user_data_dir("jeeves"))


def default_models_dir(data_dir: Path | None = None) -> Path:
    """Where trained models go: ``<data_dir>/models``, never inside the installed package."""
    return Path(data_dir if data_dir is not None else default_data_dir()) / "models"


def serving_models_dir(models_dir: Path, *, fall_back_to_shipped: bool) -> Path:
    """The directory whose ``CURRENT`` names the model to serve.

    ``models_dir`` once something has been promoted there; before that, the shipped models when
    ``models_dir`` is the default one (a fresh install serves the shipped model). A directory the
    user named explicitly is used as is, so a wrong path is an error rather than a silent fallback.
    """
    if fall_back_to_shipped and not (Path(models_dir) / "CURRENT").is_file():
        return shipped_models_dir()
    return Path(models_dir)
