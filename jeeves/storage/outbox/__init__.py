"""The outbox: every query on ``outbox`` and ``digest_entries`` lives in this package.

- ``repository``: ``OutboxRepository`` (``store.outbox``), the send lifecycle: queueing alerts
  and digests, claiming, recording what the provider said, reconciling, and the counts
  ``jeeves status`` shows;
- ``conversations``: what the conversation rule (``jeeves.notify.conversations``) asks of the
  alerts already queued;
- ``alerts``: alerts as the user sees them, with their verdicts (the review page);
- ``replies``: what an SMS reply asks of the outbox (which texts went out; the help text),
  inside the reply's own transaction.

Nothing outside ``jeeves.storage`` writes SQL against these tables.
"""

from jeeves.storage.outbox.repository import OutboxRepository

__all__ = ["OutboxRepository"]
