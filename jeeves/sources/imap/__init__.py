"""IMAP ingestion over ``imapclient``: fetch new mail once (``sync``), or watch it arrive (``watch``).

The package face; one concern per module, each with its promise in its docstring:

- ``session``: one authenticated connection (TLS, login, XOAUTH2/OAUTHBEARER), and the one
  definition of a loopback host (plaintext is allowed only there);
- ``plan``: sync planning as pure functions (which UIDs, which groups, what may be texted);
- ``fetch``: UIDs to ``Fetched`` messages, bounded by count and bytes, never marking mail read;
- ``labels``: the user's judgements from folders, keywords and Gmail labels;
- ``source``: ``IMAPSource``, a folder's pass from SELECT to stored messages;
- ``watch``: IDLE (else polling) with reconnect backoff; it stores mail, never classifies.
"""

from jeeves.sources.imap.session import ConnectionLost, is_loopback_host
from jeeves.sources.imap.source import IMAPSource

__all__ = ["ConnectionLost", "IMAPSource", "is_loopback_host"]
