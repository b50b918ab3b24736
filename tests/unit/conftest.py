"""Fixtures every unit test may use."""
import contextlib
import signal

import pytest


@pytest.fixture
def time_limit():
    """`with time_limit(seconds):` fails the test if the block runs longer: the fuzz tests' "nothing may
    hang". The bound is for a hang, not for slowness (generous on a loaded 2-core machine). Where there is
    no SIGALRM (Windows) it does not limit."""
    @contextlib.contextmanager
    def limit(seconds: float):
        if not hasattr(signal, "setitimer"):
            yield
            return

        def hung(signum, frame):
            raise TimeoutError(f"still running after {seconds} s: a hang")
        previous = signal.signal(signal.SIGALRM, hung)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return limit
