"""The sans-I/O protocol core: bytes in, events and bytes out.

Nothing here does I/O, reads a clock or a random source it was not given, or imports asyncio,
websockets, textual or the relay server (import-linter checks this in CI).
"""
