"""Pause the cyclic garbage collector around bulk construction of model objects.

Parsing or indexing a kube-proxy-sized ruleset allocates ~10^5 small objects
that hold no reference cycles; with the collector on, every allocation burst
triggers full collections over the whole (growing) heap, which costs more
than the work itself.  Reference counting still frees everything normally.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
