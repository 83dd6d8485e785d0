"""Fetching: listed UIDs become ``Fetched`` messages, in ascending groups bounded by count and bytes.

The promises: bodies are fetched with ``BODY.PEEK`` (mail is never marked read); sizes are
asked first, so a message over ``max_message_bytes`` is fetched as its header plus the start
of its body (flagged truncated), and one group never holds more than ``GROUP_BYTES`` (plus one
message at the size limit), so memory stays flat however long the backlog. A message expunged
between listing and fetching is skipped.
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

from imapclient import IMAPClient

from jeeves.sources.backlog import Fetched
from jeeves.sources.imap.plan import as_utc, size_groups

log = logging.getLogger(__name__)

#: Upper bound of raw bytes fetched, parsed and stored as one group (memory stays flat).
GROUP_BYTES = 16 * 1024 * 1024


def fetch_groups(client: IMAPClient, uids: Sequence[int], *, batch: int, limit: int, account: str) -> Iterator[list[Fetched]]:
    """``Fetched`` groups for ``uids`` (ascending): ``batch`` UIDs per metadata request, each
    cut by size (``plan.size_groups``); ``limit`` is the account's ``max_message_bytes``."""
    gmail = client.has_capability("X-GM-EXT-1")
    meta_items = ["RFC822.SIZE", "FLAGS", "INTERNALDATE"] + (["X-GM-MSGID"] if gmail else [])
    for start in range(0, len(uids), batch):
        chunk = list(uids[start:start + batch])
        meta = client.fetch(chunk, meta_items)
        sizes = {uid: int(meta[uid].get(b"RFC822.SIZE") or 0) for uid in chunk if uid in meta}
        for group in size_groups(chunk, sizes, limit=limit, group_bytes=GROUP_BYTES):
            yield _fetch_bodies(client, group, meta, limit, account)


def _fetch_bodies(client: IMAPClient, uids: list[int], meta: dict, limit: int, account: str) -> list[Fetched]:
    small = [uid for uid in uids if int(meta[uid].get(b"RFC822.SIZE") or 0) <= limit]
    small_set = set(small)
    large = [uid for uid in uids if uid not in small_set]
    bodies: dict[int, tuple[bytes, bool]] = {}  # uid -> (raw, truncated)
    if small:
        answer = client.fetch(small, ["BODY.PEEK[]"])
        for uid in small:
            raw = answer.get(uid, {}).get(b"BODY[]")
            if raw is not None:
                bodies[uid] = (bytes(raw), False)
            else:
                log.warning("imap account %s: no body returned for UID %s (expunged meanwhile?)", account, uid,
                            extra={"account": account, "uid": uid})
    for uid in large:
        header = client.fetch([uid], ["BODY.PEEK[HEADER]"]).get(uid, {}).get(b"BODY[HEADER]") or b""
        room = max(1024, limit - len(header))
        part = client.fetch([uid], [f"BODY.PEEK[TEXT]<0.{room}>"]).get(uid, {})
        text = next((v for k, v in part.items() if k.startswith(b"BODY[TEXT]")), b"") or b""
        bodies[uid] = (bytes(header) + bytes(text), True)
        size = meta[uid].get(b"RFC822.SIZE")
        log.info("imap account %s: message UID %s (%s bytes) is over max_message_bytes; storing it truncated",
                 account, uid, size, extra={"account": account, "uid": uid, "size": size, "kept": len(header) + len(text)})
    fetched = []
    for uid in uids:
        if uid not in bodies:
            continue
        raw, truncated = bodies[uid]
        m = meta[uid]
        gmail_msgid = m.get(b"X-GM-MSGID")
        fetched.append(Fetched(
            raw=raw,
            uid=uid,
            size=int(m.get(b"RFC822.SIZE") or len(raw)),
            truncated=truncated,
            flags=tuple(_text(f) for f in m.get(b"FLAGS", ())),
            internal_date=as_utc(m.get(b"INTERNALDATE")),
            gmail_msgid=int(gmail_msgid) if gmail_msgid is not None else None,
        ))
    return fetched


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
