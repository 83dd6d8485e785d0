"""Local mail files as a source: an mbox file or a maildir directory.

Used for the sample mailbox, for importing archives, and by tests. An mbox is append-only in
practice, so its sync position is the number of messages already read, kept in the same
``folders`` table as IMAP state (UIDVALIDITY = the file's inode): a rewritten or shrunk file
starts over, and storage's content-hash dedupe keeps that from storing or texting anything twice.
A long file (an archive import) is parsed and stored through ``jeeves.sources.backlog``, like an
IMAP backlog; an unreadable message is skipped with a warning, never the whole file.
"""

from __future__ import annotations

import logging
import mailbox
import os
from pathlib import Path
from typing import Iterator

from jeeves.errors import SourceError
from jeeves.parsing import ParsedEmail, content_hash
from jeeves.sources import SyncReport
from jeeves.sources.backlog import Fetched, ParsePool, Writer
from jeeves.storage import NewMessage, Store

log = logging.getLogger(__name__)

BATCH = 200


class MailboxFileSource:
    """Reads an mbox file or maildir into the store; ``sync`` picks up where it left off."""

    def __init__(self, path: str | os.PathLike[str], store: Store, *, notify: bool = True,
                 parse_workers: int | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        self.store = store
        self.notify = notify
        self.name = f"file:{self.path}"
        self.parser = ParsePool(parse_workers, label=self.name)

    def close(self) -> None:
        """Stop parse workers left by an interrupted backlog (nothing else is held open)."""
        self.parser.close()

    def sync(self, *, progress: bool = False) -> SyncReport:
        report = SyncReport(self.name)
        if not self.path.exists():
            raise SourceError(f"mail file not found: {self.path}")
        if self.path.is_dir():
            box, kind, validity = self._open_maildir(), "maildir", 0
        else:
            box, kind = mailbox.mbox(self.path, create=False), "mbox"
            validity = os.stat(self.path).st_ino or 1
        try:
            folder = self.store.folder_state(self.name, str(self.path), kind=kind)
            keys = list(box.iterkeys())
            start = folder.last_uid
            if kind == "mbox" and start and self._rewritten(box, keys, folder, validity):
                log.info("mail file was rewritten, rescanning", extra={"source": self.name})
                self.store.reset_folder(folder.id, validity)
                start = 0
            if kind == "maildir":
                start = 0  # maildir keys have no order; dedupe makes a full rescan safe
            total = len(keys) - start
            bar = _progress(total, progress, self.path.name)
            mbox = kind == "mbox"

            def store(messages: list[NewMessage], last_position: int) -> tuple[int, int]:
                refs = self.store.store_batch(messages, folder=folder, uidvalidity=validity,
                                              advance_to=last_position if mbox else None)
                if bar is not None:
                    bar.update(len(messages))
                return len(messages), sum(ref.new for ref in refs)

            with Writer(total, name=self.name) as writer:
                groups = self._batches(box, keys, start)
                for (group, last_position), parsed in self.parser.parsed(groups, count=total, raws=_group_raws):
                    for done in writer.store(store, self._new_messages(group, parsed, with_uids=mbox), last_position):
                        report.add(*done)
                for done in writer.drain():
                    report.add(*done)
            if bar is not None:
                bar.close()
        except (OSError, mailbox.Error) as exc:
            error = SourceError(f"cannot read {self.path}: {exc}")
            self.store.record_sync(self.name, error=str(error), kind=kind)
            raise error from exc
        finally:
            box.close()
        self.store.record_sync(self.name, kind=kind)
        return report

    def _rewritten(self, box: mailbox.mbox, keys: list, folder, validity: int) -> bool:
        """An mbox only grows; if the message at our position changed, the file was rewritten."""
        if folder.uidvalidity != validity or folder.last_uid > len(keys):
            return True
        expected = self.store.content_hash_at(folder.id, validity, folder.last_uid)
        return expected != content_hash(box.get_bytes(keys[folder.last_uid - 1]))

    def _open_maildir(self) -> mailbox.Maildir:
        if not (self.path / "cur").is_dir() and not (self.path / "new").is_dir():
            raise SourceError(f"{self.path} is a directory but not a maildir (no cur/ or new/)")
        return mailbox.Maildir(self.path, factory=None, create=False)

    def _batches(self, box: mailbox.Mailbox, keys: list, start: int) -> Iterator[tuple[list[Fetched], int]]:
        """Raw messages from position ``start`` in groups of ``BATCH``, each with the position
        the folder may advance to once it is stored."""
        batch: list[Fetched] = []
        for position, key in enumerate(keys[start:], start=start + 1):
            try:
                raw = box.get_bytes(key)
            except (OSError, KeyError) as exc:
                log.warning("skipping unreadable message %s in %s: %s", key, self.path, exc)
                continue
            batch.append(Fetched(raw=raw, uid=position))
            if len(batch) >= BATCH:
                yield batch, position
                batch = []
        if batch:
            yield batch, start + len(keys[start:])

    def _new_messages(self, group: list[Fetched], parsed: list[ParsedEmail], *, with_uids: bool) -> list[NewMessage]:
        # mbox positions double as UIDs so each message's location is recorded once.
        return [NewMessage(raw=item.raw, parsed=p, uid=item.uid if with_uids else None, notify=self.notify)
                for item, p in zip(group, parsed)]


def _group_raws(group: tuple[list[Fetched], int]) -> list[bytes]:
    return [item.raw for item in group[0]]


def _progress(total: int, enabled: bool, label: str):
    if not enabled or total <= 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"import {label}", unit="msg")
