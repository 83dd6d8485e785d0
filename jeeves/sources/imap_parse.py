"""Parse-worker entry point, kept apart so worker processes import only ``jeeves.parsing``."""

from __future__ import annotations

from jeeves.parsing import ParsedEmail, parse_email


def parse_many(raws: list[bytes]) -> list[ParsedEmail]:
    return [parse_email(raw) for raw in raws]
