"""The one clock helper of the package: aware UTC datetimes, so no naive time leaks anywhere.

Every stored timestamp is a ``DateTime(timezone=True)``; SQLite hands them back naive, which
``as_utc`` repairs on the way out. Components that must be testable take a ``Clock`` (a
callable returning ``utc_now()``-like values) instead of calling this directly.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

#: Something that tells the time (``utc_now``, or a test's fake clock).
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` with UTC attached when the database returned it naive (SQLite does)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value
