"""Shared fixtures. Servers (PostgreSQL, Dovecot, the local Twilio API) live in their own
plugin modules, started once per session on loopback in a temp dir and stopped afterwards."""

from __future__ import annotations

import csv
import logging
import mailbox
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_postgres", "tests.fixtures_dovecot", "tests.fixtures_twilio"]

REPO = Path(__file__).resolve().parent.parent
CORPUS_DIR = REPO / "data" / "enron-meetings"


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """``cli.main`` points the root logger at the stderr of the test that called it; that stream
    is closed once the test ends, so later log lines would only print "Logging error" noise."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    return CORPUS_DIR


@pytest.fixture(scope="session")
def corpus_raw_messages() -> list[bytes]:
    """The shipped corpus's messages as raw bytes, in file order."""
    box = mailbox.mbox(CORPUS_DIR / "messages.mbox", create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


@pytest.fixture
def small_corpus(tmp_path, corpus_dir) -> Path:
    """A labelled corpus directory in the documented format: the shipped corpus's first 300
    messages (about 30 positives), with only the two required columns."""
    out = tmp_path / "corpus"
    out.mkdir()
    rows = list(csv.DictReader(open(corpus_dir / "labels.csv")))
    labels = {r["message_id"]: r for r in rows}
    source = mailbox.mbox(corpus_dir / "messages.mbox", create=False)
    box = mailbox.mbox(out / "messages.mbox")
    kept = []
    for key in source.iterkeys():
        msg_id = source.get(key)["Message-ID"]
        if msg_id in labels:
            box.add(source.get_bytes(key))
            kept.append(labels[msg_id])
        if len(kept) == 300:
            break
    box.flush()
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["message_id", "label"])
        writer.writeheader()
        writer.writerows({"message_id": r["message_id"], "label": r["label"]} for r in kept)
    return out
