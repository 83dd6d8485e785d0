"""Raw RFC 822 bytes to a ``ParsedEmail``: pure, no I/O, never raises on bad input.

Mail in the wild is broken in every way the RFCs allow and many they do not: unknown charsets,
bad boundaries, undecodable headers. The classifier needs the sender's *new* text, separated
from quoted replies and forwarded history, because the question "does this email ask to meet?"
is about what the sender wrote, not what they quoted. The raw bytes are always stored beside
the parse, so a better parser later can re-read everything.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

import charset_normalizer

from jeeves.bodytext import FORWARD_MARKER, html_to_text, split_quoted

#: Cap on the text kept per message; enough for any human-written email, bounded for huge ones.
MAX_TEXT_CHARS = 200_000

class _FetchOncePolicy(policy.EmailPolicy):
    """``policy.default`` that builds each distinct header object once.

    The default policy re-parses a header on every ``get()``; walking a message asks for
    Content-Type about five times, and that re-parsing was half of the parse time (measured in
    bench/bench_parse.py: 2.4x faster with identical results). Header objects are immutable, so
    sharing them between lookups and messages is safe.
    """

    def header_fetch_parse(self, name, value):
        return _parsed_header(name, value)


@functools.lru_cache(maxsize=4096)
def _parsed_header(name: str, value: str):
    return policy.default.header_fetch_parse(name, value)


_PARSER = BytesParser(policy=_FetchOncePolicy())


@dataclass(frozen=True)
class ParsedEmail:
    """What the rest of Jeeves knows about one message."""

    message_id: str | None
    subject: str
    sender: str  # "Name <addr>" as displayed
    sender_address: str  # lower-cased address, for allow/deny lists
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    new_text: str  # what the sender wrote
    quoted_text: str  # replies and forwarded history below it
    is_reply: bool
    is_forward: bool
    thread_key: str  # normalised subject: groups a conversation
    content_hash: str  # sha256 of the raw bytes with line endings normalised
    defects: tuple[str, ...] = field(default=())

    @property
    def n_recipients(self) -> int:
        return len(self.to) + len(self.cc)

    @property
    def body_text(self) -> str:
        return f"{self.new_text}\n{self.quoted_text}".strip()


def content_hash(raw: bytes) -> str:
    """Identity of a message's bytes, independent of CRLF/LF line endings and trailing newlines.

    The same message read from IMAP (CRLF) and from an mbox export (LF) hashes the same.
    """
    return hashlib.sha256(raw.replace(b"\r\n", b"\n").rstrip(b"\n")).hexdigest()


_SUBJECT_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|antw|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def thread_key(subject: str) -> str:
    """Normalised subject shared by a conversation's messages (``Re:``/``Fw:`` stripped)."""
    stripped = _SUBJECT_PREFIX.sub("", subject or "")
    stripped = re.sub(r"\s+", " ", stripped).strip().lower()
    return stripped[:300]


def parse_email(raw: bytes) -> ParsedEmail:
    """Parse ``raw``; on any failure fall back to a best-effort view and record the defect."""
    defects: list[str] = []
    try:
        message = _PARSER.parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 - the parser must never lose a message
        defects.append(f"unparseable: {type(exc).__name__}: {exc}")
        message = EmailMessage(policy=policy.default)
        message.set_payload(raw.decode("utf-8", errors="replace"))
    defects.extend(type(d).__name__ for d in getattr(message, "defects", []) or [])

    headers = _first_header_values(message, defects)
    subject = _header_text(headers, "subject", defects)
    sender_raw = _header_text(headers, "from", defects)
    sender_name, sender_address = _first_address(sender_raw)
    sender = f"{sender_name} <{sender_address}>" if sender_name and sender_address else (sender_address or sender_raw)
    to = _addresses(_header_text(headers, "to", defects))
    cc = _addresses(_header_text(headers, "cc", defects))
    date = _parse_date(_header_text(headers, "date", defects))
    message_id = _msgid(_header_text(headers, "message-id", defects))
    in_reply_to = _msgid(_header_text(headers, "in-reply-to", defects))
    references = tuple(re.findall(r"<[^<>\s]+>", _header_text(headers, "references", defects)))

    body = _body_text(message, defects)
    new_text, quoted_text = split_quoted(body)
    lowered = subject.lower().lstrip()
    is_forward = bool(re.match(r"(fw|fwd|tr|wg)\s*:", lowered)) or bool(FORWARD_MARKER.search(body[:20_000]))
    is_reply = bool(re.match(r"(re|aw|sv|antw)\s*:", lowered)) or in_reply_to is not None

    return ParsedEmail(
        message_id=message_id,
        subject=subject,
        sender=sender,
        sender_address=sender_address.lower(),
        to=to,
        cc=cc,
        date=date,
        in_reply_to=in_reply_to,
        references=references,
        new_text=new_text,
        quoted_text=quoted_text,
        is_reply=is_reply,
        is_forward=is_forward,
        thread_key=thread_key(subject),
        content_hash=content_hash(raw),
        defects=tuple(dict.fromkeys(defects)),
    )


# --- headers -------------------------------------------------------------------------------


