"""Process settings for bulk work: what a ``toolkit`` command sets up before its heavy imports.

A command maps, serializes and records millions of short-lived objects and buffers in a few
processes. Defaults tuned for interactive use cost it CPU (measured on ``toolkit replay`` of the
1M-row sample export, 2-core VM, medians of interleaved runs; all together 4.30 -> 4.01 s wall,
7.64 -> 7.17 CPU-s):

- Python's cyclic garbage collector ran a young collection every 700 new containers, and full
  ones over every object the imports made: ~0.25 CPU-s of collections that found next to nothing
  (the work frees its objects by reference counting). A young collection now waits for
  ``GC_THRESHOLD`` containers, and what exists after the imports is frozen
  (:func:`freeze_imports`), out of every later collection.
- numpy's OpenBLAS starts a thread that spins ~0.1 CPU-s waiting for work at import; nothing here
  calls BLAS: one thread (no extra thread at all).
- glibc malloc served blocks over 128 KB-32 MB (request bodies of 3.4 MB, file reads, numpy
  temporaries) with fresh ``mmap`` pages, each page faulted in and zeroed again for every block:
  big blocks now come from the heap, which keeps up to ``TRIM_BYTES`` free for the next ones.
- Arrow's allocator (mimalloc) handed freed pages back to the system after 10 ms, then faulted
  them in again for the next chunk's columns: after 1 s now.

Each setting is applied once per process, leaves alone whatever the user's environment already
sets, and changes no result: only speed (and memory kept for reuse, not peak memory; measured by
``make bench``). The environment variables are read by the native libraries when they load, so
:func:`tune_process` must run before numpy and pyarrow are imported; they are inherited by the
processes a command starts (map workers, notebook kernels), which then load those libraries the
same way.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys

__all__ = ["GC_THRESHOLD", "TRIM_BYTES", "freeze_imports", "tune_process"]

log = logging.getLogger(__name__)

GC_THRESHOLD = 100_000  # new containers between young collections (Python's default: 700)
MMAP_BYTES = 64 << 20  # glibc: blocks smaller than this come from the heap (default: 128 KB, adaptive to 32 MB)
TRIM_BYTES = 256 << 20  # glibc: free memory kept at the top of the heap for reuse (default: 128 KB, adaptive)
# variable -> (value, the module whose native library reads it when it loads)
_ENV = {"OPENBLAS_NUM_THREADS": ("1", "numpy"), "MIMALLOC_PURGE_DELAY": ("1000", "pyarrow")}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_done = False


def tune_process() -> None:
    """Apply the settings above to this process (once; later calls do nothing)."""
    global _done
    if _done:
        return
    _done = True
    for name, (value, reader) in _ENV.items():
        if name not in os.environ and reader not in sys.modules:  # loaded already: too late to set it
            os.environ[name] = value
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    _glibc_malloc()


def _glibc_malloc() -> None:
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return  # not glibc, or the user tunes malloc through its environment variables
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries: nothing to tune
        return
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES) and mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
    if not ok:
        log.debug("mallopt refused the malloc settings; glibc defaults stay")


def freeze_imports() -> None:
    """In a process set up by :func:`tune_process` (else nothing): move every object alive now
    (modules, classes, functions of the imports) out of the collector's reach, so that full
    collections only look at what the work itself makes."""
    if _done:
        gc.freeze()
