"""Which text of an email each feature reads: subject, the sender's new text, the quoted history.

The label is read from the sender's *new* text, so history the parser's line-anchored markers
missed (an "-----Original Message-----" glued to a line, a pasted header block) is cut off here
and counted as quoted instead. Every text is cut to ``MAX_CHARS``.
"""

from __future__ import annotations

import re

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

#: Text beyond this is signatures, disclaimers and pasted reports; cutting it keeps scoring fast.
MAX_CHARS = 4000

# History the parser's line-anchored markers miss: "...later.-----Original Message-----" glued to
# a line, or a Notes/Outlook header block ("To: … cc: …" / "From: … Sent: …") inside the new text.
_INLINE_HISTORY = re.compile(
    r"-{3,}\s*Original Message\s*-{3,}|-{3,}\s*Forwarded by|^\s*To:\s[^\n]*\n(?:[^\n]*\n){0,3}\s*cc:|"
    r"^\s*From:\s[^\n]*\n(?:[^\n]*\n){0,3}\s*(?:Sent|Date|To):|^_{20,}\s*$|^\*{20,}\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def new_text_of(document, max_chars: int = MAX_CHARS) -> str:
    """The sender's new text with leftover history cut off; what the label is read from."""
    text = (document.new_text or "")[: max_chars]
    match = _INLINE_HISTORY.search(text)
    return text[: match.start()] if match else text


def quoted_text_of(document, max_chars: int = MAX_CHARS) -> str:
    """Everything below the sender's own words, including history the parser left in new_text."""
    text = document.new_text or ""
    match = _INLINE_HISTORY.search(text[:max_chars])
    extra = text[match.start():] if match else ""
    return (extra + "\n" + (document.quoted_text or ""))[: max_chars]


TEXT_FIELDS = {
    "new_text": new_text_of,
    "quoted_text": quoted_text_of,
    "subject": lambda d, n: (d.subject or "")[:n],
}


class FieldText(BaseEstimator, TransformerMixin):
    """One text field of each document, cut to ``max_chars``: ``subject``, ``new_text``, ``quoted_text``."""

    def __init__(self, field: str = "new_text", max_chars: int = MAX_CHARS):
        self.field = field
        self.max_chars = max_chars

    def fit(self, documents, y=None):
        if self.field not in TEXT_FIELDS:
            raise ValueError(f"field must be one of {sorted(TEXT_FIELDS)}, got {self.field!r}")
        return self

    def transform(self, documents) -> list[str]:
        get = TEXT_FIELDS[self.field]
        return [get(d, self.max_chars) for d in documents]

    def get_feature_names_out(self, input_features=None):  # text, not features; for completeness
        return np.array([self.field], dtype=object)


class JoinedText(BaseEstimator, TransformerMixin):
    """Subject and the whole body (new + quoted) as one string: what the baseline reads."""

    def fit(self, documents, y=None):
        return self

    def transform(self, documents) -> list[str]:
        return [f"{d.subject}\n{d.new_text}\n{d.quoted_text}" for d in documents]
