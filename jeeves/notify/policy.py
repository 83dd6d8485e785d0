"""The user's rules for when a positive becomes a text: pure functions of config, history, now.

Kept free of I/O so each rule is tested with an injected clock, and so the outbox applies them
at the moment a row is due (not when it was queued): a text held through quiet hours is
checked again against the thread window and the hourly cap when it finally goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Literal, Sequence
from zoneinfo import ZoneInfo

from jeeves.config import NotifySettings
from jeeves.storage.schema import OutboxKind

Action = Literal["send", "hold", "suppress", "dry_run"]


@dataclass(frozen=True)
class Policy:
    """The notification rules, detached from the settings object they came from."""

    quiet_window: tuple[time, time] | None = None
    timezone: str = "UTC"
    thread_window: timedelta = timedelta(hours=24)
    #: 0: no hourly cap.
    max_per_hour: int = 10
    allow_senders: tuple[str, ...] = ()
    deny_senders: tuple[str, ...] = ()
    #: The user's own addresses: their own mail (a synced Sent folder, a copy to themselves)
    #: is never texted to them, however much it asks to meet.
    own_addresses: tuple[str, ...] = ()
    dry_run: bool = False

    @classmethod
    def from_settings(cls, notify: NotifySettings, *, dry_run: bool = False) -> "Policy":
        """The rules ``notify`` sets; a dry run when it says so or ``dry_run`` asks for one."""
        return cls(
            quiet_window=notify.quiet_window,
            timezone=notify.timezone,
            thread_window=timedelta(hours=notify.thread_window_hours),
            max_per_hour=notify.max_per_hour,
            allow_senders=tuple(s.strip().lower() for s in notify.allow_senders if s.strip()),
            deny_senders=tuple(s.strip().lower() for s in notify.deny_senders if s.strip()),
            dry_run=notify.dry_run or dry_run,
        )


@dataclass(frozen=True)
class Candidate:
    """A due outbox row, with what the rules need to know about it."""

    sender_address: str
    #: The conversation it belongs to (``jeeves.notify.conversations``); "" for none.
    conversation_key: str
    #: ``alert`` (one message) or ``digest`` (the day's list: sender lists were applied to its
    #: entries when it was composed, and it belongs to no conversation).
    kind: str = OutboxKind.ALERT


@dataclass(frozen=True)
class History:
    """Texts already sent (or attempted, or dry-run) that the rules count against."""

    #: When the newest text of the candidate's thread went out, if any.
    last_in_thread: datetime | None = None
    #: When each text of the last hour went out.
    last_hour: Sequence[datetime] = field(default_factory=tuple)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    #: For ``hold``: the earliest time to look at the row again.
    not_before: datetime | None = None


def sender_matches(address: str, patterns: Sequence[str]) -> bool:
    """``alice@example.com`` matches itself, ``@example.com`` and ``example.com`` (subdomains too)."""
    address = (address or "").strip().lower()
    domain = address.rpartition("@")[2]
    for pattern in patterns:
        if "@" in pattern and not pattern.startswith("@"):
            if address == pattern:
                return True
        else:
            bare = pattern.lstrip("@")
            if domain == bare or domain.endswith("." + bare):
                return True
    return False


def quiet_until(now: datetime, window: tuple[time, time] | None, tz_name: str) -> datetime | None:
    """End of the quiet window containing ``now`` (UTC), or None when ``now`` is not quiet.

    The window is in the user's local time and may wrap midnight ("22:00-07:00"); the end is
    computed in local time so a DST change inside the window still ends it at 07:00 local.
    """
    if window is None:
        return None
    start, end = window
    if start == end:
        return None
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    if start < end:
        quiet = start <= t < end
        end_day = local.date()
    else:
        quiet = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not quiet:
        return None
    local_end = datetime.combine(end_day, end, tzinfo=tz)
    return local_end.astimezone(timezone.utc)


def decide(policy: Policy, candidate: Candidate, history: History, now: datetime) -> Decision:
    """What to do with a due row now. Order matters: refusals first, then delays, then dry run."""
    alert = candidate.kind == OutboxKind.ALERT
    if alert and (candidate.sender_address or "").strip().lower() in policy.own_addresses:
        return Decision("suppress", "the user's own mail")
    if alert and policy.deny_senders and sender_matches(candidate.sender_address, policy.deny_senders):
        return Decision("suppress", "sender on deny list")
    if alert and policy.allow_senders and not sender_matches(candidate.sender_address, policy.allow_senders):
        return Decision("suppress", "sender not on allow list")
    if (
        candidate.conversation_key
        and history.last_in_thread is not None
        and policy.thread_window > timedelta(0)
        and now - history.last_in_thread < policy.thread_window
    ):
        return Decision("suppress", f"thread already texted at {history.last_in_thread:%Y-%m-%d %H:%M} UTC")
    end = quiet_until(now, policy.quiet_window, policy.timezone)
    if end is not None:
        return Decision("hold", "quiet hours", end)
    hour_ago = now - timedelta(hours=1)
    recent = sorted(t for t in history.last_hour if t > hour_ago)
    if policy.max_per_hour and len(recent) >= policy.max_per_hour:
        # The hour frees up when the oldest text in it is an hour old.
        frees = recent[len(recent) - policy.max_per_hour] + timedelta(hours=1)
        return Decision("hold", f"hourly cap of {policy.max_per_hour} reached", max(frees, now + timedelta(seconds=1)))
    if policy.dry_run:
        return Decision("dry_run", "dry run")
    return Decision("send")
