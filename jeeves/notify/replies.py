"""Replies to the texts: "0" teaches Jeeves an alert was wrong, without a terminal.

Jeeves reads replies by polling Twilio's Messages list for inbound texts to its own number
(``twilio.from_number``), so no public webhook is needed and it works behind NAT. Each poll
lists what arrived since the newest reply already handled, minus an overlap (``OVERLAP``) for
clock skew and late listings; exactly-once comes from the SID table, not the watermark
(``jeeves.storage.replies``: the SID is recorded in the transaction that applies the reply).

What a reply means (``parse_reply``):
- ``0`` / ``no`` / ``wrong`` (or ``1`` / ``yes`` / ``right``) labels the newest alert texted
  to the user before the reply;
- ``0 7``, ``#7 0``, ``7 0``, ``wrong #7`` label message #7 (from an alert or a digest);
- Twilio's keywords keep Twilio's meaning and are never labels: STOP and its synonyms opt the
  number out (Twilio then refuses every text with error 21610, a permanent outbox failure, until
  START), HELP/INFO get Twilio's own answer. Jeeves only logs them.
- anything else gets one short help text, at most one a day (``HELP_EVERY``), queued in the
  outbox like an alert (kind ``help``, dedupe key ``help:<SID>``) so it too is sent once.

Texts from any number other than ``notify.to`` are ignored and logged without their text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Callable

from jeeves.clock import Clock, utc_now
from jeeves.config import Settings
from jeeves.errors import ConfigError
from jeeves.storage.replies import (
    HELP_QUEUED,
    KEYWORD,
    LABELLED,
    STRANGER,
    ReceivedReply,
    ReplyIntent,
    apply_reply,
    reply_watermark,
)
from jeeves.storage.outbox.replies import first_text_at

log = logging.getLogger(__name__)

#: Each poll re-lists this much before the newest reply handled (clock skew, late listings).
OVERLAP = timedelta(minutes=10)
#: At most one help text in this long, and only in answer to a reply younger than this.
HELP_EVERY = timedelta(days=1)
#: The help text: one GSM-7 segment.
HELP_TEXT = ("Jeeves: reply 0 if my last alert was wrong, 1 if right, or name one: 0 7 means #7 is wrong. "
             "STOP ends all texts.")

#: Twilio's default opt-out, opt-in and help keywords (a whole message, any case). YES is also
#: one of Twilio's opt-in words; as a reply to an alert it means "right", so Jeeves reads it as a label.
OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
OPT_IN = frozenset({"start", "unstop"})
HELP_WORDS = frozenset({"help", "info"})
NEGATIVE = frozenset({"0", "no", "wrong", "nope", "n"})
POSITIVE = frozenset({"1", "yes", "right", "correct", "y"})

_TOKEN = re.compile(r"#?\w+")

StepHook = Callable[[str, str], None]


def replies_available(settings: Settings) -> bool:
    """Whether replies can be read: Twilio is the channel, with a number people reply to."""
    twilio = settings.twilio
    return bool(settings.notify.channel != "console" and twilio.configured and twilio.from_number and settings.notify.to)


def require_replies(settings: Settings) -> None:
    """Raise the ``ConfigError`` that says what reading replies needs, unless it can be done."""
    if not replies_available(settings):
        raise ConfigError("reading SMS replies needs Twilio: twilio.account_sid, twilio.auth_token, "
                          "twilio.from_number and notify.to")


def replies_polled(settings: Settings) -> bool:
    """Whether the daemon polls for replies (and alerts therefore say "Reply 0 if wrong")."""
    return replies_available(settings) and settings.notify.reply_poll_seconds > 0


def parse_reply(body: str) -> ReplyIntent:
    """What the user's reply asks for (see the module docstring for the forms)."""
    words = " ".join((body or "").split()).strip().lower()
    bare = words.strip(" .!?")
    if bare in OPT_OUT or bare == "stop all":
        return ReplyIntent("keyword", keyword="STOP")
    if bare in OPT_IN:
        return ReplyIntent("keyword", keyword="START")
    if bare in HELP_WORDS:
        return ReplyIntent("keyword", keyword="HELP")
    tokens = _TOKEN.findall(words)
    if len(tokens) == 1:
        value = _value(tokens[0])
        return ReplyIntent("label", value=value) if value is not None else ReplyIntent("unclear")
    if len(tokens) == 2:
        readings = {r for r in (_pair(tokens[0], tokens[1]), _pair(tokens[1], tokens[0])) if r is not None}
        if len(readings) == 1:
            value, pk = readings.pop()
            return ReplyIntent("label", value=value, message_pk=pk)
    return ReplyIntent("unclear")


def _value(token: str) -> int | None:
    if token in NEGATIVE:
        return 0
    if token in POSITIVE:
        return 1
    return None


