"""Shared fixtures. Servers (PostgreSQL, Dovecot, the local Twilio API) live in their own
plugin modules, started once per session on loopback in a temp dir and stopped afterwards."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_postgres", "tests.fixtures_dovecot", "tests.fixtures_twilio"]

REPO = Path(__file__).resolve().parent.parent
CORPUS_DIR = REPO / "data" / "enron-meetings"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    return CORPUS_DIR


@pytest.fixture(scope="session")
def corpus_raw_messages() -> list[bytes]:
    """The shipped corpus's messages as raw bytes, in file order."""
    box = mailbox.mbox(CORPUS_DIR / "messages.mbox", create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]
