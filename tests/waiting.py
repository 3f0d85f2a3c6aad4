"""Bounded waits for tests that must see an event happen (a file, a count, a process state)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

#: Pause between two looks at the awaited condition.
POLL_SECONDS = 0.01


def wait_until(condition: Callable[[], T], *, timeout: float, what: str) -> T:
    """Return ``condition()`` as soon as it is truthy; fail the test after ``timeout`` seconds.

    ``what`` names the awaited event in the failure message. ``condition`` may itself fail
    the test (e.g. when the process it watches ended too early).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_SECONDS)
