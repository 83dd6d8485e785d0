"""Storage: the schema (``schema``), the operations the rest of Jeeves uses (``store``), and the
SMS replies applied once each (``replies``, whose table joins ``schema.Base`` on import here)."""

from jeeves.storage import replies as _replies  # noqa: F401 - puts sms_replies on Base.metadata
from jeeves.storage.store import Counts, DigestLine, FolderState, NewMessage, PredictionInput, Store, StoredRef

__all__ = ["Counts", "DigestLine", "FolderState", "NewMessage", "PredictionInput", "Store", "StoredRef"]
