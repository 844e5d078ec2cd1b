"""Machine-specific speed switches. The library never turns them on by itself: a program calls them.

The ``commlearn`` command line calls :func:`keep_freed_memory` for ``fit`` and ``experiment`` (it owns its
process); a Python program that trains on a CPU may call it too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS after every step.

    Training allocates the same large activations every step; by default glibc serves them with fresh ``mmap``
    pages and unmaps them on free, so each step page-faults its activations in again (measured: 150k–320k
    faults and 4–9 % of a paper-preset step on a 2-core CPU; ``benchmarks/README.md``). Peak memory is
    unchanged. This changes the allocator of the whole process.

    Returns:
        True when the setting was applied (Linux with glibc), else False.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        libc.mallopt(m_mmap_max, 0)
        libc.mallopt(m_trim_threshold, 2**31 - 1)
    except (OSError, AttributeError):
        return False
    return True
