"""The README's main job: `imi-gateway demo` plays a whole exchange and exits 0."""

import subprocess
import sys


def test_demo_plays_a_closed_exchange_and_shows_both_tracking_records() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "signed receipt from node NO: sha256" in out
    assert "signed receipt from node PT: sha256" in out
    # A delivery names its sender (an authority), and the node that delivered and signed it.
    assert (
        "received Request from NO-HELSEDIR (its signature verified; delivered and signed by node PT"
        in out
    )
    assert (
        "received Answer from PT-OMD (its signature verified; delivered and signed by node NO"
        in out
    )
    assert "received Closure from NO-HELSEDIR" in out
    assert "from PT (" not in out and "delivery from PT" not in out
    # One tracking record (both nodes' stages), each stage printed once.
    assert (
        "Tracking record at node NO (exchange NO-HELSEDIR:2026-000417, state closed; stages observed by both nodes)"
        in out
    )
    assert "Tracking record at node PT: state closed, the same stages" in out
    stages = [line for line in out.splitlines() if line.startswith("  20") and " closed " in line]
    assert len(stages) == 2, stages  # closed at NO and at PT, once each
    assert "Demo finished" in out
    # The request in Nynorsk at the sender and in Portuguese at the receiver; the answer back.
    assert "rendered in [nn]" in out and "rendered in [pt]" in out
    assert "Er det vedlagde kvalifikasjonsbeviset ekte" in out
    assert "O título de formação anexo é autêntico" in out
    assert "PQD-DOCTOR-010 → NONE: Ingen reaksjon" in out
    assert "PQD-DOCTOR-010 → NONE: Nenhuma sanção" in out
