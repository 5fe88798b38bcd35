"""``imi-gateway init`` says what it is doing before it makes the keys, then what it made."""

from __future__ import annotations

import subprocess
import sys


def test_init_prints_a_progress_line_before_the_summary(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "init", str(tmp_path / "node-no"), "--country", "NO"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Creating node directory {tmp_path / 'node-no'} for node NO:")
    assert lines[1].startswith("Created node directory")
