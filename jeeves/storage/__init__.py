"""Storage: the schema (``schema``) and the operations the rest of Jeeves uses (``store``)."""

from jeeves.storage.store import Counts, FolderState, NewMessage, PredictionInput, Store, StoredRef

__all__ = ["Counts", "FolderState", "NewMessage", "PredictionInput", "Store", "StoredRef"]
