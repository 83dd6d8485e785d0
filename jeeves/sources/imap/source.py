"""One IMAP account as a ``Source``: each folder's pass from SELECT to stored messages and labels.

The promises, and how they are kept:

- **Never lose, never repeat.** Per folder, UIDVALIDITY and the highest stored UID live in the
  database and move only inside ``Store.store_batch`` together with the messages they cover. A
  crash between batches refetches at most one batch; storage dedupes by content hash, so a
  replay stores nothing twice. A UIDVALIDITY change (folder recreated, server migrated) resets
  the folder and rescans it; the rescan re-stores nothing because of the same dedupe.
- **Never text about old mail**, judged by the server alone (no local clock): when Jeeves first
  sees a folder it records the server's UIDNEXT (``notify_from_uid``) and the INTERNALDATE of
  the newest message then present (``notify_after``, used once UIDs are renumbered); the rules
  are ``plan.may_notify``. ``first_sync`` limits what the first sync fetches at all.
- **Never mark mail read, never drop it; bounded memory**: see ``fetch``. A long backlog is
  parsed and stored through ``jeeves.sources.backlog``.
- **One failing folder does not stop the rest**; an account-wide failure is recorded for
  ``jeeves status`` and raised as a ``SourceError`` (``jeeves.sources`` has the policy).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from jeeves.config import AccountSettings
from jeeves.clock import utc_now
from jeeves.errors import AuthenticationError, JeevesError, SourceError, StoreError
from jeeves.parsing import ParsedEmail
from jeeves.sources import SyncReport
from jeeves.sources.backlog import Fetched, ParsePool, Writer
from jeeves.sources.imap import plan
from jeeves.sources.imap.fetch import fetch_groups
from jeeves.sources.imap.labels import LABEL_FOLDER, apply_labels, folder_label_value, sync_keyword_labels
from jeeves.sources.imap.plan import EMPTY_AT_FIRST_SIGHT, FolderPlan, Selected, Step
from jeeves.sources.imap.session import ConnectionLost, Session, server_text
from jeeves.storage.store import FolderState, NewMessage, Store

log = logging.getLogger(__name__)




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
        self.session = Session(account)
        self.parser = ParsePool(parse_workers, label=f"imap account {account.name}")
        #: UIDNEXT per folder as last selected: IDLE starts only if nothing arrived since.
        self.uidnext_seen: dict[str, int | None] = {}
        #: The folder ``watch`` IDLEs on: the first one that synced cleanly.
        self.idle_folder: str | None = None
        #: Set by ``watch``: a sync stops between groups once it is set.
        self.stop_event: threading.Event | None = None
        self._wait = sleep or (lambda event, seconds: event.wait(seconds))
        self._account_known = False

    @property
    def name(self) -> str:
        return self.account.name

    # --- the Source protocol ------------------------------------------------------------------

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
            self.session.drop()
            try:
                return self._sync_once()
            except JeevesError as exc:
                self.record_error(exc)
                raise
        except JeevesError as exc:
            self.record_error(exc)
            raise

    def watch(self, stop: threading.Event, on_stored: Callable[[SyncReport], None]) -> None:
        """Keep the account synced until ``stop`` is set; ``on_stored`` hears of each sync that
        stored mail. Never raises for server, network or database trouble (``imap.watch``)."""
        from jeeves.sources.imap.watch import watch

        watch(self, stop, on_stored, self._wait)

    def connect(self) -> IMAPClient:
        """Connect, secure and authenticate, or raise one actionable ``SourceError``."""
        return self.session.connect()

    def close(self) -> None:
        """Log out politely (a broken link is simply dropped) and stop the parse workers."""
        self.parser.close()
        self.session.close()

    def __enter__(self) -> "IMAPSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record_error(self, exc: BaseException) -> None:
        """Record a failure for ``jeeves status``; a database that is down cannot take it."""
        message = str(exc) if isinstance(exc, JeevesError) else f"account {self.name}: {type(exc).__name__}: {exc}"
        try:
            self._ensure_account()
            self.store.record_sync(self.name, error=message)
        except StoreError:
            log.warning("cannot record the sync error: the database is unavailable", extra={"account": self.name})

    # --- one pass -----------------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

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
                self.session.drop()
                raise ConnectionLost(f"account {self.name}: connection lost in folder {folder!r}: {exc}") from None
            except IMAPClientError as exc:  # a NO or BAD reply to SEARCH/FETCH
                message = f"account {self.name}: {self.account.host} refused a command in folder {folder!r}: {server_text(exc)}"
                log.error("%s", message, extra={"account": self.name, "folder": folder})
                folder_errors.append(message)
                continue
            if idle_folder is None:
                idle_folder = folder
            if self._stopping():
                break
        report.errors.extend(folder_errors)
        self.idle_folder = idle_folder  # IDLE on the first folder that synced cleanly
        self.store.record_sync(self.name, error="; ".join(folder_errors) or None)
        if report.fetched:
            log.info("imap account %s: fetched %d, stored %d new", self.name, report.fetched, report.stored,
                     extra={"account": self.name, "fetched": report.fetched, "stored": report.stored})
        return report

    def _ensure_account(self) -> None:
        if not self._account_known:
            self.store.ensure_account(self.name, "imap")
            self._account_known = True

    def select(self, client: IMAPClient, folder: str) -> Selected:
        """SELECT ``folder`` read-only; a refusal is a ``SourceError`` naming the folders that exist."""
        try:
            info = client.select_folder(folder, readonly=True)
        except (OSError, IMAPClientAbortError):
            raise
        except IMAPClientError as exc:
            raise SourceError(self._folder_error(client, folder, exc)) from None
        uidvalidity = info.get(b"UIDVALIDITY")
        if uidvalidity is None:
            raise SourceError(f"account {self.name}: {self.account.host} gave no UIDVALIDITY for {folder!r}; the server cannot be synced incrementally")
        return Selected(int(uidvalidity), info.get(b"UIDNEXT"), int(info.get(b"EXISTS", 0)))

    def _folder_error(self, client: IMAPClient, folder: str, exc: Exception) -> str:
        try:
            names = [name for _flags, _sep, name in client.list_folders()]
        except Exception:  # noqa: BLE001 - the listing is only a hint
            names = []
        if names and folder not in names:
            shown = ", ".join(sorted(names)[:20])
            return f"account {self.name}: folder {folder!r} does not exist on {self.account.host}; fix accounts.{self.name}.folders (the server has: {shown})"
        return f"account {self.name}: {self.account.host} refused to open folder {folder!r}: {server_text(exc)}"

    def _sync_folder(self, client: IMAPClient, folder: str) -> SyncReport:
        report = SyncReport(source=self.name)
        state = self.store.folder_state(self.name, folder, kind="imap")
        selected = self.select(client, folder)
        self.uidnext_seen[folder] = selected.uidnext
        folder_plan, state = self._plan(client, folder, state, selected)
        label_value = folder_label_value(self.account, folder)
        groups = fetch_groups(client, folder_plan.uids, batch=self.account.fetch_batch,
                              limit=self.account.max_message_bytes, account=self.name)
        with Writer(len(folder_plan.uids), name=self.name) as writer:
            for group, parsed in self.parser.parsed(groups, count=len(folder_plan.uids)):
                if not group:
                    continue
                messages = [self._new_message(item, p, state, label_value is not None) for item, p in zip(group, parsed)]
                for done in writer.store(self._store_group, messages, state, selected.uidvalidity, label_value):
                    report.add(*done)  # raises the writer's error, and fetching stops
                if self._stopping():
                    break  # everything fetched so far is stored with its sync state; the rest waits
            for done in writer.drain():
                report.add(*done)
        if self._stopping():
            return report
        if folder_plan.final_advance is not None or state.uidvalidity is None:
            self.store.store_batch([], folder=state, uidvalidity=selected.uidvalidity, advance_to=folder_plan.final_advance or 0)
        sync_keyword_labels(client, self.store, self.account, state.id, selected.uidvalidity)
        return report

    def _plan(self, client: IMAPClient, folder: str, state: FolderState, selected: Selected) -> tuple[FolderPlan, FolderState]:
        """Ask the server what ``plan`` needs to know; the folder state may be reset or set."""
        step = plan.step_for(state, selected)
        if step is Step.INCREMENTAL:
            return plan.FolderPlan(plan.uids_after(client.search(["UID", f"{state.last_uid + 1}:*"]), state.last_uid)), state
        if step is Step.RESCAN:
            log.warning(
                "imap account %s folder %r: UIDVALIDITY changed %s -> %s; rescanning (stored messages are matched by content, nothing is stored twice)",
                self.name, folder, state.uidvalidity, selected.uidvalidity,
                extra={"account": self.name, "folder": folder, "old": state.uidvalidity, "new": selected.uidvalidity},
            )
            self.store.reset_folder(state.id, selected.uidvalidity)
            state = self.store.folder_state(self.name, folder, kind="imap")
            found = client.search(plan.rescan_search(self.account.first_sync, state.notify_after))
            return plan.plan_rescan(found, selected.top), state
        if state.notify_from_uid is None:  # (not yet set by an earlier, interrupted first pass)
            first_uidnext = selected.uidnext or max(client.search(["ALL"]) or [0]) + 1
            state = self.store.set_first_sight(state, from_uid=first_uidnext,
                                               after=self._arrival_boundary(client, folder, first_uidnext))
        mode = self.account.first_sync
        criteria = plan.first_sync_search(mode)
        top = selected.top
        if criteria is None and top is None:
            top = max(client.search(["ALL"]) or [0])
        folder_plan = plan.plan_first_sync(mode, client.search(criteria) if criteria else [], top)
        if mode == "new":
            log.info("imap account %s folder %r: first sync, only mail arriving from now on", self.name, state.name,
                     extra={"account": self.name, "folder": state.name, "skipped_up_to_uid": top})
        else:
            log.info("imap account %s folder %r: first sync (%s) fetches %d messages", self.name, state.name, mode,
                     len(folder_plan.uids), extra={"account": self.name, "folder": state.name, "mode": mode,
                                                   "to_fetch": len(folder_plan.uids)})
        return folder_plan, state

    def _store_group(self, messages: list[NewMessage], state: FolderState, uidvalidity: int,
                     label_value: int | None) -> tuple[int, int]:
        """Store one fetched group and advance the folder past it; (fetched, newly stored)."""
        refs = self.store.store_batch(messages, folder=state, uidvalidity=uidvalidity, advance_to=max(m.uid for m in messages))
        if label_value is not None:
            apply_labels(self.store, {ref.pk: label_value for ref in refs}, LABEL_FOLDER, account=self.name)
        return len(messages), sum(ref.new for ref in refs)

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
        boundary = plan.as_utc(internal)
        if boundary is None:
            log.warning("imap account %s folder %r: the server gave no INTERNALDATE; mail dated before now (local clock) will not be texted",
                        self.name, folder, extra={"account": self.name, "folder": folder})
            return utc_now()
        return boundary

    @staticmethod
    def _new_message(item: Fetched, parsed: ParsedEmail, state: FolderState, label_folder: bool) -> NewMessage:
        assert item.uid is not None
        return NewMessage(
            raw=item.raw,
            parsed=parsed,
            uid=item.uid,
            flags=item.flags,
            gmail_msgid=item.gmail_msgid,
            internal_date=item.internal_date,
            size=item.size,
            truncated=item.truncated,
            notify=plan.may_notify(item.uid, item.internal_date, state, label_folder=label_folder),
        )
