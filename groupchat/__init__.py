"""groupchat: end-to-end encrypted terminal group chat with tree-based group key agreement.

This package import is deliberately light: the relay imports :mod:`groupchat.relay_protocol`
and must not pull in any key-material code.
"""

__version__ = "0.1.0"
