"""IMAP sync planning (``jeeves.sources.imap.plan``) without a server: which UIDs a pass fetches,
where the folder position is left, how fetches are grouped, and which mail may be texted."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from jeeves.sources.imap import plan
from jeeves.sources.imap.plan import EMPTY_AT_FIRST_SIGHT, FolderPlan, Selected, Step
from jeeves.storage.store import FolderState

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def _state(uidvalidity=None, last_uid=0, notify_after=None, notify_from_uid=None) -> FolderState:
    return FolderState(id=1, account="a", name="INBOX", uidvalidity=uidvalidity, last_uid=last_uid,
                       notify_after=notify_after, notify_from_uid=notify_from_uid)


def test_the_step_follows_the_stored_uidvalidity():
    selected = Selected(uidvalidity=7, uidnext=10, exists=9)
    assert plan.step_for(_state(), selected) is Step.FIRST_SIGHT
    assert plan.step_for(_state(uidvalidity=7, last_uid=3), selected) is Step.INCREMENTAL
    assert plan.step_for(_state(uidvalidity=6, last_uid=3), selected) is Step.RESCAN


def test_top_is_uidnext_minus_one_only_when_the_server_says():
    assert Selected(1, 10, 9).top == 9
    assert Selected(1, None, 9).top is None


def test_first_sync_new_fetches_nothing_and_skips_to_the_top():
    assert plan.first_sync_search("new") is None
    assert plan.plan_first_sync("new", [], 41) == FolderPlan([], final_advance=41)


def test_first_sync_last_n_keeps_the_newest_n_and_advances_to_the_top():
    assert plan.first_sync_search("last:2") == ["ALL"]
    assert plan.plan_first_sync("last:2", [5, 3, 9, 7], 12) == FolderPlan([7, 9], final_advance=12)
    assert plan.plan_first_sync("last:0", [5, 3], 12) == FolderPlan([], final_advance=12)


def test_first_sync_all_and_since_without_uidnext_advance_to_the_last_uid_found():
    assert plan.plan_first_sync("all", [4, 2, 8], None) == FolderPlan([2, 4, 8], final_advance=8)
    assert plan.first_sync_search("since:2016-01-04") == ["SINCE", date(2016, 1, 4)]
    assert plan.plan_first_sync("since:2016-01-04", [], None) == FolderPlan([], final_advance=0)


def test_a_rescan_after_first_sync_new_looks_back_one_day_before_first_sight():
    assert plan.rescan_search("new", NOON) == ["SINCE", (NOON - timedelta(days=1)).date()]
    assert plan.rescan_search("new", None) == ["ALL"]
    assert plan.rescan_search("all", NOON) == ["ALL"]
    assert plan.plan_rescan([3, 1, 2], None) == FolderPlan([1, 2, 3], final_advance=3)


def test_uids_after_drops_the_newest_message_that_uid_n_star_always_matches():
    assert plan.uids_after([12], 12) == []
    assert plan.uids_after([15, 13, 12], 12) == [13, 15]


@pytest.mark.parametrize(("uid", "internal", "state", "label_folder", "expected"), [
    (10, None, _state(notify_from_uid=10), False, True),  # arrived after first sight
    (9, NOON, _state(notify_from_uid=10, notify_after=NOON - timedelta(days=1)), False, False),  # UID decides, not date
    (11, None, _state(notify_from_uid=10), True, False),  # label folders are training data
    (3, NOON, _state(notify_after=NOON - timedelta(seconds=1)), False, True),  # renumbered: the date decides
    (3, NOON, _state(notify_after=NOON), False, False),
    (3, None, _state(notify_after=NOON), False, True),  # no date to judge by
    (3, NOON, _state(notify_after=EMPTY_AT_FIRST_SIGHT), False, True),
])
def test_may_notify(uid, internal, state, label_folder, expected):
    assert plan.may_notify(uid, internal, state, label_folder=label_folder) is expected


def test_size_groups_bound_bytes_count_huge_messages_at_the_limit_and_skip_expunged():
    sizes = {1: 40, 2: 40, 3: 40, 5: 10_000, 6: 10}
    groups = plan.size_groups([1, 2, 3, 4, 5, 6], sizes, limit=100, group_bytes=100)
    assert groups == [[1, 2], [3], [5], [6]]  # 4 was expunged; 5 costs its 100 kept bytes
    assert plan.size_groups([1], {1: 500}, limit=1000, group_bytes=100) == [[1]]  # one oversized message still goes
    assert plan.size_groups([], {}, limit=100, group_bytes=100) == []


def test_server_times_become_aware_utc():
    naive = datetime(2026, 11, 23, 12, 0)
    assert plan.as_utc(naive) == NOON and plan.as_utc(NOON) is NOON
    assert plan.as_utc(b"23-Nov-2026") is None and plan.as_utc(None) is None
