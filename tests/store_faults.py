"""A database that fails on cue: ``Store.store_batch`` raising on its n-th call, as a full disk would.

Used by the backlog tests of both sources (IMAP and mail files) to check that reading stops at
the first failed store and the folder position never moves past what was stored.
"""

from __future__ import annotations

from jeeves.errors import StoreError
from jeeves.storage import Store


def fail_store_batch_on_call(store: Store, monkeypatch, call: int) -> list[int]:
    """Make ``store.store_batch`` raise ``StoreError`` on its ``call``-th call (others store);
    returns the list of batch sizes seen, one per call. Undo with ``monkeypatch.undo`` or by
    restoring ``store.store_batch``."""
    real, calls = store.store_batch, []

    def store_batch(messages, **kwargs):
        calls.append(len(messages))
        if len(calls) == call:
            raise StoreError("database error (test): disk I/O error")
        return real(messages, **kwargs)

    monkeypatch.setattr(store, "store_batch", store_batch)
    return calls
