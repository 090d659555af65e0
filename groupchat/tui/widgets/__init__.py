"""The chat screen's widgets, one per module."""

from .history_input import HistoryInput
from .member_list import MemberList
from .message_log import LogEntry, MessageLog
from .status_bar import StatusBar
from .tree_panel import TreePanel
from .unread_marker import UnreadMarker

__all__ = ["HistoryInput", "LogEntry", "MemberList", "MessageLog", "StatusBar", "TreePanel", "UnreadMarker"]
