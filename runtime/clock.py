"""The one clock the runtime reads, so tests (and the pool's recycling jobs) can freeze it."""
from __future__ import annotations

import datetime as dt
from typing import Callable

_now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return _now()


def set_clock(now: Callable[[], dt.datetime] | None) -> None:
    """Replace the clock (None restores the real one). For tests and simulations."""
    global _now
    _now = now or (lambda: dt.datetime.now(dt.timezone.utc))
