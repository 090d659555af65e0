"""A small TLS-presentation-language codec (RFC 8446 §3, RFC 9420 §2.1).

Fixed-width integers are big-endian. ``opaque x<V>`` is a variable-length vector whose length is
a QUIC-style varint (RFC 9420 §2.1.2): the top two bits of the first byte give the width of the
length field (1, 2 or 4 bytes), ``0b11`` is invalid, and non-minimal encodings are rejected so
that every structure has exactly one encoding (signatures and hashes depend on that).

Every vector read takes a ``max_len`` so that an oversized field is rejected before it is used.
Writing a value that does not fit its field (an integer out of range, a vector longer than a
varint can say) raises :class:`ConfigError`: it is a local bug or a caller's mistake, and it must
surface as a :class:`GroupChatError`, never as ``struct.error`` or ``ValueError``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TypeVar

from .errors import (
    ConfigError,
    FieldTooLargeError,
    InvalidValueError,
    NonMinimalLengthError,
    TrailingDataError,
    TruncatedError,
)

__all__ = ["MAX_VARINT", "Reader", "Writer", "encode_varint", "opaque"]

T = TypeVar("T")

MAX_VARINT = (1 << 30) - 1

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def encode_varint(n: int) -> bytes:
    """Encode ``n`` as the minimal RFC 9420 §2.1.2 variable-length integer."""
    if n < 0:
        raise ConfigError("a vector length must be non-negative")
    if n < 1 << 6:
        return bytes((n,))
    if n < 1 << 14:
        return _U16.pack(0x4000 | n)
    if n <= MAX_VARINT:
        return _U32.pack(0x80000000 | n)
    raise ConfigError(f"a vector of {n} bytes is longer than the format's {MAX_VARINT}")


def opaque(data: bytes) -> bytes:
    """Encode ``opaque data<V>``: varint length then the bytes."""
    return encode_varint(len(data)) + data


def _in_range(v: int, bits: int) -> int:
    if not 0 <= v < 1 << bits:
        raise ConfigError(f"{v} does not fit in a uint{bits} field")
    return v


class Writer:
    """Accumulates an encoding; every method returns ``self`` so calls can chain."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, v: int) -> Writer:
        self._parts.append(bytes((_in_range(v, 8),)))
        return self

    def u16(self, v: int) -> Writer:
        self._parts.append(_U16.pack(_in_range(v, 16)))
        return self

    def u32(self, v: int) -> Writer:
        self._parts.append(_U32.pack(_in_range(v, 32)))
        return self

    def u64(self, v: int) -> Writer:
        self._parts.append(_U64.pack(_in_range(v, 64)))
        return self

    def raw(self, data: bytes) -> Writer:
        """Append bytes with no length prefix (a fixed-size field or a nested encoding)."""
        self._parts.append(data)
        return self

    def opaque(self, data: bytes) -> Writer:
        self._parts.append(encode_varint(len(data)))
        self._parts.append(data)
        return self

    def vector(self, items: list[bytes]) -> Writer:
        """Append ``T items<V>`` where each item is already encoded."""
        body = b"".join(items)
        return self.opaque(body)

    def optional(self, data: bytes | None) -> Writer:
        """Append ``optional<T>``: a presence octet then the encoded item."""
        if data is None:
            return self.u8(0)
        self._parts.append(b"\x01")
        self._parts.append(data)
        return self

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Consumes an encoding; raises a :class:`DecodeError` subclass on any malformed input."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str = "message") -> None:
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def _take(self, n: int, field: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise TruncatedError(
                f"{self._what}: truncated in {field} (needs {n} bytes, {self.remaining} left)"
            )
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def since(self, start: int) -> bytes:
        """The exact bytes consumed from ``start`` (a saved :attr:`position`) up to now."""
        return self._data[start : self._pos]

    def u8(self, field: str = "u8") -> int:
        return self._take(1, field)[0]

    def u16(self, field: str = "u16") -> int:
        return int(_U16.unpack(self._take(2, field))[0])

    def u32(self, field: str = "u32") -> int:
        return int(_U32.unpack(self._take(4, field))[0])

    def u64(self, field: str = "u64") -> int:
        return int(_U64.unpack(self._take(8, field))[0])

    def fixed(self, n: int, field: str) -> bytes:
        return self._take(n, field)

    def varint(self, field: str = "length") -> int:
        first = self._take(1, field)[0]
        prefix = first >> 6
        if prefix == 0:
            return first & 0x3F
        if prefix == 1:
            v = ((first & 0x3F) << 8) | self._take(1, field)[0]
            if v < 1 << 6:
                raise NonMinimalLengthError(f"{self._what}: non-minimal length in {field}")
            return v
        if prefix == 2:
            rest = self._take(3, field)
            v = ((first & 0x3F) << 24) | int.from_bytes(rest, "big")
            if v < 1 << 14:
                raise NonMinimalLengthError(f"{self._what}: non-minimal length in {field}")
            return v
        raise InvalidValueError(f"{self._what}: invalid length prefix 0b11 in {field}")

    def opaque(self, field: str, max_len: int, min_len: int = 0) -> bytes:
        n = self.varint(field)
        if n > max_len:
            raise FieldTooLargeError(f"{self._what}: {field} is {n} bytes, more than the limit of {max_len}")
        if n < min_len:
            raise InvalidValueError(
                f"{self._what}: {field} is {n} bytes, fewer than the minimum of {min_len}"
            )
        return self._take(n, field)

    def opaque_exact(self, field: str, size: int) -> bytes:
        """Read ``opaque<V>`` that must be exactly ``size`` bytes (keys, hashes)."""
        n = self.varint(field)
        if n != size:
            raise InvalidValueError(f"{self._what}: {field} must be {size} bytes, got {n}")
        return self._take(n, field)

    def vector(self, field: str, max_bytes: int, item: Callable[[Reader], T], max_items: int) -> list[T]:
        """Read ``T items<V>`` whose total encoded size is at most ``max_bytes``."""
        body = self.opaque(field, max_bytes)
        sub = Reader(body, f"{self._what}.{field}")
        out: list[T] = []
        while sub.remaining:
            if len(out) >= max_items:
                raise FieldTooLargeError(f"{self._what}: {field} has more than {max_items} entries")
            out.append(item(sub))
        return out

    def optional(self, field: str, item: Callable[[Reader], T]) -> T | None:
        flag = self.u8(field)
        if flag == 0:
            return None
        if flag != 1:
            raise InvalidValueError(f"{self._what}: presence flag of {field} is {flag}, not 0/1")
        return item(self)

    def end(self) -> None:
        """Require that the whole input was consumed."""
        if self.remaining:
            raise TrailingDataError(f"{self._what}: {self.remaining} unexpected trailing bytes")
