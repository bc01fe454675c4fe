"""StopSignals: services wait for SIGINT/SIGTERM without a lock in the signal handler."""

import os
import signal
import subprocess
import sys
import threading

from reelfarm.stop_signals import StopSignals


def test_a_signal_before_the_wait_is_kept_and_the_previous_handlers_come_back():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop_signals = StopSignals()
    assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    os.kill(os.getpid(), signal.SIGTERM)
    stop_signals.wait()  # returns: the byte the C handler wrote is waiting
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert signal.set_wakeup_fd(-1) == -1  # and the wakeup fd is given back


def test_another_thread_can_end_the_wait():
    stop_signals = StopSignals()
    threading.Timer(0.05, stop_signals.stop).start()
    stop_signals.wait()
    stop_signals.stop()  # after the wait: harmless


WAITER = """
import sys
from reelfarm.stop_signals import StopSignals
stop_signals = StopSignals()
print("ready", flush=True)
stop_signals.wait()
print("stopped", flush=True)
"""


def test_sigterm_the_moment_a_service_says_it_is_ready_always_stops_it():
    # The race that hung `reelfarm scheduler`: the signal lands as the main thread enters its wait.
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stdout.read() == "stopped\n"