#: The headers ``parse_email`` reads; each is looked up once per message.
_WANTED_HEADERS = frozenset({"subject", "from", "to", "cc", "date", "message-id", "in-reply-to", "references"})
#: Raw 8-bit bytes in a header, kept by the parser as lone surrogates.
_SURROGATES = re.compile("[\udc80-\udcff]")
#: An address list of bare addresses only (no display names, quotes, comments or groups).
_BARE_ADDRESSES = re.compile(r"[^\"(<>\\:;@,\s]+@[^\"(<>\\:;@,\s]+(\s*,\s*[^\"(<>\\:;@,\s]+@[^\"(<>\\:;@,\s]+)*")


def _first_header_values(message: Message, defects: list[str]) -> dict[str, object]:
    """The first raw value of each header ``parse_email`` reads, in one pass over the headers."""
    found: dict[str, object] = {}
    try:
        for key, value in message.raw_items():
            lowered = key.lower()
            if lowered in _WANTED_HEADERS and lowered not in found:
                found[lowered] = value
    except Exception as exc:  # noqa: BLE001
        defects.append(f"headers: {type(exc).__name__}")
    return found


def _header_text(headers: dict[str, object], name: str, defects: list[str]) -> str:
    """A header's first value as text, with RFC 2047 encoded words decoded.

    Reads the raw value and decodes it with ``email.header`` instead of building
    ``policy.default``'s structured header objects: those cost more than half of the parse
    time (measured in bench/bench_parse.py) and raise on some malformed values, while Jeeves
    only needs the text.
    """
    raw = headers.get(name)
    if raw is None:
        return ""
    text = str(raw)
    if "=?" in text:
        try:
            text = str(make_header(decode_header(text)))
        except Exception:  # noqa: BLE001 - undecodable encoded words stay as written
            defects.append(f"header {name}: bad encoded word")
    if not text.isascii() and _SURROGATES.search(text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = text.replace("\r", " ").replace("\n", " ")
    return re.sub(r"\s+", " ", text).strip()


def _first_address(value: str) -> tuple[str, str]:
    pairs = getaddresses([value]) if value else []
    for name, addr in pairs:
        if addr:
            return name.strip(), addr.strip()
    return "", value.strip()


def _addresses(value: str) -> tuple[str, ...]:
    if not value:
        return ()
    if _BARE_ADDRESSES.fullmatch(value):
        # "a@x.com, b@y.com": what getaddresses returns, without its character-by-character
        # parser, which was a third of the parse time on mail with long recipient lists.
        return tuple(addr.strip().lower() for addr in value.split(","))
    return tuple(addr.strip().lower() for _, addr in getaddresses([value]) if addr.strip())


def _parse_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _msgid(value: str) -> str | None:
    if not value:
        return None
    match = re.search(r"<[^<>\s]+>", value)
    return match.group(0) if match else value.strip()[:998] or None


# --- body ----------------------------------------------------------------------------------


def _body_text(message: Message, defects: list[str]) -> str:
    """The best human-readable text: text/plain preferred, else HTML converted, else nothing."""
    plain: list[str] = []
    html: list[str] = []
    try:
        parts = list(message.walk()) if message.is_multipart() else [message]
    except Exception as exc:  # noqa: BLE001
        defects.append(f"walk: {type(exc).__name__}")
        parts = [message]
    for part in parts:
        try:
            if part.is_multipart():
                continue
            disposition = (part.get_content_disposition() or "").lower()
            ctype = part.get_content_type()
        except Exception as exc:  # noqa: BLE001
            defects.append(f"part: {type(exc).__name__}")
            continue
        if disposition == "attachment":
            continue
        if ctype == "text/plain":
            plain.append(_decode_part(part, defects))
        elif ctype == "text/html":
            html.append(html_to_text(_decode_part(part, defects)))
        elif ctype == "message/rfc822" and not message.is_multipart():
            plain.append(_decode_part(part, defects))
    text = "\n\n".join(t for t in plain if t.strip()) or "\n\n".join(t for t in html if t.strip())
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_TEXT_CHARS:
        defects.append("text truncated")
        text = text[:MAX_TEXT_CHARS]
    return text


def _decode_part(part: Message, defects: list[str]) -> str:
    """Decode a text part: declared charset, then UTF-8, then detection, then Latin-1."""
    try:
        payload = part.get_payload(decode=True)
    except Exception as exc:  # noqa: BLE001
        defects.append(f"payload: {type(exc).__name__}")
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = None
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        pass
    if charset:
        try:
            return payload.decode(charset)
        except UnicodeDecodeError:
            defects.append(f"bytes not in declared charset {charset}")
        except (LookupError, ValueError, TypeError):  # unknown name, or one with a NUL in it
            defects.append(f"unknown charset {charset!r}")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        pass
    guess = charset_normalizer.from_bytes(payload[:200_000]).best()
    if guess is not None:
        return str(guess) if len(payload) <= 200_000 else payload.decode(guess.encoding, errors="replace")
    return payload.decode("latin-1")


@dataclass(frozen=True)
class EmailDocument:
    """The parts of an email the classifier reads; built from a parse or from a stored row.

    ``ParsedEmail`` has the same attributes, so either can be scored.
    """

    subject: str
    new_text: str
    quoted_text: str = ""
    is_reply: bool = False
    is_forward: bool = False
    n_recipients: int = 1
    sender_address: str = ""

    @classmethod
    def from_parsed(cls, parsed: ParsedEmail) -> "EmailDocument":
        return cls(
            subject=parsed.subject,
            new_text=parsed.new_text,
            quoted_text=parsed.quoted_text,
            is_reply=parsed.is_reply,
            is_forward=parsed.is_forward,
            n_recipients=parsed.n_recipients,
            sender_address=parsed.sender_address,
        )