def _pair(value_token: str, id_token: str) -> tuple[int, int] | None:
    """(value, message id) when ``value_token`` is a verdict and ``id_token`` an id (``7``, ``#7``)."""
    if value_token.startswith("#"):
        return None
    value = _value(value_token)
    digits = id_token[1:] if id_token.startswith("#") else id_token
    if value is None or not digits.isdigit() or int(digits) < 1:
        return None
    return value, int(digits)


@dataclass
class ReplySummary:
    """What one poll did, for the daemon's log and ``jeeves replies``."""

    read: int = 0
    labelled: int = 0
    keywords: int = 0
    help_queued: int = 0
    unclear: int = 0
    ignored: int = 0
    #: Listed again (overlap, another daemon): already applied, left alone.
    already: int = 0
    #: (message id, value) of each label applied.
    labels: list[tuple[int, int]] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name not in ("read", "already"))


class ReplyPoller:
    """Reads new replies from Twilio and applies each once. Call ``poll`` on a timer.

    ``notifier`` is the ``TwilioNotifier`` (its ``received`` lists inbound texts);
    ``on_step(name, sid)`` is called at ``listed`` (read, nothing recorded), inside each
    reply's transaction (``record-uncommitted``) and after it (``recorded``), for crash tests.
    """

    def __init__(self, store, settings: Settings, notifier, *, clock: Clock | None = None,
                 on_step: StepHook | None = None) -> None:
        require_replies(settings)
        self.store = store
        self.notifier = notifier
        self.recipient: str = settings.notify.to  # type: ignore[assignment]
        self._clock = clock or utc_now
        self._on_step = on_step

    def poll(self) -> ReplySummary:
        summary = ReplySummary()
        first_text = first_text_at(self.store, self.recipient)
        if first_text is None:
            return summary  # nothing was ever texted: nothing to answer, nothing to list
        watermark = reply_watermark(self.store)
        since = max(first_text, watermark or first_text) - OVERLAP
        listed = self.notifier.received(since)
        self._step("listed", "")
        for sms in sorted(listed, key=lambda m: (_utc(m.date_sent) or since, m.sid)):
            received = _utc(sms.date_sent)
            if sms.status != "received" or received is None or received < first_text - OVERLAP:
                continue  # still arriving (listed again next poll), or older than any text of Jeeves
            summary.read += 1
            ours = sms.sender == self.recipient
            intent = parse_reply(sms.body) if ours else ReplyIntent("stranger")
            now = self._now()
            applied = apply_reply(
                self.store, ReceivedReply(sms.sid, sms.sender, received, sms.body), intent,
                masked_sender=_mask(sms.sender), help_body=HELP_TEXT, help_every=HELP_EVERY, now=now,
                on_step=self._on_step,
            )
            if applied is None:
                summary.already += 1
                continue
            self._count(summary, applied, sms.sender)
            self._step("recorded", sms.sid)
        if summary.busy:
            log.info("sms replies: %d labelled, %d keywords, %d help texts queued, %d not understood, %d ignored",
                     summary.labelled, summary.keywords, summary.help_queued, summary.unclear, summary.ignored)
        return summary

    def _count(self, summary: ReplySummary, applied, sender: str) -> None:
        facts = {"sid": applied.sid, "from": _mask(sender)}
        if applied.outcome == LABELLED:
            summary.labelled += 1
            summary.labels.append((applied.message_pk, applied.value))
            log.info("sms reply labelled #%d as %d", applied.message_pk, applied.value,
                     extra={**facts, "message_pk": applied.message_pk, "value": applied.value})
        elif applied.outcome == KEYWORD:
            summary.keywords += 1
            meaning = {"STOP": "Twilio refuses every text to this number until START",
                       "START": "Twilio texts this number again",
                       "HELP": "Twilio answered with its help text"}[applied.detail]
            log.warning("sms reply %s: %s", applied.detail, meaning, extra=facts)
        elif applied.outcome == STRANGER:
            summary.ignored += 1
            log.info("sms from a number other than notify.to ignored", extra=facts)
        elif applied.outcome == HELP_QUEUED:
            summary.help_queued += 1
            log.info("sms reply not understood (%s): help text queued", applied.detail,
                     extra={**facts, "outbox_id": applied.outbox_id})
        else:
            summary.unclear += 1
            log.info("sms reply not understood (%s)", applied.detail, extra=facts)

    def _now(self) -> datetime:
        return self._clock().astimezone(timezone.utc)

    def _step(self, name: str, sid: str) -> None:
        if self._on_step is not None:
            self._on_step(name, sid)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _mask(number: str) -> str:
    from jeeves.logs import mask_number

    return mask_number(number)
