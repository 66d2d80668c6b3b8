"""Streaming compressors for the data objects. Deterministic output: a re-run is byte-identical."""

from __future__ import annotations

import zlib
from typing import Literal, Protocol

import zstandard

Compression = Literal["none", "gzip", "zstd"]

EXTENSIONS: dict[Compression, str] = {"none": ".jsonl", "gzip": ".jsonl.gz", "zstd": ".jsonl.zst"}

# gzip level 6 costs ~16 s per day of observations; level 1 keeps most of the ratio at a
# fraction of the time. zstd level 3 is its own default and cheap.
GZIP_LEVEL = 1
ZSTD_LEVEL = 3


class Compressor(Protocol):
    def compress(self, data: bytes | memoryview) -> bytes | memoryview: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes | memoryview) -> bytes | memoryview:
        return data

    def flush(self) -> bytes:
        return b""


class _Gzip:
    def __init__(self) -> None:
        # wbits=31: a gzip member with mtime 0, so equal input gives equal bytes.
        self._z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._z.compress(data)

    def flush(self) -> bytes:
        return self._z.flush()


class _Zstd:
    def __init__(self) -> None:
        self._z = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._z.compress(data)

    def flush(self) -> bytes:
        return self._z.flush()


_COMPRESSORS: dict[Compression, type[Compressor]] = {"none": _Identity, "gzip": _Gzip, "zstd": _Zstd}


def compressor(kind: Compression) -> Compressor:
    return _COMPRESSORS[kind]()
