"""One small exception family, so callers can catch a whole layer and users read one clear line.

Every message is written for the person running Jeeves: it names what failed and what to do.
Every exception Jeeves raises on purpose is defined here and derives from ``JeevesError``; the
``jeeves`` command prints any of them as one line on stderr and exits 2 (anything else is a bug:
one line, exit 1, the traceback in the log). The tree::

    JeevesError
    ├── ConfigError               a setting Jeeves cannot use (file, environment, secret source)
    ├── NotFound                  no such stored message (an id, Message-ID or file named by the user)
    ├── SourceError               a mail source (IMAP account, mbox file) could not be read
    │   └── AuthenticationError   the server refused the credentials
    ├── StoreError                the database refused an operation
    │   └── DatabaseUnreachable   the database server cannot be reached: waiting may help
    ├── CorpusError               a labelled corpus directory is missing a file or malformed
    ├── ModelError                a model is missing, corrupted, incompatible or cannot be trained
    └── NotifyError               a notification could not be delivered
        ├── SendError             one send failed; ``reason`` and ``code`` say how
        │   ├── TransientSendError    certainly not sent: retry
        │   ├── AmbiguousSendError    maybe sent: reconcile before any resend
        │   └── PermanentSendError    refused for good: never retry
        └── ReconcileUnavailable  the channel keeps no record to ask

The three send errors carry the outbox's exactly-once promise: for each failure it must know
whether the message may have left (see ``jeeves.notify.outbox``).
"""

from __future__ import annotations


class JeevesError(Exception):
    """Base of every error Jeeves raises on purpose."""


class ConfigError(JeevesError):
    """The configuration file or environment holds a value Jeeves cannot use."""


class NotFound(JeevesError):
    """What the user named (a stored message's id or Message-ID) is not there."""


class SourceError(JeevesError):
    """A mail source (IMAP account, mbox file) could not be read."""


class AuthenticationError(SourceError):
    """The server refused the credentials; retrying with the same ones will not help."""


class StoreError(JeevesError):
    """The database refused an operation or is unreachable."""


class DatabaseUnreachable(StoreError):
    """The database server cannot be reached (down, starting, unresolvable): waiting may help."""


class CorpusError(JeevesError):
    """A labelled corpus directory lacks messages.mbox or labels.csv, or one of them is malformed."""


class ModelError(JeevesError):
    """A model file is missing, corrupted, or was built by an incompatible library version."""


class NotifyError(JeevesError):
    """A notification could not be delivered."""


class SendError(NotifyError):
    """One send failed. ``reason`` is the provider's words, ``code`` its error code when it gave
    one (Twilio's 21211, an HTTP status, or a transport tag such as "read-timeout")."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientSendError(SendError):
    """The provider certainly did not take the message (429/20429, connection refused): retry."""


class AmbiguousSendError(SendError):
    """The message may have been accepted (5xx, read timeout): reconcile before any resend."""


class PermanentSendError(SendError):
    """The provider refused the message for a reason retrying cannot fix (bad number, auth)."""

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}" if self.code else self.reason


class ReconcileUnavailable(NotifyError):
    """The channel keeps no record to ask, so an interrupted send cannot be checked."""
