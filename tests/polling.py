"""One bounded poll for every test package (tests/ is on sys.path: ``from polling import
wait_for``). Tests wait for a condition the code under test reaches by itself, never for a
fixed time:

    assert wait_for(lambda: handle.stats()["in_flight"] == 0, 10), handle.stats()
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

TIMEOUT = 10.0


def wait_for(predicate: Callable[[], T], timeout: float = TIMEOUT, interval: float = 0.01,
             ignore: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``predicate`` every ``interval`` s until it returns a truthy value or ``timeout``
    s have passed; return its last value (falsy on timeout, so the caller's ``assert``
    carries the message). Exceptions of the ``ignore`` types (say ``OSError`` while a server
    starts listening) count as a falsy answer; any other exception ends the wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except ignore:
            value = None
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
