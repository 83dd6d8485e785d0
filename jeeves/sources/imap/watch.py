"""Watching an account: IDLE (else polling) between guarded syncs, reconnecting with backoff.

The promises: ``watch`` IDLEs on the account's first folder that synced cleanly (one IDLE per
connection is all IMAP allows) and polls the other folders every ``poll_interval`` and whenever
it wakes; one connection per account keeps server connection limits happy. IDLE is ended and
the folders resynced at least every ``IDLE_RENEW_SECONDS`` (RFC 2177 allows 29 minutes; NATs
and imapclient's advice say less). ``idle_check`` hides a dead socket as silence, so a wake-up
with no responses is treated as "check the connection": ``idle_done`` then raises on a dead
link and the watcher reconnects with exponential backoff and jitter.

Mail that lands between the last SELECT and IDLE is not left for the next poll. Dovecot reports
it in the same packet as its "+ idling" reply, so the EXISTS line sits in imaplib's read buffer,
where ``idle_check`` (which polls the socket) never looks; ``_buffered_after_continuation``
peeks at that buffer and the watcher resyncs at once.

The watcher only stores mail and tells ``on_stored``; it never classifies or sends, so a slow
send elsewhere never keeps IDLE from receiving. It never raises for server, network or database
trouble: each sync goes through ``guarded_sync`` and a failure is logged, recorded and retried.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from typing import TYPE_CHECKING, Callable

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from jeeves.errors import AuthenticationError, JeevesError, StoreError
from jeeves.sources import SyncReport, guarded_sync
from jeeves.sources.imap.session import ConnectionLost

if TYPE_CHECKING:
    from jeeves.sources.imap.source import IMAPSource

log = logging.getLogger(__name__)

#: End IDLE and resync at least this often (RFC 2177: at most 29 minutes).
IDLE_RENEW_SECONDS = 9 * 60
#: One ``idle_check`` call blocks at most this long, so ``stop`` is noticed promptly.
IDLE_CHECK_SECONDS = 1.0
#: Longest time between reconnect attempts.
MAX_BACKOFF_SECONDS = 300.0
#: Longest wait after a database error: the IMAP side is fine, and the database may be back soon.
STORE_BACKOFF_SECONDS = 10.0


def watch(source: "IMAPSource", stop: threading.Event, on_stored: Callable[[SyncReport], None],
          wait: Callable[[threading.Event, float], bool]) -> None:
    """Keep ``source`` synced until ``stop`` is set (see the module docstring)."""
    failures = 0
    source.stop_event = stop
    name = source.name
    try:
        while not stop.is_set():
            try:
                report = guarded_sync(source, log_failure=False)  # logged below, with the retry
                if report.failure is not None:
                    raise report.failure
                failures = 0
                _deliver(name, report, on_stored)
                if stop.is_set():
                    break
                client = source.session.client
                if source.account.idle and source.idle_folder and client is not None and client.has_capability("IDLE"):
                    _idle_until_change(source, stop)
                else:
                    wait(stop, source.account.poll_interval)
            except AuthenticationError as exc:
                failures += 1
                log.error("%s", exc, extra={"account": name})
                source.session.drop()
                wait(stop, MAX_BACKOFF_SECONDS * random.uniform(0.8, 1.0))
            except (JeevesError, IMAPClientError, OSError) as exc:
                failures += 1
                ceiling = STORE_BACKOFF_SECONDS if isinstance(exc, StoreError) else MAX_BACKOFF_SECONDS
                delay = min(ceiling, 2 ** min(failures - 1, 10)) * random.uniform(0.5, 1.0)
                level = logging.INFO if isinstance(exc, ConnectionLost) and failures == 1 else logging.WARNING
                log.log(level, "imap account %s: %s; retrying in %.1f s", name, exc, delay,
                        extra={"account": name, "failures": failures})
                if not isinstance(exc, JeevesError):
                    source.record_error(exc)
                source.session.drop()
                wait(stop, delay)
    finally:
        source.stop_event = None
        source.close()


def _deliver(name: str, report: SyncReport, on_stored: Callable[[SyncReport], None]) -> None:
    if report.stored:
        try:
            on_stored(report)
        except Exception:  # noqa: BLE001 - a consumer bug must not stop ingestion
            log.exception("imap account %s: on_stored callback failed", name, extra={"account": name})


def _idle_until_change(source: "IMAPSource", stop: threading.Event) -> None:
    """IDLE on the first folder until it changes, ``poll_interval`` passes (other folders),
    the renewal deadline comes, or ``stop`` is set. Returns to let ``watch`` resync."""
    client = source.session.client
    assert client is not None
    name = source.name
    folders = source.folders()
    folder = source.idle_folder or folders[0]
    try:
        selected = source.select(client, folder)
        if selected.uidnext is not None and selected.uidnext != source.uidnext_seen.get(folder):
            return  # mail arrived between the sync and now: resync before idling
        client.idle()
    except (OSError, IMAPClientAbortError) as exc:
        raise ConnectionLost(f"account {name}: connection lost before IDLE: {exc}") from None
    started = time.monotonic()
    horizon = min(IDLE_RENEW_SECONDS, source.account.poll_interval if len(folders) > 1 else IDLE_RENEW_SECONDS)
    try:
        changed_as_idle_began = _buffered_after_continuation(client)
        while not changed_as_idle_began and not stop.is_set() and time.monotonic() - started < horizon:
            t0 = time.monotonic()
            responses = client.idle_check(timeout=IDLE_CHECK_SECONDS)
            if any(not (isinstance(r, tuple) and r and r[0] in (b"OK",)) for r in responses):
                break  # EXISTS / EXPUNGE / FETCH: the folder changed
            if not responses and time.monotonic() - t0 < IDLE_CHECK_SECONDS / 2:
                break  # readable but nothing parsed: EOF or an error; idle_done will tell
    finally:
        try:
            client.idle_done()
        except (OSError, IMAPClientError) as exc:
            source.session.drop()
            if not stop.is_set():
                raise ConnectionLost(f"account {name}: connection lost during IDLE: {exc}") from None


def _buffered_after_continuation(client) -> bool:
    """Whether lines the server sent with "+ idling" wait unread in imaplib's read buffer.

    ``IMAPClient.idle`` reads the continuation through imaplib's buffered file; anything that
    came in the same packet stays in that buffer, and ``idle_check`` only polls the socket. The
    peek is non-blocking: with an empty buffer it reads only what the socket already holds,
    which ``idle_check`` would have reported anyway.
    """
    file = getattr(getattr(client, "_imap", None), "file", None)
    if file is None or not hasattr(file, "peek"):
        return False
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return bool(file.peek(1))
    except (ssl.SSLWantReadError, BlockingIOError):
        return False
    finally:
        sock.settimeout(timeout)
