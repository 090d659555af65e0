"""The asyncio chat session: websocket I/O, reconnect, resume, timers and local stores.

It drives the sans-I/O core and moves bytes; it carries no group-protocol rules of its own.
Nothing here imports Textual: the TUI and the headless bot both sit on top of it.
"""
