"""packaging/systemd/imi-gateway@.service: readiness by sd_notify, reload by SIGHUP, hardening.

The notifications themselves are tested against a real ``imi-gateway run``
in tests/test_run_process.py; here the unit file says what docs/operator.md
promises, and ``systemd-analyze verify`` accepts it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require_tool

UNIT = Path(__file__).parent.parent / "packaging" / "systemd" / "imi-gateway@.service"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_unit_waits_for_ready_reloads_with_sighup_restarts_and_is_hardened() -> None:
    unit = settings()
    assert unit["Type"] == ["notify"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["3"]  # configuration problems: no restart loop
    assert unit["ReadWritePaths"] == ["/var/lib/imi-gateway/%i"]
    assert "run /var/lib/imi-gateway/%i" in unit["ExecStart"][0]
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "PrivateTmp": "true",
        "NoNewPrivileges": "true",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit[key] == [value], key


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    executable = Path(sys.executable).parent / "imi-gateway"
    text = UNIT.read_text().replace("/opt/imi-gateway/bin/imi-gateway", str(executable))
    copy = tmp_path / "imi-gateway@no.service"
    copy.write_text(text)
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
