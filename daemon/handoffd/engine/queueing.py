"""The fair queue requests wait in when the engine is full.

INTERACTIVE requests always go before BACKGROUND ones. Within a priority, apps take turns
(round-robin): an app that sends fifty requests does not make the next app's one request wait
behind all fifty. Each app's own requests keep their arrival order. The queue has a size limit;
past it, :meth:`FairQueue.push` raises :class:`handoffd.errors.ResourceExhausted`.

Not thread-safe on its own: the engine worker guards it with its lock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, TypeVar

from handoffd.domain import Priority
from handoffd.errors import ResourceExhausted

T = TypeVar("T")

_ORDER = (Priority.INTERACTIVE, Priority.BACKGROUND)


class FairQueue(Generic[T]):
    """Priority classes, round-robin over apps within a class, FIFO within an app."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._classes: dict[Priority, OrderedDict[str, deque[T]]] = {
            p: OrderedDict() for p in _ORDER
        }
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, item: T, *, app: str, priority: Priority) -> None:
        if self._size >= self.limit:
            raise ResourceExhausted(
                f"the local engine's queue is full ({self.limit} requests waiting); retry shortly "
                "or raise engine max_queued",
                retry_after_s=1.0,
            )
        apps = self._classes[priority]
        if app not in apps:
            apps[app] = deque()
        apps[app].append(item)
        self._size += 1

    def peek(self) -> T | None:
        """The item :meth:`pop` would return, left in the queue."""
        for priority in _ORDER:
            apps = self._classes[priority]
            if apps:
                return next(iter(apps.values()))[0]
        return None

    def pop(self) -> T | None:
        """The next item: highest priority, the app whose turn it is, its oldest request."""
        for priority in _ORDER:
            apps = self._classes[priority]
            if not apps:
                continue
            app, items = next(iter(apps.items()))
            item = items.popleft()
            del apps[app]
            if items:
                apps[app] = items  # back of the line: the next app goes first
            self._size -= 1
            return item
        return None

    def remove(self, item: T) -> bool:
        """Take ``item`` out wherever it waits; ``False`` if it is not queued."""
        for apps in self._classes.values():
            for app, items in apps.items():
                if any(candidate is item for candidate in items):
                    items.remove(item)
                    if not items:
                        del apps[app]
                    self._size -= 1
                    return True
        return False
