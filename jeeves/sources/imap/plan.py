"""Sync planning: which UIDs one pass over a folder fetches, in which groups, and which may be texted.

Pure functions over what the server said (SELECT's answer, SEARCH results, sizes): no I/O, so
every rule is unit-tested without a server (tests/test_imap_plan.py). ``jeeves.sources.imap.
source`` asks the server the questions named here and acts on the answers.

The rules: a folder seen for the first time records the server's UIDNEXT and fetches only what
``first_sync`` asks for; a changed UIDVALIDITY rescans (storage's content-hash dedupe stores
nothing twice); otherwise only UIDs above the stored position are fetched. Mail is texted when
its UID is at or above the UIDNEXT of first sight (the server's own numbering, no local clock),
or, once UIDs were renumbered, when the server dated it after the newest message of first sight.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Mapping, Sequence

from jeeves import clock
from jeeves.storage.store import FolderState

#: ``notify_after`` of a folder that was empty at first sight: everything in it arrived later.
EMPTY_AT_FIRST_SIGHT = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class Selected:
    """The server's answer to SELECT."""

    uidvalidity: int
    uidnext: int | None
    exists: int

    @property
    def top(self) -> int | None:
        """The highest UID the folder can hold now, when the server said (UIDNEXT - 1)."""
        return self.uidnext - 1 if self.uidnext else None


@dataclass
class FolderPlan:
    """What one pass over a folder must fetch: UIDs ascending, and where to leave ``last_uid``."""

    uids: list[int]
    final_advance: int | None = None


class Step(enum.Enum):
    FIRST_SIGHT = "first"  # never synced: record the boundary, fetch what first_sync asks for
    RESCAN = "rescan"  # UIDVALIDITY changed: UIDs were renumbered
    INCREMENTAL = "incremental"  # fetch what is above the stored position


def step_for(state: FolderState, selected: Selected) -> Step:
    if state.uidvalidity is None:
        return Step.FIRST_SIGHT
    if state.uidvalidity != selected.uidvalidity:
        return Step.RESCAN
    return Step.INCREMENTAL


def first_sync_search(mode: str) -> list | None:
    """SEARCH criteria a first sync in ``mode`` needs; None for "new" (it fetches nothing)."""
    if mode == "new":
        return None
    if mode == "all" or mode.startswith("last:"):
        return ["ALL"]
    return ["SINCE", date.fromisoformat(mode[6:])]


def plan_first_sync(mode: str, found: Sequence[int], top: int | None) -> FolderPlan:
    """The first pass: ``found`` answers ``first_sync_search(mode)``; ``top`` is ``Selected.top``
    (for "new" without UIDNEXT, the caller passes the highest UID present)."""
    if mode == "new":
        return FolderPlan([], final_advance=top)
    uids = sorted(found)
    if mode.startswith("last:"):
        keep = int(mode[5:])
        uids = uids[-keep:] if keep else []
    return FolderPlan(uids, final_advance=_advance(uids, top))


def rescan_search(first_sync: str, notify_after: datetime | None) -> list:
    """SEARCH criteria of a rescan after UIDVALIDITY changed."""
    if first_sync == "new" and notify_after is not None:
        # Only mail from around the time the account was added can be unseen; older mail was
        # deliberately never fetched.
        return ["SINCE", notify_after.date() - timedelta(days=1)]
    return ["ALL"]


def plan_rescan(found: Sequence[int], top: int | None) -> FolderPlan:
    uids = sorted(found)
    return FolderPlan(uids, final_advance=_advance(uids, top))


def uids_after(found: Sequence[int], last_uid: int) -> list[int]:
    """UIDs above the stored position: "UID n:*" always matches the newest message even when n
    is past it, so the answer to that search is filtered here."""
    return sorted(uid for uid in found if uid > last_uid)


def _advance(uids: list[int], top: int | None) -> int:
    return top if top is not None else (uids[-1] if uids else 0)


def may_notify(uid: int, internal_date: datetime | None, state: FolderState, *, label_folder: bool) -> bool:
    """Whether a positive on this message may be texted: never label-folder mail (training
    data), never mail that was in the folder when Jeeves first saw it."""
    if label_folder:
        return False
    if state.notify_from_uid is not None:
        return uid >= state.notify_from_uid  # exact: the server's own numbering
    if state.notify_after is not None and internal_date is not None:
        return internal_date > state.notify_after
    return True


def size_groups(uids: Sequence[int], sizes: Mapping[int, int], *, limit: int, group_bytes: int) -> list[list[int]]:
    """``uids`` (ascending) cut into groups of at most ``group_bytes`` raw bytes, each message
    counted at most ``limit`` (what a fetch of a huge message keeps). A UID missing from
    ``sizes`` was expunged since it was listed and is left out; a group holds at least one."""
    groups: list[list[int]] = []
    group: list[int] = []
    total = 0
    for uid in uids:
        if uid not in sizes:
            continue
        cost = min(sizes[uid], limit)
        if group and total + cost > group_bytes:
            groups.append(group)
            group, total = [], 0
        group.append(uid)
        total += cost
    if group:
        groups.append(group)
    return groups


def as_utc(value: object) -> datetime | None:
    """A server timestamp as an aware datetime (naive ones are UTC); None when it is not one."""
    return clock.as_utc(value) if isinstance(value, datetime) else None
