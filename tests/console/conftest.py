"""Fixtures of the console tests: one real node with its console (a subprocess), Chromium."""

from __future__ import annotations

import http.client
import re
import ssl
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.console.bed import PASSWORDS, ConsoleBed, start_console_bed

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots for docs/console.md.
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


@pytest.fixture(scope="session")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleBed]:
    running = start_console_bed(tmp_path_factory.mktemp("console"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    path = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(chromium: object) -> Iterator[object]:
    ctx = chromium.new_context(  # type: ignore[attr-defined]
        ignore_https_errors=True, viewport={"width": 1280, "height": 800}, locale="en-GB"
    )
    try:
        yield ctx
    finally:
        ctx.close()


def login(page: object, bed: ConsoleBed, user: str, password: str | None = None) -> None:
    page.goto(f"{bed.url}/login")  # type: ignore[attr-defined]
    page.fill("input[name=username]", user)  # type: ignore[attr-defined]
    page.fill("input[name=password]", password or PASSWORDS[user])  # type: ignore[attr-defined]
    page.click("button[type=submit].primary")  # type: ignore[attr-defined]


def shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


class Client:
    """A console session over plain HTTP(S) (no browser): for the route × role matrix."""

    def __init__(self, bed: ConsoleBed) -> None:
        self._port = bed.ports.console
        self._ctx = ssl._create_unverified_context()  # the console's certificate is the node's
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, fields: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPSConnection("127.0.0.1", self._port, context=self._ctx)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if fields is not None:
            body = urllib.parse.urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            answer = conn.getresponse()
            for name, value in answer.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key] = rest.split(";")[0]
            return (
                answer.status,
                {k.lower(): v for k, v in answer.getheaders()},
                answer.read().decode(),
            )
        finally:
            conn.close()

    def login(self, user: str, password: str | None = None) -> int:
        status, _, page = self.request("GET", "/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert status == 200 and token
        status, _, _ = self.request(
            "POST",
            "/login",
            {"csrf": token.group(1), "username": user, "password": password or PASSWORDS[user]},
        )
        return status

    def csrf(self) -> str:
        status, _, page = self.request("GET", "/account")
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert status == 200 and token, status
        return token.group(1)
