"""From a decoded mail body to the text a person reads: HTML made plain, and the sender's new
words split from the history they quoted or forwarded.

Pure functions, used by ``jeeves.parsing`` for every message. The split matters to the
classifier: "does this email ask to meet?" is about what the sender wrote, not what they quoted.
"""

from __future__ import annotations

import re


def html_to_text(html: str) -> str:
    """Visible text of an HTML body; scripts and styles dropped, block elements on new lines."""
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(html, "html.parser")
        for tag in soup(["script", "style", "head"]):
            tag.decompose()
        for br in soup.find_all("br"):
            br.replace_with("\n")
        text = soup.get_text("\n")
    except Exception:  # noqa: BLE001 - malformed HTML degrades to tag stripping
        text = re.sub(r"<[^>]+>", " ", html)
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- quoted history ------------------------------------------------------------------------

FORWARD_MARKER = re.compile(
    r"^\s*(-{3,}\s*Forwarded by\b|-{3,}\s*Forwarded message\s*-{3,}|Begin forwarded message:)",
    re.IGNORECASE | re.MULTILINE,
)
_HISTORY_MARKERS: list[tuple[str, re.Pattern[str]]] = [
    # (a lower-case substring every match contains, the pattern)
    # Outlook's marker, also when glued onto the end of the sender's last line.
    ("original message", re.compile(r"-{2,}\s*Original Message\s*-{2,}", re.IGNORECASE)),
    ("forward", FORWARD_MARKER),
    # "On Mon, 5 Jun 2000, Jane Doe wrote:" (may wrap onto a second line), or "Jane wrote:"
    ("wrote:", re.compile(r"^\s*On\b[^\n]{0,200}(\n[^\n]{0,200})?\bwrote:\s*$", re.IGNORECASE | re.MULTILINE)),
    ("wrote:", re.compile(r"^[^\n>]{1,200}\bwrote:\s*$", re.IGNORECASE | re.MULTILINE)),
    # Outlook: "From: X" followed closely by Sent:/Date:/To:
    ("from:", re.compile(r"^\s*From:\s[^\n]*\n(\s*[^\n]*\n){0,2}\s*(Sent|Date|To):\s", re.IGNORECASE | re.MULTILINE)),
    # Lotus Notes: "Name@ORG\n07/06/2000 05:45 PM\nTo: ..." or '"X" <a@b> on 04/23/2001 10:53:37 AM\nTo:'
    ("to:", re.compile(
        r"^[^\n]*\n[ \t]*\d{1,2}/\d{1,2}/\d{2,4}[ \t]+\d{1,2}:\d{2}(:\d{2})?[ \t]*[AP]M[ \t]*\n(\s*\n){0,2}\s*To:\s",
        re.IGNORECASE | re.MULTILINE,
    )),
    ("to:", re.compile(
        r"^[^\n]*\bon[ \t]+\d{1,2}/\d{1,2}/\d{2,4}[ \t]+\d{1,2}:\d{2}(:\d{2})?[ \t]*[AP]M[ \t]*\n(\s*\n){0,2}\s*To:\s",
        re.IGNORECASE | re.MULTILINE,
    )),
    ("from:", re.compile(r"^\s*From:\s+[^\n]*\d{1,2}/\d{1,2}/\d{2,4}\s+\d{1,2}:\d{2}", re.IGNORECASE | re.MULTILINE)),
]


_HEADER_LINE = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]{0,30}):[ \t]?")
_MAIL_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "subject", "date", "sent", "message-id", "return-path", "reply-to", "received",
    "mime-version", "content-type", "content-transfer-encoding",
})
_ADDRESSING = frozenset({"from", "to", "cc", "sent"})


def _header_block_start(text: str, lowered: str, window: int = 4) -> int:
    """Where a quoted block of mail headers starts (a forward pasted inline, a Lotus Notes
    "To:/cc:/Subject:" block), or ``len(text)``; ``lowered`` is ``text.lower()``, computed once by the caller.

    A block starts at a known header line followed, within a few lines (wrapped values allowed),
    by another one; one of them must name a person (From/To/Cc/Sent). A list the sender typed
    ("Time: 3pm / Place: TBD") or a letter heading ("Subject: … Date: …") is not such a
    block, so it stays new text.
    """
    if "subject:" not in lowered and "sent:" not in lowered and "date:" not in lowered:
        return len(text)
    lines = text.split("\n")
    offsets, position = [], 0
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    names = []
    for line in lines:
        match = _HEADER_LINE.match(line)
        names.append(match.group(1).lower() if match and match.group(1).lower() in _MAIL_HEADERS else None)
    for i, name in enumerate(names):
        if name is None:
            continue
        following = [n for n in names[i + 1 : i + window] if n is not None]
        if following and ({name, *following} & _ADDRESSING) and len({name, *following}) >= 2:
            return offsets[i]
    return len(text)


def split_quoted(text: str) -> tuple[str, str]:
    """Split a body into (new text, quoted/forwarded history).

    The history starts at the earliest marker any common client writes: Outlook's "Original
    Message", Lotus Notes' name/date/To: block, "Forwarded by", "On … wrote:". Lines quoted
    with ``>`` above that point also count as history.
    """
    lowered = text.lower()
    cut = _header_block_start(text, lowered)
    for needle, pattern in _HISTORY_MARKERS:
        if needle not in lowered:
            continue  # most bodies have no history at all: skip the regex scan
        match = pattern.search(text)
        if match and match.start() < cut:
            cut = match.start()
    head, tail = text[:cut], text[cut:]
    new_lines, quoted_lines = [], []
    for line in head.split("\n"):
        (quoted_lines if line.lstrip().startswith(">") else new_lines).append(line)
    new_text = "\n".join(new_lines).strip()
    quoted = "\n".join(quoted_lines + ([tail] if tail else [])).strip()
    return new_text, quoted
