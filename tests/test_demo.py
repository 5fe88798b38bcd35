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


def test_demo_plays_a_late_exchange_reminded_escalated_coordinated_and_answered() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    late = out[out.index("A late exchange (NO-HELSEDIR:2026-000418)") :]
    steps = [
        "simulated clock: day  5.0",
        "NO node      deadline check: 1 node-signed document(s) sent",
        "PT-OMD       received Reminder from NO-HELSEDIR",
        "the acceptance deadline has passed",
        "PT-OMD       received Reminder from NO-HELSEDIR",
        "simulated clock: day 10.0",
        "received Escalation from NO-HELSEDIR (reason ANSWER_OVERDUE, coordinator NO-KOORD)",
        "NO-KOORD     received Escalation",
        "PT-KOORD     received Escalation",
        "PT-KOORD     lists escalated: NO-HELSEDIR:2026-000418 requested, responder PT-OMD, "
        "acceptance deadline passed, 1 escalation(s)",
        "NO-KOORD     reminds PT-OMD, with a note in Nynorsk; signed receipt from node NO",
        "PT-OMD       received CoordinatorReminder from coordinator NO-KOORD [nn]",
        "PT-OMD       accepts (late)",
        "NO-HELSEDIR  received the Acceptance and the Answer: the late exchange is answered",
    ]
    at = 0
    for step in steps:  # in this order
        found = late.find(step, at)
        assert found >= 0, (step, late)
        at = found + len(step)
    # the figures agree on both nodes: one of the two requests accepted within 7 days
    for node in ("NO", "PT"):
        assert f"at node {node}: PT-OMD PQD: 2 requests, accepted within 7 days 1/2," in late, late
    assert late.count("1 escalation(s)") == 3  # the listing and both nodes' figures
