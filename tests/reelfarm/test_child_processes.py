"""ffmpeg children die with the process that started them, without a preexec_fn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from harness.polling import wait_until
from reelfarm import media

CHILD = """
import subprocess, sys
from reelfarm import media
child = subprocess.Popen(media.dies_with_parent(["sleep", "60"]))
print(child.pid, flush=True)
child.wait()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has died
    except FileNotFoundError:
        return False


def _command(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_is_killed_when_its_parent_dies():
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))  # fmt: skip
    grandchild = int(parent.stdout.readline())
    # setpriv sets the death signal, then execs sleep: only once sleep runs is it armed
    # (a parent killed before that is a window setpriv cannot close; it is milliseconds).
    wait_until(lambda: _command(grandchild) == "sleep", timeout=10, interval=0.01, what="setpriv to exec sleep")
    assert _alive(grandchild)
    parent.send_signal(signal.SIGKILL)  # no chance to clean up: only the kernel can help
    parent.wait()
    wait_until(lambda: not _alive(grandchild), timeout=10, what="the kernel to kill the orphaned child")


def test_a_missing_program_is_reported_as_missing():
    with pytest.raises(FileNotFoundError):
        media.dies_with_parent(["no-such-program-here"])
    wrapped = media.dies_with_parent(["ffprobe", "-version"])
    assert wrapped[-1] == "-version" and wrapped[-2].endswith("ffprobe")
    assert subprocess.run(wrapped, capture_output=True, check=False).returncode == 0
