"""Hostile invocations from a later outside pass, one per class of defect it found: each ends
with one line on stderr, the promised exit code and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _with_closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """`mafine ARGS | true`: the reader of stdout is gone before anything is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "mafine", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [("--help",), ("report", "--help"), ()])
def test_help_to_a_closed_stdout_exits_141_with_one_line(args):
    """Help and usage text is written by the parser outside a command's guard; rich and click
    exit 1 silently on a broken pipe there."""
    child = _with_closed_stdout(*args)
    assert child.returncode == 141, child.stderr
    lines = child.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: standard output was closed")
