"""The console in a real browser (Debian's Chromium through Playwright), on a real node.

Screenshots go to docs/console/ for docs/console.md.
"""

from __future__ import annotations

from typing import Any

from tests.console.bed import ConsoleBed, cli
from tests.console.conftest import login, shot


def test_login_shows_the_dashboard_a_wrong_password_is_refused_and_logout_ends_the_session(
    bed: ConsoleBed, context: Any
) -> None:
    page = context.new_page()
    page.goto(f"{bed.url}/login")
    shot(page, "login")
    login(page, bed, "olga", "not-the-password")
    assert page.locator("#login-error").inner_text() == "The user name or password is wrong."
    assert "imi_console" not in {c["name"] for c in context.cookies()}

    login(page, bed, "olga")
    page.wait_for_url(f"{bed.url}/dashboard")
    assert page.locator("h1").inner_text() == "Dashboard"
    cookie = next(c for c in context.cookies() if c["name"] == "imi_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    shot(page, "dashboard")

    page.click("#logout")
    page.wait_for_url(f"{bed.url}/login?flash=flash.logged_out")
    page.goto(f"{bed.url}/dashboard")
    assert page.url == f"{bed.url}/login"  # the session is gone on the server too

    page.goto(f"{bed.url}/audit")
    login(page, bed, "olga")
    page.goto(f"{bed.url}/audit?actor=console:olga")
    events = page.locator("#audit tbody td:nth-child(3)").all_inner_texts()
    assert {"LOGIN", "LOGIN_FAILED", "LOGOUT"} <= set(events)


def test_a_forged_form_without_the_session_csrf_token_is_refused(
    bed: ConsoleBed, context: Any
) -> None:
    page = context.new_page()
    login(page, bed, "olga")
    page.wait_for_url(f"{bed.url}/dashboard")
    dead = [d.id for d in bed.dead_letters()]  # type: ignore[attr-defined]
    assert dead
    # The browser's cookies, a form the console did not issue (no token, then a wrong one).
    for fields in ({"id": str(dead[0])}, {"id": str(dead[0]), "csrf": "0" * 64}):
        answer = context.request.post(f"{bed.url}/queues/retry", form=fields, max_redirects=0)
        assert answer.status == 403
        assert "security token" in answer.text()
    assert [d.id for d in bed.dead_letters()] == dead  # type: ignore[attr-defined]


def test_a_script_bearing_authority_name_is_shown_as_text_and_the_search_api_finds_it(
    bed: ConsoleBed, context: Any
) -> None:
    # As with `authorities add`, the national system's certificate is issued (and bound) first.
    issued = cli(
        "keys",
        "issue-national",
        str(bed.setup.node_dir),
        "NO-TILSYNSRAADET",
        "--out",
        str(bed.base / "national-tilsyn"),
    )
    assert issued.returncode == 0, issued.stderr
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, bed, "olga")
    page.goto(f"{bed.url}/authorities")
    page.click("#new-authority")
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> Tilsynsrådet'
    page.fill("input[name=authority_id]", "NO-TILSYNSRAADET")
    page.fill("textarea[name=names]", f"nb:{hostile}\nen:Supervisory Council for Pharmacies")
    page.fill("textarea[name=address]", "Postboks 7000")
    page.fill("input[name=city]", "Oslo")
    page.fill("input[name=region]", "NO08")
    page.check("input[name=area][value=PQD]")
    page.click("#save-authority")
    page.wait_for_url(f"{bed.url}/authorities/NO-TILSYNSRAADET?flash=flash.authority_saved")
    page.goto(f"{bed.url}/authorities")
    names = page.locator("#authorities").inner_text()
    assert hostile in names  # the markup is text on the page
    assert page.locator("#authorities script").count() == 0
    assert page.locator("#authorities img").count() == 0
    assert dialogs == []
    shot(page, "authorities")

    found = bed.search("Supervisory Council")
    assert b"NO-TILSYNSRAADET" in found
    page.goto(f"{bed.url}/audit?event=AUTHORITIES_CHANGED")
    assert "NO-TILSYNSRAADET" in page.locator("#audit").inner_text()


def test_a_coordinator_reaches_only_coordinator_pages_and_an_auditor_changes_nothing(
    bed: ConsoleBed, context: Any
) -> None:
    page = context.new_page()
    login(page, bed, "kari")
    page.wait_for_url(f"{bed.url}/coordinator")
    menu = page.locator("nav.side a").all_inner_texts()
    assert menu == ["Coordinator desk", "KPIs"]
    for path in ("/dashboard", "/queues", "/users", "/audit", "/exchanges"):
        assert page.goto(f"{bed.url}{path}").status == 403
    page.click("#logout")

    login(page, bed, "ada")
    page.wait_for_url(f"{bed.url}/exchanges")
    assert page.locator("nav.side a").all_inner_texts() == ["Exchanges", "KPIs", "Audit log"]
    assert (
        page.locator(
            "form[method=post]:not([action='/logout']):not([action='/audit/export'])"
        ).count()
        == 0
    )
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    dead = [d.id for d in bed.dead_letters()]  # type: ignore[attr-defined]
    for path, fields in (
        ("/queues/retry", {"id": str(dead[0])}),
        ("/users/add", {"username": "mallory", "role": "operator", "password": "x" * 16}),
        ("/authorities/add", {"authority_id": "NO-X"}),
    ):
        answer = context.request.post(
            f"{bed.url}{path}", form={**fields, "csrf": token}, max_redirects=0
        )
        assert answer.status == 403, path
    assert page.goto(f"{bed.url}/queues").status == 403
    shot(page, "auditor-exchanges")


def test_retrying_a_dead_letter_requeues_it_and_records_it(bed: ConsoleBed, context: Any) -> None:
    page = context.new_page()
    login(page, bed, "olga")
    page.goto(f"{bed.url}/queues")
    dead = bed.dead_letters()
    assert dead
    letter = dead[0]
    shot(page, "queues")
    page.check(f"#dead-{letter.id}")  # type: ignore[attr-defined]
    page.click("#retry")
    page.wait_for_url(f"{bed.url}/queues?flash=flash.retried&n=1")
    assert page.locator(".flash").inner_text() == "1 dead letter(s) requeued."

    exchange = letter.exchange_id  # type: ignore[attr-defined]
    page.goto(f"{bed.url}/exchanges/{exchange}")
    stages = page.locator("#timeline strong").all_inner_texts()
    assert "requeued" in stages
    shot(page, "exchange")
    page.goto(f"{bed.url}/audit?event=CONSOLE_CHANGE")
    assert f"dead-letters-retried:{letter.id}" in page.locator("#audit").inner_text()  # type: ignore[attr-defined]
    shot(page, "audit")


def test_the_interface_speaks_norwegian_bokmal(bed: ConsoleBed, chromium: Any) -> None:
    context = chromium.new_context(
        ignore_https_errors=True, locale="nb-NO", viewport={"width": 1280, "height": 800}
    )
    try:
        page = context.new_page()
        page.goto(f"{bed.url}/login")
        assert page.locator("h1").inner_text() == "Logg inn"
        login(page, bed, "olga")
        page.goto(f"{bed.url}/exchanges")
        assert page.locator("h1").inner_text() == "Utvekslinger"
        shot(page, "exchanges-nb")
    finally:
        context.close()
