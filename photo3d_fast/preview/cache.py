"""The preview server's memory: photos, depth maps and preview LDIs kept in one cache
bounded in bytes, least recently used dropped first, so that a page trying fov after fov
cannot grow the server without bound.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np
import torch


def nbytes(obj: Any) -> int:
    """Bytes of the arrays and tensors ``obj`` holds: through containers, dataclasses and
    the package's own objects (a Renderer's prepared grid), each storage counted once."""
    seen: set[int] = set()  # ids of objects walked
    storages: set[int] = set()  # data pointers of tensor storages counted (views share one)

    def walk(o: Any, depth: int) -> int:
        if depth > 8 or id(o) in seen:
            return 0
        seen.add(id(o))
        if isinstance(o, torch.Tensor):
            storage = o.untyped_storage()
            if storage.data_ptr() in storages:
                return 0
            storages.add(storage.data_ptr())
            return storage.nbytes()
        if isinstance(o, (bytes, bytearray)):
            return len(o)
        if isinstance(o, np.ndarray):
            return walk(o.base, depth + 1) if isinstance(o.base, np.ndarray) else o.nbytes
        if isinstance(o, dict):
            return sum(walk(v, depth + 1) for v in o.values())
        if isinstance(o, (list, tuple)):
            return sum(walk(v, depth + 1) for v in o)
        if dataclasses.is_dataclass(o) or type(o).__module__.startswith("photo3d_fast"):
            return sum(walk(v, depth + 1) for v in getattr(o, "__dict__", {}).values())
        return 0

    return walk(obj, 0)


class ByteLRU:
    """A thread-safe mapping bounded by the bytes of its values (``nbytes``). Adding a
    value drops the least recently used ones until the total fits the budget; the value
    just added is always kept, even alone over the budget (it is in use)."""

    def __init__(self, budget: int) -> None:
        if budget <= 0:
            raise ValueError(f"cache budget {budget} must be positive")
        self.budget = budget
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any) -> Any:
        """Store ``value`` (the one already there when another thread stored it first,
        which is returned: both callers then share one). Returns the stored value."""
        size = nbytes(value)  # outside the lock: it walks the value
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.budget and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
