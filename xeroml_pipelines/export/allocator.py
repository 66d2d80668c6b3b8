"""The process's C allocator, asked to give freed memory back while an export streams.

An export allocates and frees one response buffer per block (a few MB each, hundreds per
partition). glibc raises its mmap threshold to the largest size freed so far, after which such
buffers come from the heap, whose freed space is kept and fragments: the exporting process then
grows with the number of blocks, not with what is in flight (over HTTP, 204 MB at 200k rows and
247 MB at 2M). Fixed thresholds, set once per exporting process, turn that off, as
MALLOC_TRIM_THRESHOLD_ would at start-up (measured: 194 MB and 213 MB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# glibc's mallopt parameters: buffers from 1 MB up are mapped on their own and unmapped when
# freed; at most 1 MB of freed heap is kept.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_THRESHOLD_BYTES = 1 << 20


@functools.cache
def return_freed_memory() -> bool:
    """Fix the mmap and trim thresholds once per process; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD_BYTES))
