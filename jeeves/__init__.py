"""Jeeves reads your mail and texts you when someone wants to meet but no place is set.

The package is a library first: the ``jeeves`` command (``jeeves.cli``) is a thin layer over
``jeeves.service``, which wires mail sources, parsing, storage, classification and notification.
"""

__version__ = "0.1.0"
