"""A fixed pool of preallocated host input buffers: preprocessing writes into them, the
runner reads them, nothing is allocated per frame. The buffers come from the runner
(:meth:`Runner.allocate_input`): pinned (page-locked) memory on the TensorRT backend, plain
numpy elsewhere."""
from __future__ import annotations

import queue
import threading
from typing import Callable, List, Optional, Tuple

import numpy as np


class PoolClosed(Exception):
    """Raised by :meth:`BufferPool.acquire` when the pipeline is stopping."""


class BufferPool:
    """``size`` batch buffers of ``allocate(batch)``; :meth:`acquire` blocks while all are in use."""

    def __init__(self, allocate: Callable[[int], np.ndarray], size: int, batch: int = 1):
        if size < 1:
            raise ValueError("a buffer pool needs at least one buffer")
        self.buffers: List[np.ndarray] = [allocate(batch) for _ in range(size)]
        self._free: "queue.Queue[int]" = queue.Queue()
        for i in range(size):
            self._free.put(i)

    def __len__(self) -> int:
        return len(self.buffers)

    @property
    def free(self) -> int:
        return self._free.qsize()

    def acquire(self, stop: Optional[threading.Event] = None, poll: float = 0.05) -> Tuple[int, np.ndarray]:
        """``(slot, buffer)``; waits for a free one, raising :class:`PoolClosed` once ``stop`` is set."""
        while True:
            try:
                slot = self._free.get(timeout=poll)
                return slot, self.buffers[slot]
            except queue.Empty:
                if stop is not None and stop.is_set():
                    raise PoolClosed() from None

    def release(self, slot: int) -> None:
        self._free.put(slot)
