"""IMAP ingestion: fetch new mail once, or watch it arrive (IDLE, else polling), over ``imapclient``.

The promises, and how they are kept:

- **Never lose, never repeat.** Per folder, UIDVALIDITY and the highest stored UID live in the
  database and move only inside ``Store.store_batch`` together with the messages they cover. A
  crash between batches refetches at most one batch; storage dedupes by content hash, so a
  replay stores nothing twice. A UIDVALIDITY change (folder recreated, server migrated) resets
  the folder and rescans it; the rescan re-stores nothing because of the same dedupe.
- **Never text about old mail**, judged by the server alone (no local clock). When Jeeves
  first sees a folder it records the server's UIDNEXT (``notify_from_uid``): every message with
  a lower UID was already there and is stored with ``notify=False``, every later one is texted,
  however close in time, and an interrupted first sync resumes with the same boundary. If
  UIDVALIDITY later changes (UIDs renumbered), ``notify_after`` decides instead: the server's
  INTERNALDATE of the newest message present at first sight; only mail dated after it is
  texted. ``first_sync`` limits what the first sync fetches at all.
- **Never mark mail read, never drop it.** Bodies are fetched with ``BODY.PEEK``; a message over
  ``max_message_bytes`` is stored as its header plus the start of its body, flagged truncated.
- **Bounded memory.** UIDs are listed (integers only), then fetched in batches of
  ``fetch_batch`` messages and at most ``_GROUP_BYTES`` bytes; each group is parsed, stored and
  released before the next is fetched.
- **Push.** ``watch`` IDLEs on the account's first folder that synced cleanly (one IDLE per
  connection is all IMAP allows) and polls the other folders every ``poll_interval`` and
  whenever it wakes; one connection per account keeps server connection limits happy. IDLE is
  ended and the folders resynced at least every ``IDLE_RENEW_SECONDS`` (RFC 2177 allows 29
  minutes; NATs and imapclient's advice say less). ``idle_check`` hides a dead socket as
  silence, so a wake-up with no responses is treated as "check the connection": ``idle_done``
  then raises on a dead link and the watcher reconnects with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import socket
import ssl
import threading
import time
from concurrent.futures import CancelledError, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator, Sequence

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import CapabilityError, IMAPClientAbortError, IMAPClientError, LoginError

from jeeves.config import AccountSettings, oauth_token
from jeeves.errors import AuthenticationError, ConfigError, JeevesError, SourceError, StoreError
from jeeves.parsing import ParsedEmail, parse_email
from jeeves.sources import SyncReport
from jeeves.sources.imap_parse import parse_many
from jeeves.storage.store import FolderState, NewMessage, Store

log = logging.getLogger(__name__)

#: End IDLE and resync at least this often (RFC 2177: at most 29 minutes).
IDLE_RENEW_SECONDS = 9 * 60
#: One ``idle_check`` call blocks at most this long, so ``stop`` is noticed promptly.
IDLE_CHECK_SECONDS = 1.0
#: ``notify_after`` of a folder that was empty at first sight: everything in it arrived later.
EMPTY_AT_FIRST_SIGHT = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Upper bound of raw bytes fetched, parsed and stored as one group (memory stays flat).
_GROUP_BYTES = 16 * 1024 * 1024
#: Longest time between reconnect attempts.
MAX_BACKOFF_SECONDS = 300.0
#: Longest wait after a database error: the IMAP side is fine, and the database may be back soon.
STORE_BACKOFF_SECONDS = 10.0
#: Backlogs at least this long are parsed in worker processes (spawning them costs ~0.3 s).
PARALLEL_PARSE_MIN = 1000
#: UIDs per database lookup when mapping UIDs to stored messages.

LABEL_FOLDER = "imap-folder"
LABEL_KEYWORD = "imap-keyword"
LABEL_GMAIL = "gmail-label"


class ConnectionLost(SourceError):
    """The link to the server broke (timeout, reset, EOF); reconnecting is the cure."""


@dataclass
class _FolderPlan:
    """What one pass over a folder must fetch: UIDs ascending, and where to leave ``last_uid``."""

    uids: list[int]
    final_advance: int | None = None


@dataclass
class _Selected:
    uidvalidity: int
    uidnext: int | None
    exists: int


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _is_loopback(host: str) -> bool:
    return host in {"localhost", "::1"} or host.startswith("127.")


class IMAPSource:
    """One IMAP account: ``sync()`` fetches what is new in its folders, ``watch()`` keeps doing it.

    Not thread-safe: one thread drives one source (the daemon runs one watcher per account).
    """

    def __init__(
        self,
        account: AccountSettings,
        store: Store,
        *,
        sleep: Callable[[threading.Event, float], bool] | None = None,
        parse_workers: int | None = None,
    ) -> None:
        self.account = account
        self.store = store
        self._client: IMAPClient | None = None
        self._token: str | None = None
        self._uidnext_seen: dict[str, int | None] = {}
        self._wait = sleep or (lambda event, seconds: event.wait(seconds))
        self._account_known = False
        self._stop: threading.Event | None = None
        self._idle_folder: str | None = None
        # Two workers: more buy little (storing becomes the limit) and cost ~85 MB each.
        self._workers = min(2, os.cpu_count() or 1) if parse_workers is None else parse_workers
        self._pool: ProcessPoolExecutor | None = None

    @property
    def name(self) -> str:
        return self.account.name

    # --- public API ---------------------------------------------------------------------------

    def folders(self) -> list[str]:
        """Folders synced: the configured ones, then the label folders (their mail is training data)."""
        names = list(dict.fromkeys(self.account.folders))
        for extra in (self.account.positive_folder, self.account.negative_folder):
            if extra and extra not in names:
                names.append(extra)
        return names

    def sync(self) -> SyncReport:
        """Fetch and store what is new in every folder; one failing folder does not stop the rest.

        Raises ``AuthenticationError`` when the login is refused, ``ConnectionLost`` when the link
        broke twice in a row, ``SourceError`` for other account-wide failures (TLS, connect) and
        ``StoreError`` when the database fails. Each is also recorded for ``jeeves status``.
        """
        try:
            return self._sync_once()
        except ConnectionLost as first:
            log.info("imap account %s: %s; reconnecting once", self.name, first, extra={"account": self.name})
            self._drop_client()
            try:
                return self._sync_once()
            except JeevesError as exc:
                self._record_error(exc)
                raise
        except JeevesError as exc:
            self._record_error(exc)
            raise

    def watch(self, stop: threading.Event, on_stored: Callable[[SyncReport], None]) -> None:
        """Keep the account synced until ``stop`` is set; ``on_stored`` hears of each sync that stored mail.

        Never raises for server or network trouble: it logs, records the error and reconnects
        with exponential backoff plus jitter (authentication failures wait the longest, since
        only a config change fixes them).
        """
        failures = 0
        self._stop = stop
        while not stop.is_set():
            try:
                report = self.sync()
                failures = 0
                self._deliver(report, on_stored)
                if stop.is_set():
                    break
                if self.account.idle and self._idle_folder and self._client is not None and self._client.has_capability("IDLE"):
                    self._idle_until_change(stop, on_stored)
                else:
                    self._wait(stop, self.account.poll_interval)
            except AuthenticationError as exc:
                failures += 1
                log.error("%s", exc, extra={"account": self.name})
                self._drop_client()
                self._wait(stop, MAX_BACKOFF_SECONDS * random.uniform(0.8, 1.0))
            except (JeevesError, IMAPClientError, OSError) as exc:
                failures += 1
                ceiling = STORE_BACKOFF_SECONDS if isinstance(exc, StoreError) else MAX_BACKOFF_SECONDS
                delay = min(ceiling, 2 ** min(failures - 1, 10)) * random.uniform(0.5, 1.0)
                level = logging.INFO if isinstance(exc, ConnectionLost) and failures == 1 else logging.WARNING
                log.log(level, "imap account %s: %s; retrying in %.1f s", self.name, exc, delay,
                        extra={"account": self.name, "failures": failures})
                if not isinstance(exc, JeevesError):
                    self._record_error(exc)
                self._drop_client()
                self._wait(stop, delay)
        self._stop = None
        self.close()

    def close(self) -> None:
        """Log out politely (a broken link is simply dropped) and stop the parse workers."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> "IMAPSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connection ---------------------------------------------------------------------------

    def connect(self) -> IMAPClient:
        """Connect, secure and authenticate, or raise one actionable ``SourceError``."""
        if self._client is not None:
            return self._client
        acct = self.account
        host, port = acct.host, acct.effective_port
        where = f"{host}:{port}"
        if acct.tls == "none" and not (_is_loopback(host) or acct.insecure):
            raise SourceError(f"account {self.name}: refusing plaintext IMAP to {where}; use tls = 'implicit' or 'starttls' (or set insecure = true)")
        context = self._ssl_context() if acct.tls != "none" else None
        timeout = SocketTimeout(connect=acct.connect_timeout, read=acct.read_timeout)
        try:
            client = IMAPClient(host, port=port, ssl=acct.tls == "implicit", ssl_context=context, timeout=timeout)
            if acct.tls == "starttls":
                client.starttls(context)
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(
                f"account {self.name}: the TLS certificate of {where} is not trusted ({exc.verify_message}); "
                f"set ca_file to the CA that signed it, or fix the server's certificate"
            ) from None
        except ssl.SSLError as exc:
            raise SourceError(f"account {self.name}: TLS handshake with {where} failed ({exc.reason or exc}); check port and tls mode") from None
        except CapabilityError:
            raise SourceError(f"account {self.name}: {where} does not offer STARTTLS; use tls = 'implicit' (usually port 993)") from None
        except socket.timeout:
            raise ConnectionLost(f"account {self.name}: connecting to {where} timed out after {acct.connect_timeout:g} s") from None
        except (OSError, IMAPClientAbortError) as exc:
            raise ConnectionLost(f"account {self.name}: cannot connect to {where}: {exc}") from None
        except IMAPClientError as exc:
            raise SourceError(f"account {self.name}: {where} refused the session: {exc}") from None
        client.normalise_times = False  # aware datetimes: INTERNALDATE compares with notify_after
        try:
            self._login(client)
        except BaseException:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass
            raise
        log.info("imap account %s connected to %s (tls=%s)", self.name, where, acct.tls,
                 extra={"account": self.name, "host": host, "port": port, "tls": acct.tls})
        self._client = client
        return client

    def _ssl_context(self) -> ssl.SSLContext:
        acct = self.account
        try:
            context = ssl.create_default_context(cafile=str(acct.ca_file) if acct.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(f"account {self.name}: cannot load ca_file {acct.ca_file}: {exc}") from None
        if acct.insecure:
            # Opt-in only: the user said this server's certificate cannot be checked.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _login(self, client: IMAPClient) -> None:
        acct = self.account
        try:
            if acct.auth == "password":
                if acct.password is None:
                    raise AuthenticationError(f"account {self.name}: no password configured (password or password_env)")
                client.login(acct.username, acct.password.get_secret_value())
                return
            for attempt in (1, 2):
                if self._token is None or attempt == 2:
                    try:
                        self._token = oauth_token(acct)
                    except ConfigError as exc:
                        raise AuthenticationError(str(exc)) from None
                try:
                    if acct.auth == "xoauth2":
                        client.oauth2_login(acct.username, self._token)
                    else:
                        client.oauthbearer_login(acct.username, self._token)
                    return
                except LoginError:
                    if attempt == 2:
                        raise
                    log.info("imap account %s: the server rejected the OAuth2 token; fetching a fresh one", self.name, extra={"account": self.name})
        except LoginError as exc:
            self._token = None
            what = "password" if acct.auth == "password" else f"{acct.auth.upper()} token"
            raise AuthenticationError(
                f"account {self.name}: {acct.host} refused the login for {acct.username!r} ({_server_text(exc)}); "
                f"check the {what}"
            ) from None
        except (OSError, IMAPClientAbortError) as exc:
            raise ConnectionLost(f"account {self.name}: connection lost while logging in: {exc}") from None

    def _record_error(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, JeevesError) else f"account {self.name}: {type(exc).__name__}: {exc}"
        try:
            self._ensure_account()
            self.store.record_sync(self.name, error=message)
        except StoreError:
            log.warning("cannot record the sync error: the database is unavailable", extra={"account": self.name})

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001 - already broken
                pass

    # --- sync ---------------------------------------------------------------------------------

    def _sync_once(self) -> SyncReport:
        self._ensure_account()
        client = self.connect()
        report = SyncReport(source=self.name)
        folder_errors: list[str] = []
        idle_folder: str | None = None
        for folder in self.folders():
            try:
                report.merge(self._sync_folder(client, folder))
            except (ConnectionLost, AuthenticationError, StoreError):
                raise
            except SourceError as exc:
                log.error("%s", exc, extra={"account": self.name, "folder": folder})
                folder_errors.append(str(exc))
                continue
            except (OSError, IMAPClientAbortError) as exc:
                self._drop_client()
                raise ConnectionLost(f"account {self.name}: connection lost in folder {folder!r}: {exc}") from None
            except IMAPClientError as exc:  # a NO or BAD reply to SEARCH/FETCH
                message = f"account {self.name}: {self.account.host} refused a command in folder {folder!r}: {_server_text(exc)}"
                log.error("%s", message, extra={"account": self.name, "folder": folder})
                folder_errors.append(message)
                continue
            if idle_folder is None:
                idle_folder = folder
            if self._stop is not None and self._stop.is_set():
                break
        report.errors.extend(folder_errors)
        self._idle_folder = idle_folder  # IDLE on the first folder that synced cleanly
        self.store.record_sync(self.name, error="; ".join(folder_errors) or None)
        if report.fetched:
            log.info("imap account %s: fetched %d, stored %d new", self.name, report.fetched, report.stored,
                     extra={"account": self.name, "fetched": report.fetched, "stored": report.stored})
        return report

    def _ensure_account(self) -> None:
        if not self._account_known:
            self.store.ensure_account(self.name, "imap")
            self._account_known = True

    def _select(self, client: IMAPClient, folder: str) -> _Selected:
        try:
            info = client.select_folder(folder, readonly=True)
        except (OSError, IMAPClientAbortError):
            raise
        except IMAPClientError as exc:
            raise SourceError(self._folder_error(client, folder, exc)) from None
        uidvalidity = info.get(b"UIDVALIDITY")
        if uidvalidity is None:
            raise SourceError(f"account {self.name}: {self.account.host} gave no UIDVALIDITY for {folder!r}; the server cannot be synced incrementally")
        return _Selected(int(uidvalidity), info.get(b"UIDNEXT"), int(info.get(b"EXISTS", 0)))

    def _folder_error(self, client: IMAPClient, folder: str, exc: Exception) -> str:
        try:
            names = [name for _flags, _sep, name in client.list_folders()]
        except Exception:  # noqa: BLE001 - the listing is only a hint
            names = []
        if names and folder not in names:
            shown = ", ".join(sorted(names)[:20])
            return f"account {self.name}: folder {folder!r} does not exist on {self.account.host}; fix accounts.{self.name}.folders (the server has: {shown})"
        return f"account {self.name}: {self.account.host} refused to open folder {folder!r}: {_server_text(exc)}"

    def _sync_folder(self, client: IMAPClient, folder: str) -> SyncReport:
        report = SyncReport(source=self.name)
        state = self.store.folder_state(self.name, folder, kind="imap")
        sel = self._select(client, folder)
        self._uidnext_seen[folder] = sel.uidnext
        if state.uidvalidity is not None and state.uidvalidity != sel.uidvalidity:
            log.warning(
                "imap account %s folder %r: UIDVALIDITY changed %s -> %s; rescanning (stored messages are matched by content, nothing is stored twice)",
                self.name, folder, state.uidvalidity, sel.uidvalidity,
                extra={"account": self.name, "folder": folder, "old": state.uidvalidity, "new": sel.uidvalidity},
            )
            self.store.reset_folder(state.id, sel.uidvalidity)
            state = self.store.folder_state(self.name, folder, kind="imap")
            plan = self._plan_rescan(client, state, sel)
        elif state.uidvalidity is None:
            if state.notify_from_uid is None:  # (not yet set by an earlier, interrupted first pass)
                first_uidnext = sel.uidnext or max(client.search(["ALL"]) or [0]) + 1
                state = self.store.set_first_sight(state, from_uid=first_uidnext,
                                                   after=self._arrival_boundary(client, folder, first_uidnext))
            plan = self._plan_first_sync(client, state, sel)
        else:
            plan = _FolderPlan(self._uids_after(client, state.last_uid))
        label_folder = self._folder_label_value(folder)
        # A backlog stores each group in a writer thread while the next one is fetched and
        # parsed: SQLite and psycopg2 release the GIL, and storing was half of a long sync's time.
        # One group at most is in the writer, and groups are stored in UID order, each with its
        # sync position in one transaction, so a failure still leaves a safe position behind.
        writer = ThreadPoolExecutor(1, thread_name_prefix=f"jeeves-store-{self.name}") if len(plan.uids) >= PARALLEL_PARSE_MIN else None
        pending: Future | None = None
        try:
            for group, parsed in self._parsed_groups(client, plan.uids):
                if not group:
                    continue
                messages = [self._new_message(item, p, state, label_folder is not None) for item, p in zip(group, parsed)]
                if pending is not None:
                    report.add(*pending.result())  # raises the writer's error, and fetching stops
                if writer is not None:
                    pending = writer.submit(self._store_group, messages, state, sel.uidvalidity, label_folder)
                else:
                    report.add(*self._store_group(messages, state, sel.uidvalidity, label_folder))
                if self._stop is not None and self._stop.is_set():
                    break  # everything fetched so far is stored with its sync state; the rest waits
            if pending is not None:
                report.add(*pending.result())
        finally:
            if writer is not None:
                writer.shutdown(wait=True)  # a group being stored is finished, never abandoned
        if self._stop is not None and self._stop.is_set():
            return report
        if plan.final_advance is not None or state.uidvalidity is None:
            self.store.store_batch([], folder=state, uidvalidity=sel.uidvalidity, advance_to=plan.final_advance or 0)
        self._sync_keyword_labels(client, state.id, sel.uidvalidity)
        return report

    def _store_group(self, messages: list[NewMessage], state: FolderState, uidvalidity: int,
                     label_folder: int | None) -> tuple[int, int]:
        """Store one fetched group and advance the folder past it; (fetched, newly stored)."""
        refs = self.store.store_batch(messages, folder=state, uidvalidity=uidvalidity, advance_to=max(m.uid for m in messages))
        if label_folder is not None:
            self._apply_labels({ref.pk: label_folder for ref in refs}, LABEL_FOLDER)
        return len(messages), sum(ref.new for ref in refs)

    def _folder_label_value(self, folder: str) -> int | None:
        if folder == self.account.positive_folder:
            return 1
        if folder == self.account.negative_folder:
            return 0
        return None

    def _uids_after(self, client: IMAPClient, last_uid: int) -> list[int]:
        # "UID n:*" always matches the newest message even when n is past it: filter here.
        return sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)

    def _arrival_boundary(self, client: IMAPClient, folder: str, first_uidnext: int) -> datetime:
        """The server's INTERNALDATE of the newest message in the folder at first sight (the
        highest UID below ``first_uidnext``), or EMPTY_AT_FIRST_SIGHT."""
        newest = first_uidnext - 1
        if newest <= 0:
            return EMPTY_AT_FIRST_SIGHT
        internal = client.fetch([newest], ["INTERNALDATE"]).get(newest, {}).get(b"INTERNALDATE")
        if internal is None:  # that UID was expunged: the highest one left below it
            older = [uid for uid in client.search(["UID", f"1:{newest}"]) if uid <= newest]
            if not older:
                return EMPTY_AT_FIRST_SIGHT
            internal = client.fetch([max(older)], ["INTERNALDATE"]).get(max(older), {}).get(b"INTERNALDATE")
        if not isinstance(internal, datetime):
            log.warning("imap account %s folder %r: the server gave no INTERNALDATE; mail dated before now (local clock) will not be texted",
                        self.name, folder, extra={"account": self.name, "folder": folder})
            return _utcnow()
        return internal if internal.tzinfo is not None else internal.replace(tzinfo=timezone.utc)

    def _plan_first_sync(self, client: IMAPClient, state: FolderState, sel: _Selected) -> _FolderPlan:
        mode = self.account.first_sync
        top = (sel.uidnext - 1) if sel.uidnext else None
        if mode == "new":
            if top is None:
                top = max(client.search(["ALL"]) or [0])
            log.info("imap account %s folder %r: first sync, only mail arriving from now on", self.name, state.name, extra={"account": self.name, "folder": state.name, "skipped_up_to_uid": top})
            return _FolderPlan([], final_advance=top)
        if mode == "all":
            uids = sorted(client.search(["ALL"]))
        elif mode.startswith("last:"):
            uids = sorted(client.search(["ALL"]))[-int(mode[5:]):] if int(mode[5:]) else []
        else:
            since = date.fromisoformat(mode[6:])
            uids = sorted(client.search(["SINCE", since]))
        log.info("imap account %s folder %r: first sync (%s) fetches %d messages", self.name, state.name, mode, len(uids), extra={"account": self.name, "folder": state.name, "mode": mode, "to_fetch": len(uids)})
        return _FolderPlan(uids, final_advance=top if top is not None else (uids[-1] if uids else 0))

    def _plan_rescan(self, client: IMAPClient, state: FolderState, sel: _Selected) -> _FolderPlan:
        top = (sel.uidnext - 1) if sel.uidnext else None
        if self.account.first_sync == "new" and state.notify_after is not None:
            # Only mail from around the time the account was added can be unseen; older mail
            # was deliberately never fetched.
            since = state.notify_after.date() - timedelta(days=1)
            uids = sorted(client.search(["SINCE", since]))
        else:
            uids = sorted(client.search(["ALL"]))
        return _FolderPlan(uids, final_advance=top if top is not None else (uids[-1] if uids else 0))

    # --- fetching -----------------------------------------------------------------------------

    def _fetch_groups(self, client: IMAPClient, uids: Sequence[int]) -> Iterator[list[dict]]:
        """Fetched messages in ascending UID groups bounded by count and bytes.

        Sizes come first so a huge message is fetched as header + body prefix, and so one group
        never holds more than ``_GROUP_BYTES`` (plus one message at the size limit).
        """
        limit = self.account.max_message_bytes
        gmail = client.has_capability("X-GM-EXT-1")
        meta_items = ["RFC822.SIZE", "FLAGS", "INTERNALDATE"] + (["X-GM-MSGID"] if gmail else [])
        batch = self.account.fetch_batch
        for start in range(0, len(uids), batch):
            chunk = list(uids[start:start + batch])
            meta = client.fetch(chunk, meta_items)
            group: list[int] = []
            group_bytes = 0
            for uid in chunk:
                if uid not in meta:
                    continue  # expunged since it was listed
                size = int(meta[uid].get(b"RFC822.SIZE") or 0)
                cost = min(size, limit)
                if group and group_bytes + cost > _GROUP_BYTES:
                    yield self._fetch_bodies(client, group, meta, limit)
                    group, group_bytes = [], 0
                group.append(uid)
                group_bytes += cost
            if group:
                yield self._fetch_bodies(client, group, meta, limit)

    def _fetch_bodies(self, client: IMAPClient, uids: list[int], meta: dict, limit: int) -> list[dict]:
        small = [uid for uid in uids if int(meta[uid].get(b"RFC822.SIZE") or 0) <= limit]
        small_set = set(small)
        large = [uid for uid in uids if uid not in small_set]
        items: dict[int, dict] = {}
        if small:
            bodies = client.fetch(small, ["BODY.PEEK[]"])
            for uid in small:
                raw = bodies.get(uid, {}).get(b"BODY[]")
                if raw is not None:
                    items[uid] = {"uid": uid, "raw": bytes(raw), "truncated": False}
                else:
                    log.warning("imap account %s: no body returned for UID %s (expunged meanwhile?)", self.name, uid, extra={"account": self.name, "uid": uid})
        for uid in large:
            header = client.fetch([uid], ["BODY.PEEK[HEADER]"]).get(uid, {}).get(b"BODY[HEADER]") or b""
            room = max(1024, limit - len(header))
            part = client.fetch([uid], [f"BODY.PEEK[TEXT]<0.{room}>"]).get(uid, {})
            text = next((v for k, v in part.items() if k.startswith(b"BODY[TEXT]")), b"") or b""
            items[uid] = {"uid": uid, "raw": bytes(header) + bytes(text), "truncated": True}
            log.info("imap account %s: message UID %s (%s bytes) is over max_message_bytes; storing it truncated",
                     self.name, uid, meta[uid].get(b"RFC822.SIZE"), extra={"account": self.name, "uid": uid, "size": meta[uid].get(b"RFC822.SIZE"), "kept": len(header) + len(text)})
        out = []
        for uid in uids:
            if uid in items:
                item = items[uid]
                m = meta[uid]
                item["size"] = int(m.get(b"RFC822.SIZE") or len(item["raw"]))
                item["flags"] = tuple(_text(f) for f in m.get(b"FLAGS", ()))
                item["internal_date"] = m.get(b"INTERNALDATE")
                item["gmail_msgid"] = m.get(b"X-GM-MSGID")
                out.append(item)
        return out

    def _parsed_groups(self, client: IMAPClient, uids: Sequence[int]) -> Iterator[tuple[list[dict], list[ParsedEmail]]]:
        """Fetched groups with their parsed form, in UID order.

        MIME parsing costs more than fetching and storing together (~500 msg/s per core), so a
        large backlog is parsed in worker processes while the next group is being fetched: at
        most two groups are in flight, so memory stays bounded. Workers are spawned (not forked:
        the daemon has threads) for the backlog and stopped after it.
        """
        pool = self._parse_pool() if len(uids) >= PARALLEL_PARSE_MIN else None
        if pool is None:
            for group in self._fetch_groups(client, uids):
                yield group, [parse_email(item["raw"]) for item in group]
            return
        pending: tuple[list[dict], list[Future] | None] | None = None
        try:
            for group in self._fetch_groups(client, uids):
                futures = self._submit_parse(group)
                if pending is not None:
                    yield pending[0], self._collect_parsed(*pending)
                pending = (group, futures)
            if pending is not None:
                group, futures = pending
                pending = None
                yield group, self._collect_parsed(group, futures)
        finally:
            if pending is not None and pending[1]:
                for f in pending[1]:
                    f.cancel()
            # Backlogs are rare (first sync, rescan): give the workers' memory back.
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _submit_parse(self, group: list[dict]) -> list[Future] | None:
        pool = self._pool
        if pool is None:
            return None
        step = max(1, -(-len(group) // (2 * self._workers)))
        try:
            return [pool.submit(parse_many, [it["raw"] for it in group[i:i + step]]) for i in range(0, len(group), step)]
        except (BrokenProcessPool, RuntimeError) as exc:
            self._disable_pool(exc)
            return None

    def _collect_parsed(self, group: list[dict], futures: list[Future] | None) -> list[ParsedEmail]:
        if futures is not None:
            try:
                return [p for f in futures for p in f.result()]
            except (BrokenProcessPool, CancelledError) as exc:
                self._disable_pool(exc)
        return [parse_email(item["raw"]) for item in group]

    def _disable_pool(self, exc: BaseException) -> None:
        # E.g. a script without an ``if __name__ == "__main__"`` guard cannot spawn workers.
        log.warning("imap account %s: parse workers unavailable (%s); parsing in-process", self.name, exc, extra={"account": self.name})
        pool, self._pool, self._workers = self._pool, None, 0
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _parse_pool(self) -> Executor | None:
        if self._workers < 2:
            return None
        if self._pool is None:
            # spawn, not fork: the daemon has threads, and forking them is unsafe.
            self._pool = ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_exit_with_parent, initargs=(os.getpid(),))
        return self._pool

    def _new_message(self, item: dict, parsed: ParsedEmail, state: FolderState, label_folder: bool) -> NewMessage:
        internal = item["internal_date"]
        if isinstance(internal, datetime) and internal.tzinfo is None:
            internal = internal.replace(tzinfo=timezone.utc)
        notify = not label_folder
        if notify and state.notify_from_uid is not None:
            notify = item["uid"] >= state.notify_from_uid  # exact: the server's own numbering
        elif notify and state.notify_after is not None and isinstance(internal, datetime):
            notify = internal > state.notify_after
        return NewMessage(
            raw=item["raw"],
            parsed=parsed,
            uid=item["uid"],
            flags=item["flags"],
            gmail_msgid=int(item["gmail_msgid"]) if item.get("gmail_msgid") is not None else None,
            internal_date=internal if isinstance(internal, datetime) else None,
            size=item["size"],
            truncated=item["truncated"],
            notify=notify,
        )

    # --- labels -------------------------------------------------------------------------------

    def _sync_keyword_labels(self, client: IMAPClient, folder_id: int, uidvalidity: int) -> None:
        """Keywords (and Gmail labels) may be set or changed long after a message was stored,
        so each pass asks the server which messages carry them rather than trusting old FLAGS."""
        acct = self.account
        checks: list[tuple[list, list, str]] = []
        if acct.positive_keyword or acct.negative_keyword:
            checks.append((
                ["KEYWORD", acct.positive_keyword] if acct.positive_keyword else None,
                ["KEYWORD", acct.negative_keyword] if acct.negative_keyword else None,
                LABEL_KEYWORD,
            ))
        if (acct.positive_gmail_label or acct.negative_gmail_label) and client.has_capability("X-GM-EXT-1"):
            checks.append((
                ["X-GM-LABELS", acct.positive_gmail_label] if acct.positive_gmail_label else None,
                ["X-GM-LABELS", acct.negative_gmail_label] if acct.negative_gmail_label else None,
                LABEL_GMAIL,
            ))
        for positive, negative, source in checks:
            try:
                pos = set(client.search(positive)) if positive else set()
                neg = set(client.search(negative)) if negative else set()
            except (OSError, IMAPClientAbortError):
                raise
            except IMAPClientError as exc:
                log.warning("imap account %s: label search (%s) failed: %s", self.name, source, _server_text(exc), extra={"account": self.name, "source": source})
                continue
            both = pos & neg
            wanted = {uid: 1 for uid in pos - both} | {uid: 0 for uid in neg - both}
            if not wanted:
                continue
            pks = self.store.message_pks_at(folder_id, uidvalidity, sorted(wanted))
            self._apply_labels({pk: wanted[uid] for uid, pk in pks.items()}, source)

    def _apply_labels(self, values: dict[int, int], source: str) -> int:
        """Add a label where the newest one from ``source`` differs (a relabel), never a duplicate."""
        if not values:
            return 0
        current = self.store.newest_labels(list(values), source)
        added = 0
        for pk, value in values.items():
            if current.get(pk) != value:
                self.store.add_label(pk, value, source)
                added += 1
        if added:
            log.info("imap account %s: %d %s labels recorded", self.name, added, source, extra={"account": self.name, "source": source, "count": added})
        return added

    # --- watching -----------------------------------------------------------------------------

    def _deliver(self, report: SyncReport, on_stored: Callable[[SyncReport], None]) -> None:
        if report.stored:
            try:
                on_stored(report)
            except Exception:  # noqa: BLE001 - a consumer bug must not stop ingestion
                log.exception("imap account %s: on_stored callback failed", self.name, extra={"account": self.name})

    def _idle_until_change(self, stop: threading.Event, on_stored: Callable[[SyncReport], None]) -> None:
        """IDLE on the first folder until it changes, ``poll_interval`` passes (other folders),
        the renewal deadline comes, or ``stop`` is set. Returns to let ``watch`` resync."""
        client = self._client
        assert client is not None
        folder = self._idle_folder or self.folders()[0]
        try:
            sel = self._select(client, folder)
            if sel.uidnext is not None and sel.uidnext != self._uidnext_seen.get(folder):
                return  # mail arrived between the sync and now: resync before idling
            client.idle()
        except (OSError, IMAPClientAbortError) as exc:
            raise ConnectionLost(f"account {self.name}: connection lost before IDLE: {exc}") from None
        started = time.monotonic()
        horizon = min(IDLE_RENEW_SECONDS, self.account.poll_interval if len(self.folders()) > 1 else IDLE_RENEW_SECONDS)
        try:
            while not stop.is_set() and time.monotonic() - started < horizon:
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
                self._drop_client()
                if not stop.is_set():
                    raise ConnectionLost(f"account {self.name}: connection lost during IDLE: {exc}") from None


def _exit_with_parent(parent_pid: int) -> None:
    """Parse-worker initializer: leave as soon as the process that spawned the worker is gone.

    A ``ProcessPoolExecutor`` worker waits on its task queue, whose write end it holds itself,
    so when the daemon is killed (SIGKILL, OOM killer) the workers would live on as orphans
    (~85 MB each, two per crash). A daemon thread polls the parent instead.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="jeeves-parent-watch", daemon=True).start()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _server_text(exc: Exception) -> str:
    text = str(exc)
    for prefix in ("login failed: ", "select failed: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.strip("[]'\" b") or type(exc).__name__


def sync_accounts(accounts: Iterable[AccountSettings], store: Store) -> SyncReport:
    """Sync several accounts once; a failing account is recorded and reported, the rest go on."""
    total = SyncReport(source="imap")
    for account in accounts:
        source = IMAPSource(account, store)
        try:
            total.merge(source.sync())
        except JeevesError as exc:
            total.errors.append(str(exc))
        finally:
            source.close()
    return total
