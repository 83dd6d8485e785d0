"""Labels from the mailbox: the user's own judgements, read from IMAP folders, keywords and Gmail labels.

A message filed in ``positive_folder``/``negative_folder``, or carrying the account's positive
or negative keyword (or Gmail label), is a labelled example for retraining. Keywords and Gmail
labels may be set or changed long after a message was stored, so each pass asks the server
which messages carry them rather than trusting old FLAGS. A label is recorded only where the
newest one from the same source differs (a relabel), never twice; a message carrying both the
positive and the negative mark says nothing.
"""

from __future__ import annotations

import logging

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from jeeves.config import AccountSettings
from jeeves.sources.imap.session import server_text
from jeeves.storage.store import Store

log = logging.getLogger(__name__)

LABEL_FOLDER = "imap-folder"
LABEL_KEYWORD = "imap-keyword"
LABEL_GMAIL = "gmail-label"


def folder_label_value(account: AccountSettings, folder: str) -> int | None:
    """1 for the account's positive folder, 0 for its negative folder, None for other folders."""
    if folder == account.positive_folder:
        return 1
    if folder == account.negative_folder:
        return 0
    return None


def sync_keyword_labels(client: IMAPClient, store: Store, account: AccountSettings, folder_id: int, uidvalidity: int) -> None:
    """Record the keyword (and Gmail label) judgements of the selected folder's messages."""
    checks: list[tuple[list | None, list | None, str]] = []
    if account.positive_keyword or account.negative_keyword:
        checks.append((
            ["KEYWORD", account.positive_keyword] if account.positive_keyword else None,
            ["KEYWORD", account.negative_keyword] if account.negative_keyword else None,
            LABEL_KEYWORD,
        ))
    if (account.positive_gmail_label or account.negative_gmail_label) and client.has_capability("X-GM-EXT-1"):
        checks.append((
            ["X-GM-LABELS", account.positive_gmail_label] if account.positive_gmail_label else None,
            ["X-GM-LABELS", account.negative_gmail_label] if account.negative_gmail_label else None,
            LABEL_GMAIL,
        ))
    for positive, negative, source in checks:
        try:
            pos = set(client.search(positive)) if positive else set()
            neg = set(client.search(negative)) if negative else set()
        except (OSError, IMAPClientAbortError):
            raise
        except IMAPClientError as exc:
            log.warning("imap account %s: label search (%s) failed: %s", account.name, source, server_text(exc),
                        extra={"account": account.name, "source": source})
            continue
        both = pos & neg
        wanted = {uid: 1 for uid in pos - both} | {uid: 0 for uid in neg - both}
        if not wanted:
            continue
        pks = store.message_pks_at(folder_id, uidvalidity, sorted(wanted))
        apply_labels(store, {pk: wanted[uid] for uid, pk in pks.items()}, source, account=account.name)


def apply_labels(store: Store, values: dict[int, int], source: str, *, account: str) -> int:
    """Add a label where the newest one from ``source`` differs (a relabel), never a duplicate."""
    if not values:
        return 0
    current = store.newest_labels(list(values), source)
    added = 0
    for pk, value in values.items():
        if current.get(pk) != value:
            store.add_label(pk, value, source)
            added += 1
    if added:
        log.info("imap account %s: %d %s labels recorded", account, added, source,
                 extra={"account": account, "source": source, "count": added})
    return added
