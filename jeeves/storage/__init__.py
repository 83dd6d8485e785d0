"""Storage: the schema (``schema``) and the operations the rest of Jeeves uses (``store``)."""

from jeeves.storage import replies as _replies  # noqa: F401 - puts sms_replies on Base.metadata
from jeeves.storage.store import Counts, DigestLine, FolderState, NewMessage, PredictionInput, Store, StoredRef

__all__ = ["Counts", "DigestLine", "FolderState", "NewMessage", "PredictionInput", "Store", "StoredRef"]
