"""The SMS text: one GSM-7 segment that says who, about what, when, and how to say "wrong".

A single segment matters twice: it costs one message, and long SMS split into parts that
some phones show out of order. GSM-7 has no curly quotes or dashes, and one such character
switches the whole text to UCS-2 (70 characters a segment), so text is transliterated first.
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr
from typing import Sequence

#: GSM 03.38 basic character set (each counts as one septet).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Extension table characters: two septets each (escape + character).
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

SMS_LIMIT = 160

_REPLACEMENTS = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u200b": "", "\u2022": "*", "\u00b7": ".",
    "\t": " ", "\u00e7": "c", "\u00e2": "a", "\u00ea": "e", "\u00ee": "i", "\u00f4": "o", "\u00fb": "u",
}


def to_gsm7(text: str) -> str:
    """``text`` using only GSM-7 characters: typographic marks mapped, accents dropped, rest '?'."""
    out: list[str] = []
    for char in text:
        if char in GSM7_BASIC or char in GSM7_EXTENDED:
            out.append(char)
            continue
        if char in _REPLACEMENTS:
            out.append(_REPLACEMENTS[char])
            continue
        stripped = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        if stripped and all(c in GSM7_BASIC for c in stripped):
            out.append(stripped)
        else:
            out.append("?")
    return "".join(out)


def gsm7_length(text: str) -> int:
    """Septets ``text`` takes in GSM-7, or -1 when it cannot be encoded in GSM-7 at all."""
    total = 0
    for char in text:
        if char in GSM7_BASIC:
            total += 1
        elif char in GSM7_EXTENDED:
            total += 2
        else:
            return -1
    return total


_DAY = re.compile(
    r"\b(?:(?P<rel>today|tonight|tomorrow)"
    r"|(?P<next>next\s+)?(?P<wd>mon|tues|wednes|thurs|fri|satur|sun)day"
    r"|(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+(?P<dom>[0-3]?\d)(?:st|nd|rd|th)?\b"
    r"|(?P<num>[01]?\d/[0-3]?\d)(?:/\d{2,4})?)\b",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b(?:(?P<h12>1[0-2]|0?[1-9])(?::(?P<m12>[0-5]\d))?\s*(?P<ampm>[ap])\.?m\b\.?"
    r"|(?P<h24>[01]?\d|2[0-3]):(?P<m24>[0-5]\d)\b"
    r"|(?P<noon>noon|midday))",
    re.IGNORECASE,
)
_WEEKDAYS = {"mon": "Mon", "tues": "Tue", "wednes": "Wed", "thurs": "Thu", "fri": "Fri", "satur": "Sat", "sun": "Sun"}


def proposed_time(text: str) -> str | None:
    """A short "when" found in the sender's text ("Tue 3pm", "tomorrow", "May 5 10:30"), or None.

    Deliberately simple: the first day mention and the first clock time. A wrong guess costs
    little (the subject is there too); a missing one just leaves it out.
    """
    if not text:
        return None
    parts: list[str] = []
    day = _DAY.search(text)
    if day:
        if day.group("rel"):
            parts.append(day.group("rel").lower())
        elif day.group("wd"):
            name = _WEEKDAYS[day.group("wd").lower()]
            parts.append(f"next {name}" if day.group("next") else name)
        elif day.group("mon"):
            parts.append(f"{day.group('mon')[:3].capitalize()} {int(day.group('dom'))}")
        elif day.group("num"):
            parts.append(day.group("num"))
    clock = _TIME.search(text)
    if clock:
        if clock.group("ampm"):
            minutes = clock.group("m12")
            hour = int(clock.group("h12"))
            parts.append(f"{hour}{':' + minutes if minutes and minutes != '00' else ''}{clock.group('ampm').lower()}m")
        elif clock.group("h24"):
            parts.append(f"{int(clock.group('h24'))}:{clock.group('m24')}")
        else:
            parts.append("noon")
    return " ".join(parts) or None


def sender_name(sender: str, sender_address: str = "") -> str:
    """The display name a person would recognise, else the address."""
    name, address = parseaddr(sender or "")
    name = " ".join(name.replace('"', "").split())
    return name or address or sender_address or "someone"


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    if limit <= 3:
        return text[:limit]
    cut = text[: limit - 3]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "..."


def compose(*, message_pk: int, sender: str, subject: str, new_text: str = "", sender_address: str = "",
            limit: int = SMS_LIMIT, command: str = "jeeves", places: Sequence[str] = (),
            reply_hint: bool = False) -> str:
    """The alert for one message, at most ``limit`` GSM-7 septets whenever that is possible.

    The id and the correction hint are never cut (they are how the user acts on the alert);
    the subject is shortened first, then the sender's name. ``command`` is how the user runs
    Jeeves against the same database (``jeeves -c PATH`` when it was started with --config),
    so the hint works when typed as printed. ``places`` (best first, ``jeeves.places.suggest``)
    become "Suggest: A or B."; they give way before the subject is cut below a readable length,
    the second first, so a suggestion never costs a second segment.
    With ``reply_hint`` (Jeeves reads replies to its texts, ``jeeves.notify.replies``) the hint
    is the shorter "Reply 0 if wrong" instead.
    """
    who = to_gsm7(sender_name(sender, sender_address))
    when = proposed_time(new_text)
    subj = to_gsm7(" ".join((subject or "").split())) or "(no subject)"
    when_part = f" ({when})" if when else ""
    tail = f" #{message_pk} Wrong? {to_gsm7(command)} label {message_pk} 0"
    if reply_hint:
        tail = f" #{message_pk} Reply 0 if wrong"

    def render(w: str, s: str, wp: str) -> str:
        return f"{w} wants to meet{wp}, no place yet: \"{s}\".{tail}"

    text = render(who, subj, when_part)
    if gsm7_length(text) <= limit and not places:
        return text
    for count in range(min(len(places), 2), 0, -1):
        suggestion = " Suggest: " + " or ".join(to_gsm7(" ".join(p.split())) for p in places[:count]) + "."
        fitted = compose(message_pk=message_pk, sender=sender, subject=subject, new_text=new_text,
                         sender_address=sender_address, limit=limit - gsm7_length(suggestion), command=command,
                         reply_hint=reply_hint)
        if fitted.endswith(tail) and gsm7_length(fitted) + gsm7_length(suggestion) <= limit and _readable(fitted, subj):
            return fitted[: -len(tail)] + suggestion + tail
    if gsm7_length(text) <= limit:
        return text
    who = _shorten(who, 24)
    fixed = gsm7_length(render(who, "", when_part))
    room = limit - fixed
    if room < 12 and when_part:
        when_part = ""
        fixed = gsm7_length(render(who, "", when_part))
        room = limit - fixed
    subj = _fit(subj, max(room, 8))
    return render(who, subj, when_part)


def _readable(fitted: str, subject: str, keep: int = 20) -> bool:
    """Whether the subject quoted in ``fitted`` kept at least ``keep`` characters (or all of it)."""
    start = fitted.find('no place yet: "') + len('no place yet: "')
    end = fitted.rfind('".')
    return end - start >= min(keep, len(subject))


def _fit(text: str, septets: int) -> str:
    """Shorten ``text`` until its GSM-7 length fits (extension characters count twice)."""
    limit = septets
    candidate = _shorten(text, limit)
    while gsm7_length(candidate) > septets and limit > 4:
        limit -= 1
        candidate = _shorten(text, limit)
    return candidate
