"""The demo: one pass over the shipped sample mailbox, then which alerts were planted requests.

The sample is real Enron mail: 280 unlabelled messages plus 20 planted ones whose labels a
person checked (``planted.csv``): 12 meeting requests that still need a place and 8 look-alikes
that do not. The demo uses the shipped model, prints alerts on the console and keeps its own
SQLite database (``<data_dir>/demo.db``), so it never touches the mail database Jeeves watches
for you. Run again, it stores and alerts nothing new and reports the same.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from jeeves import resources
from jeeves.config import MailboxSettings, NotifySettings, Settings
from jeeves.service import Jeeves, PassReport


@dataclass(frozen=True)
class PlantedMessage:
    message_id: str
    #: 1: a request that still needs a place (should be texted); 0: a look-alike (should not).
    label: int
    pk: int | None
    subject: str
    flagged: bool
    #: Unsure: listed in the daily digest rather than texted.
    in_digest: bool = False


@dataclass
class DemoReport:
    run: PassReport
    planted: list[PlantedMessage]
    #: Flagged messages among the unlabelled rest (nobody checked them: hits or false alarms).
    other_flagged: int
    messages: int

    def to_text(self) -> str:
        ordered = sorted(self.planted, key=lambda p: (p.pk is None, p.pk or 0))
        requests = [p for p in ordered if p.label == 1]
        lookalikes = [p for p in ordered if p.label == 0]
        lines = [
            f"The sample mailbox holds {self.messages} real emails; {len(self.planted)} were planted with labels a person checked:",
            f"{len(requests)} meeting requests that still need a place (Jeeves should text these) and "
            f"{len(lookalikes)} look-alikes that do not (it should not).",
            f"Planted requests: {sum(p.flagged for p in requests)} of {len(requests)} flagged",
        ]
        lines += [_line(p, "flagged" if p.flagged else "in digest" if p.in_digest else "MISSED") for p in requests]
        lines.append(f"Planted look-alikes: {sum(p.flagged for p in lookalikes)} of {len(lookalikes)} flagged")
        lines += [_line(p, "FALSE ALARM" if p.flagged else "in digest" if p.in_digest else "not flagged")
                  for p in lookalikes]
        lines.append(f"Other flagged messages: {self.other_flagged} of the {self.messages - len(self.planted)} unlabelled "
                     "ones (nobody checked them: some are real requests, some false alarms).")
        lines.append("An alert's #id is the stored message; correct Jeeves with `jeeves label ID 0|1`.")
        return "\n".join(lines)


def _line(planted: PlantedMessage, verdict: str) -> str:
    where = f"#{planted.pk}" if planted.pk is not None else "(not stored)"
    return f"  {where:>6}  {verdict:11}  {planted.subject[:70] or '(no subject)'}"


def demo_settings(settings: Settings) -> Settings:
    """``settings`` turned into the demo's: the sample mailbox, the shipped model, the console,
    an SQLite database of its own in ``data_dir``; no IMAP accounts."""
    return settings.model_copy(update={
        "database": settings.database.model_copy(update={"url": f"sqlite:///{settings.data_dir / 'demo.db'}"}),
        "model": settings.model.model_copy(update={"dir": resources.shipped_models_dir(), "path": None}),
        "accounts": [],
        "mailboxes": [MailboxSettings(path=resources.sample_mailbox(), notify=True)],
        # The day's digest of unsure mail is shown at once, whatever the time of day.
        "notify": NotifySettings(channel="console", to=settings.notify.to, digest_time="00:00"),
    })


def run_demo(settings: Settings) -> DemoReport:
    app = Jeeves(demo_settings(settings))
    try:
        run = app.run_once()
        with open(resources.planted_csv(), newline="") as handle:
            rows = list(csv.DictReader(handle))
        found = app.store.flagged_by_message_id([r["message_id"] for r in rows])
        planted = []
        for row in rows:
            pk, subject, flagged, listed = found.get(row["message_id"], (None, "", False, False))
            planted.append(PlantedMessage(row["message_id"], int(row["label"]), pk, subject, flagged, listed))
        counts = app.store.counts()
        return DemoReport(run, planted, counts.positives - sum(p.flagged for p in planted), counts.messages)
    finally:
        app.close()
