"""One small exception family, so callers can catch a whole layer and users read one clear line.

Every message is written for the person running Jeeves: it names what failed and what to do.
"""

from __future__ import annotations


class JeevesError(Exception):
    """Base of every error Jeeves raises on purpose."""


class ConfigError(JeevesError):
    """The configuration file or environment holds a value Jeeves cannot use."""


class SourceError(JeevesError):
    """A mail source (IMAP account, mbox file) could not be read."""


class AuthenticationError(SourceError):
    """The server refused the credentials; retrying with the same ones will not help."""


class StoreError(JeevesError):
    """The database refused an operation or is unreachable."""


class DatabaseUnreachable(StoreError):
    """The database server cannot be reached (down, starting, unresolvable): waiting may help."""


class ModelError(JeevesError):
    """A model file is missing, corrupted, or was built by an incompatible library version."""


class NotifyError(JeevesError):
    """A notification could not be delivered."""
