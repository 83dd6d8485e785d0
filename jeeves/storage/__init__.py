"""Storage: the schema (``schema``), the operations the rest of Jeeves uses (``store``), the
outbox repository (``outbox``), the plain records they hand out (``records``), and the SMS
replies applied once each (``replies``)."""

from jeeves.storage.outbox import OutboxRepository
from jeeves.storage.records import (
    AccountRecord,
    Counts,
    DigestLine,
    FolderRecord,
    FolderState,
    LabelRecord,
    MessageRecord,
    NewMessage,
    OutboxProblem,
    PredictionInput,
    StoredRef,
    UncertainMessage,
)
from jeeves.storage.schema import OutboxKind, OutboxStatus
from jeeves.storage.store import Store

__all__ = [
    "AccountRecord", "Counts", "DigestLine", "FolderRecord", "FolderState", "LabelRecord", "MessageRecord",
    "NewMessage", "OutboxKind", "OutboxProblem", "OutboxRepository", "OutboxStatus", "PredictionInput", "Store",
    "StoredRef", "UncertainMessage",
]
