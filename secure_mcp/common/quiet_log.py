"""Logging that a flood cannot turn into a full disk: one line per kind of event per interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
DEFAULT_INTERVAL = 60.0


@dataclass
class _Kind:
    next_at: float
    suppressed: int = 0


class Throttle:
    """Decides, per kind, whether an event is written now; counts the ones that were not.

    Kinds are fixed strings chosen by the code (never client input), so memory stays bounded.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL, clock: Clock = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def due(self, kind: str) -> int | None:
        """None to stay quiet; else how many `kind` events were kept quiet since the last line."""
        moment = self._clock()
        state = self._kinds.get(kind)
        if state is not None and moment < state.next_at:
            state.suppressed += 1
            return None
        self._kinds[kind] = _Kind(moment + self.interval)
        return state.suppressed if state is not None else 0

    def suffix(self, suppressed: int) -> str:
        """What a line adds about the events it stands for."""
        if not suppressed:
            return ""
        return f" (and {suppressed} more like it in the last {self.interval:g} s)"


class SummaryLog:
    """Warnings about client misbehaviour: the first at once, then at most one line per interval."""

    def __init__(self, logger: logging.Logger, throttle: Throttle | None = None) -> None:
        self.logger = logger
        self.throttle = throttle or Throttle()

    def event(self, kind: str, message: str, *args: object) -> None:
        """Log `message % args` as a warning unless `kind` was logged less than an interval ago."""
        suppressed = self.throttle.due(kind)
        if suppressed is not None:
            self.logger.warning(message + self.throttle.suffix(suppressed), *args)


class ThrottleFilter(logging.Filter):
    """A logging filter that thins out a logger's warnings (keyed by message template).

    For uvicorn's own per-request warnings ("Invalid HTTP request received." and the like), which
    any client can trigger at will. Errors and everything else pass untouched.
    """

    def __init__(self, throttle: Throttle | None = None) -> None:
        super().__init__()
        self.throttle = throttle or Throttle()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        suppressed = self.throttle.due(str(record.msg))
        if suppressed is None:
            return False
        record.msg = str(record.msg) + self.throttle.suffix(suppressed)
        return True


def throttle_warnings(logger: logging.Logger) -> None:
    """Install a `ThrottleFilter` on `logger` once."""
    if not any(isinstance(f, ThrottleFilter) for f in logger.filters):
        logger.addFilter(ThrottleFilter())
