"""The daily digest: one text a day listing the mail Jeeves was unsure about.

A text interrupts; only mail Jeeves is sure about deserves one. A message scored between the
model's digest and text thresholds waits in ``digest_entries`` instead, and once a day, at the
local time the user chose (``notify.digest_time`` in ``notify.timezone``), one text lists the
waiting messages with their ids, so ambiguous mail costs one glance a day and each item can be
labelled like an alert (``jeeves label ID 1``).

The digest is an ordinary outbox row (kind ``digest``, dedupe key ``digest:<local date>``),
composed and linked to the entries it lists in one transaction (``Store.queue_digest``). So it
is sent exactly once by the same sender as alerts, there is at most one per local day however
many daemons share the database, and an entry is listed in exactly one digest. What does not
fit in one digest waits for the next day's.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from jeeves.notify.message import _fit, gsm7_length, sender_name, to_gsm7
from jeeves.notify.policy import sender_matches
from jeeves.storage import DigestLine

#: Four concatenated SMS segments (153 GSM-7 septets each once split): long enough for about
#: eight entries, short enough to read at a glance.
DIGEST_LIMIT = 4 * 153
#: How every digest begins (the console prints digests apart from alerts by it).
DIGEST_HEAD = "Jeeves digest, maybe meetings:"


def due_date(now: datetime, at: time | None, tz_name: str) -> date | None:
    """The local date whose digest is due at ``now``, or None before the day's digest time."""
    if at is None:
        return None
    local = now.astimezone(ZoneInfo(tz_name))
    return local.date() if local.time().replace(tzinfo=None) >= at else None


def _item(line: DigestLine) -> str:
    who = sender_name(line.sender, line.sender_address)
    if "@" in who:  # a bare address: its local part says who, in fewer characters
        who = who.partition("@")[0]
    who = _fit(to_gsm7(who), 20)
    subject = _fit(to_gsm7(" ".join((line.subject or "").split())) or "(no subject)", 34)
    return f"#{line.message_pk} {who}: {subject}"


#: How the user says an entry does need a place: by reply when Jeeves reads replies, else the CLI.
CLI_HINT = " Needs a place? jeeves label ID 1"
REPLY_HINT = " Needs a place? Reply 1 #ID"


def compose_digest(lines: list[DigestLine], *, limit: int = DIGEST_LIMIT,
                   tail_hint: str = CLI_HINT) -> tuple[str, list[DigestLine]]:
    """The digest text and the lines it lists (as many as fit in ``limit`` septets, oldest first)."""
    head = DIGEST_HEAD
    listed: list[DigestLine] = []
    items: list[str] = []
    for line in lines:
        more = len(lines) - len(listed) - 1
        rest = f" (+{more} tomorrow)" if more else ""
        candidate = "; ".join(items + [_item(line)])
        if gsm7_length(f"{head} {candidate}.{rest}{tail_hint}") > limit and items:
            break
        items.append(_item(line))
        listed.append(line)
    more = len(lines) - len(listed)
    rest = f" (+{more} tomorrow)" if more else ""
    return f"{head} {'; '.join(items)}.{rest}{tail_hint}", listed


def allowed(line: DigestLine, allow_senders, deny_senders, own_addresses=()) -> bool:
    """The sender lists apply to the digest as to alerts, and the user's own mail is never listed."""
    if (line.sender_address or "").strip().lower() in own_addresses:
        return False
    allow = tuple(s.strip().lower() for s in allow_senders if s.strip())
    deny = tuple(s.strip().lower() for s in deny_senders if s.strip())
    if deny and sender_matches(line.sender_address, deny):
        return False
    return not allow or sender_matches(line.sender_address, allow)
