"""Where the user met a correspondent before, and what an alert suggests: "Ninfa's (met there 3 times)".

A place counts as "met there" when a confident mention (``jeeves.places.extract``) settles it in the new
text of mail between the two of them; each conversation counts once, however many replies
repeat "see you at Ninfa's". Offices (and desks) are turned to the reader's side: "my office"
written by Sally is "Sally's office", written by the user it is "your office".

An alert suggests up to two places: those met at before (most conversations first), then the
user's favourites from the config. It suggests nothing when the request reads as a call
(a place would be wrong) or already names a place — no suggestion beats a wrong one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import TYPE_CHECKING, Iterable, Sequence

from jeeves.places.extract import OFFICE, SUGGEST_CONFIDENCE, extract_places, place_key
from jeeves.storage.places import Exchanged

if TYPE_CHECKING:
    from jeeves.config import PlacesSettings

MAX_SUGGESTIONS = 2
#: An alert reads at most this many of the newest stored messages with the sender (about a
#: second of extraction on a busy machine; bench/bench_places.py --speed).
ALERT_HISTORY = 500

#: A request to talk remotely: a place would be a wrong suggestion.
_REMOTE = re.compile(
    r"\b(?:call|calls|phone|telephone|conference\s+call|con\s*call|dial[\s-]?in|call[\s-]?in|bridge|webex|video|zoom|skype)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class MetPlace:
    """A place the user met one correspondent at."""

    place: str
    kind: str
    times: int  # conversations that settled it
    last: datetime | None
    evidence: str  # the sentence of the newest mention

    def describe(self) -> str:
        return f"{self.place} (met there {'once' if self.times == 1 else f'{self.times} times'})"


def _first_name(sender: str, fallback: str) -> str:
    name, address = parseaddr(sender or "")
    name = " ".join(name.replace('"', "").split())
    if "," in name:  # "Smith, Sally"
        name = name.split(",", 1)[1].strip()
    if name:
        return name.split()[0]
    local = (address or fallback).split("@")[0]
    return local.split(".")[0].capitalize() or "their"


def _from_reader_side(place: str, kind: str, message: Exchanged, correspondent_name: str) -> str | None:
    """``place`` as the user would say it; None for an office whose owner is unclear."""
    if kind != OFFICE:
        return place
    owner, noun = place.split()[0].lower(), place.split()[-1]  # noun: office, desk, cube
    if owner in ("his", "her", "our"):
        return None
    if owner == "my":
        return f"your {noun}" if message.from_user else f"{correspondent_name}'s {noun}"
    if owner == "your":
        return f"{correspondent_name}'s {noun}" if message.from_user else f"your {noun}"
    return place


def places_met(exchanges: Iterable[Exchanged], *, correspondent_name: str | None = None) -> list[MetPlace]:
    """Places settled in ``exchanges`` (mail with one correspondent), most conversations first."""
    conversations: dict[str, set[str]] = {}
    newest: dict[str, tuple[datetime | None, str, str, str]] = {}
    for message in exchanges:
        name = correspondent_name or _first_name("" if message.from_user else message.sender, message.correspondent)
        for mention in extract_places(message.new_text):
            if mention.confidence < SUGGEST_CONFIDENCE:
                continue
            place = _from_reader_side(mention.place, mention.kind, message, name)
            if place is None:
                continue
            key = place_key(place)
            conversations.setdefault(key, set()).add(message.conversation)
            seen = newest.get(key)
            if seen is None or (message.sent_at and (seen[0] is None or message.sent_at >= seen[0])):
                newest[key] = (message.sent_at, place, mention.kind, mention.evidence)
    met = [MetPlace(newest[k][1], newest[k][2], len(c), newest[k][0], newest[k][3]) for k, c in conversations.items()]
    epoch = datetime.min
    return sorted(met, key=lambda p: (-p.times, -(p.last.replace(tzinfo=None) - epoch).total_seconds() if p.last else 0, p.place))


def suggest(met: Sequence[MetPlace], favourites: Sequence[str], request_text: str,
            limit: int = MAX_SUGGESTIONS) -> list[str]:
    """What an alert about ``request_text`` suggests, best first: at most ``limit`` short phrases."""
    if _REMOTE.search(request_text or ""):
        return []
    if any(m.confidence >= SUGGEST_CONFIDENCE for m in extract_places(request_text or "")):
        return []
    chosen: list[str] = []
    keys: set[str] = set()
    for place in met:
        if len(chosen) == limit:
            break
        chosen.append(place.describe())
        keys.add(place_key(place.place))
    for favourite in favourites:
        if len(chosen) == limit:
            break
        favourite = " ".join(favourite.split())
        if favourite and place_key(favourite) not in keys:
            chosen.append(favourite)
            keys.add(place_key(favourite))
    return chosen


def alert_places(store, places: "PlacesSettings", user_addresses: Sequence[str], alert) -> list[str]:
    """The places an alert suggests (``[]`` when off, or none fits). ``alert`` is the due outbox
    row (``jeeves.storage.records.DueRow``: its message's id, sender and new text).

    Called when the alert's text is composed; that text is committed with the send attempt,
    before Twilio is called, so a crash or a resend repeats exactly the same suggestion.
    """
    if alert.message_pk is None or not places.suggest or not alert.sender_address:
        return []
    from jeeves.storage.places import exchanged_with

    history = exchanged_with(store, alert.sender_address, user_addresses, exclude_pk=alert.message_pk,
                             limit=ALERT_HISTORY)
    met = places_met(history, correspondent_name=_first_name(alert.sender, alert.sender_address))
    return suggest(met, places.favourites, alert.new_text or "")


@dataclass(frozen=True)
class CorrespondentPlaces:
    """What ``jeeves places`` shows for one person."""

    address: str
    name: str
    places: list[MetPlace]


def learn_places(exchanges: Iterable[Exchanged]) -> list[CorrespondentPlaces]:
    """Every correspondent with a place met at, most places-met first (then by address).

    Streams: only messages with a confident mention are kept in memory.
    """
    keep: dict[str, list[Exchanged]] = {}
    names: dict[str, str] = {}
    for message in exchanges:
        if not message.from_user and message.sender:
            names[message.correspondent] = " ".join(parseaddr(message.sender)[0].replace('"', "").split())
        if any(m.confidence >= SUGGEST_CONFIDENCE for m in extract_places(message.new_text)):
            keep.setdefault(message.correspondent, []).append(message)
    found = []
    for address, messages in keep.items():
        display = names.get(address, "")
        met = places_met(messages, correspondent_name=_first_name(f"{display} <{address}>" if display else "", address))
        if met:
            found.append(CorrespondentPlaces(address, display, met))
    return sorted(found, key=lambda c: (-sum(p.times for p in c.places), c.address))
