"""The Textual chat UI: :class:`~groupchat.tui.app.ChatApp` over a chat session's notices."""

from .app import ChatApp, run_chat

__all__ = ["ChatApp", "run_chat"]
