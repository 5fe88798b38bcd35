"""The console's root resource: security headers, static files, login, sessions, routing.

Every request passes here, in this order, before a page or action runs:

1. security headers on every answer (a strict Content-Security-Policy with no
   script source at all, ``X-Frame-Options: DENY``, ``nosniff``, no referrer,
   ``Cache-Control: no-store`` on pages);
2. ``/static/…`` (the one CSS file), ``/login``, ``/logout`` are handled here;
3. the session cookie is looked up in the database (an unknown or expired
   session goes to ``/login``);
4. the route is found in :mod:`gateway.console.registry` (unknown: 404) and
   the user's role checked against it (403);
5. a POST's CSRF token is compared with the session's (403);
6. the handler runs; its result is rendered (templates on the CPU pool).

Login: argon2id passwords or a client certificate bound to the user; failed
attempts are limited per user name and per client address (in the database,
so all processes sharing it count together); every login, failure and
logout is in the audit log.
"""

from __future__ import annotations

from datetime import timedelta
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from prometheus_client import Counter
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from gateway.console import views
from gateway.console.deps import ConsoleDeps
from gateway.console.registry import Context, Download, Page, Redirect, Result, find_route, menu
from gateway.console.security import csrf_token, new_token, same, token_hash, verify_password
from gateway.console.translate import LANGUAGE_NAMES, LANGUAGES, Translator, negotiate
from gateway.core import certs
from gateway.core.errors import GatewayError
from gateway.storage.console_accounts import (
    ConsoleUser,
    console_actor,
    create_session_txn,
    end_session_txn,
    find_user_txn,
    login_failed_txn,
    login_subject,
    recent_failures_txn,
    session_user_txn,
    user_by_certificate_txn,
)
from gateway.transport.tls import peer_certificate

log = Logger()

SESSION_COOKIE = b"imi_console"
LOGIN_COOKIE = b"imi_console_login"

#: No script at all, styles from the console only, forms post to the console only.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_STATIC = {"console.css": "text/css; charset=utf-8"}


def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("gateway.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M:%S UTC") if d else "—"
    env.filters["day"] = lambda d: d.strftime("%Y-%m-%d") if d else "—"
    return env


def _fields(raw: dict[bytes, list[bytes]]) -> dict[str, list[str]]:
    return {
        k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
        for k, vs in raw.items()
    }


class ConsoleRoot(Resource):
    """The whole console: one leaf resource that routes by path."""

    isLeaf = True

    def __init__(self, deps: ConsoleDeps, *, secure: bool = True) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Resource.__init__ is untyped
        views.load()
        self._deps = deps
        self._secure = secure
        self._env = _templates()
        self._static = {
            name: files("gateway.console").joinpath("static", name).read_bytes() for name in _STATIC
        }
        self._logins = Counter(
            "imi_console_logins_total",
            "Console logins by result (ok, failed, rate_limited).",
            ["result"],
            registry=deps.metrics.registry,
        )

    # --- twisted.web ---------------------------------------------------------------------

    def render(self, request: Any) -> Any:
        self._headers(request)
        d = Deferred.fromCoroutine(self._handle(request))
        d.addErrback(self._crash, request)
        d.addCallback(lambda _: request.finish() if not request.finished else None)
        return NOT_DONE_YET

    def _crash(self, failure: Failure, request: Any) -> None:
        log.failure("Console request failed", failure)
        if not request.startedWriting:
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(b"500 internal error (see the node's log)\n")

    def _headers(self, request: Any) -> None:
        request.setHeader(b"content-security-policy", CSP.encode())
        request.setHeader(b"x-frame-options", b"DENY")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"cross-origin-opener-policy", b"same-origin")
        if self._secure:
            request.setHeader(b"strict-transport-security", b"max-age=31536000")

    # --- routing ---------------------------------------------------------------------------

    async def _handle(self, request: Any) -> None:
        path = (request.path or b"/").decode("utf-8", "replace").strip("/")
        method = (request.method or b"GET").decode("ascii", "replace")
        if method == "HEAD":
            method = "GET"
        if path == "favicon.ico":
            request.setResponseCode(404)
            return None
        if path.startswith("static/") and method == "GET":
            return self._serve_static(request, path[len("static/") :])
        request.setHeader(b"cache-control", b"no-store")
        query = _fields(parse_qs(request.uri.partition(b"?")[2])) if b"?" in request.uri else {}
        form = _fields(request.args or {}) if method == "POST" else {}
        token = (request.getCookie(SESSION_COOKIE) or b"").decode("ascii", "replace")
        found = await self._session(token) if token else None
        if path == "login":
            return await self._login(request, method, query, form, found)
        if path == "logout" and method == "POST":
            return await self._logout(request, token, form, found)
        if found is None:
            return self._redirect(request, "/login")
        user = found
        t = Translator(negotiate(self._accept(request), user.language))
        if path == "":
            items = menu(user.role)
            return self._redirect(request, f"/{items[0].path}" if items else "/account")
        match = find_route(method, path)
        if match is None:
            return await self._error(request, 404, "error.not_found", user, t, token)
        route, rest = match
        if user.role not in route.roles:
            return await self._error(request, 403, "error.forbidden", user, t, token)
        if method == "POST" and not same(_first(form, "csrf"), csrf_token(token)):
            return await self._error(request, 403, "error.csrf", user, t, token)
        ctx = Context(user, self._deps, t, self._deps.now(), query, form, rest)
        try:
            result = await route.handler(ctx)
        except GatewayError as exc:
            return await self._error(
                request,
                exc.http_status,
                "error.refused",
                user,
                t,
                token,
                detail=f"{exc.code}: {exc}",
            )
        await self._result(request, result, user, t, token, query)

    async def _result(
        self,
        request: Any,
        result: Result,
        user: ConsoleUser,
        t: Translator,
        token: str,
        query: dict[str, list[str]],
    ) -> None:
        if isinstance(result, Redirect):
            location = result.location
            if result.flash:
                args = {"flash": result.flash, **{k: str(v) for k, v in result.flash_args.items()}}
                location += ("&" if "?" in location else "?") + urlencode(args)
            return self._redirect(request, location)
        if isinstance(result, Download):
            request.setHeader(b"content-type", result.content_type.encode())
            request.setHeader(
                b"content-disposition",
                f'attachment; filename="{quote(result.filename)}"'.encode(),
            )
            request.write(result.body)
            return None
        flash = None
        key = _first(query, "flash")
        if key and key.startswith("flash."):
            n = _first(query, "n")
            flash = t(key, n=int(n) if n and n.isdigit() else 0)
        await self._page(request, 200, result, user, t, token, flash=flash)

    async def _page(
        self,
        request: Any,
        status: int,
        page: Page,
        user: ConsoleUser | None,
        t: Translator,
        token: str,
        *,
        flash: str | None = None,
    ) -> None:
        values = {
            "t": t,
            "lang": t.lang,
            "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
            "user": user,
            "menu": menu(user.role) if user else [],
            "current": (request.path or b"/").decode("utf-8", "replace").strip("/").split("/")[0],
            "csrf": csrf_token(token) if token else "",
            "node_id": self._deps.node_id,
            "flash": flash,
            **page.values,
        }
        template = self._env.get_template(page.template)
        body: str = await self._deps.run(template.render, **values)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.write(body.encode("utf-8"))

    async def _error(
        self,
        request: Any,
        status: int,
        key: str,
        user: ConsoleUser | None,
        t: Translator,
        token: str,
        *,
        detail: str | None = None,
    ) -> None:
        page = Page("error.html", {"status": status, "message": t(key), "detail": detail})
        await self._page(request, status, page, user, t, token)

    def _redirect(self, request: Any, location: str) -> None:
        request.setResponseCode(303)
        request.setHeader(b"location", location.encode("utf-8"))

    def _serve_static(self, request: Any, name: str) -> None:
        body = self._static.get(name)
        if body is None:
            request.setResponseCode(404)
            return
        request.setHeader(b"content-type", _STATIC[name].encode())
        request.setHeader(b"cache-control", b"max-age=3600")
        request.write(body)

    @staticmethod
    def _accept(request: Any) -> str | None:
        value = request.getHeader(b"accept-language")
        return value.decode("latin-1") if isinstance(value, bytes) else value

    # --- sessions and login -----------------------------------------------------------

    def _minutes(self) -> timedelta:
        return timedelta(minutes=self._deps.config.console.session_minutes)

    async def _session(self, token: str) -> ConsoleUser | None:
        now = self._deps.now()
        found = await self._deps.db.run_txn(
            session_user_txn, token_hash(token), now=now, extend_to=now + self._minutes()
        )
        return None if found is None else found[1]

    def _set_cookie(self, request: Any, name: bytes, value: str) -> None:
        request.addCookie(
            name, value.encode("ascii"), path=b"/", secure=True, httpOnly=True, sameSite="strict"
        )

    def _certificate_user_fp(self, request: Any) -> str | None:
        cert = peer_certificate(request)
        if cert is None or not certs.within_validity(cert, self._deps.now()):
            return None
        fingerprint = certs.fingerprint(cert)
        return None if fingerprint in self._deps.trust.raw.revoked else fingerprint

    async def _login(
        self,
        request: Any,
        method: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        current: ConsoleUser | None,
    ) -> None:
        lang = _first(query, "lang") or _first(form, "lang")
        t = Translator(negotiate(self._accept(request), lang))
        if method == "GET":
            if current is not None:
                return self._redirect(request, "/")
            return await self._login_page(request, t, None, 200)
        if method != "POST":
            return await self._error(request, 405, "error.not_found", None, t, "")
        cookie = (request.getCookie(LOGIN_COOKIE) or b"").decode("ascii", "replace")
        if not same(_first(form, "csrf"), cookie):
            return await self._error(request, 403, "error.csrf", None, t, "")
        deps, now = self._deps, self._deps.now()
        address = str(getattr(request.getClientAddress(), "host", ""))
        if _first(form, "method") == "certificate":
            fingerprint = self._certificate_user_fp(request)
            user = (
                await deps.db.run_txn(user_by_certificate_txn, fingerprint) if fingerprint else None
            )
            if user is None:
                await deps.db.run_txn(
                    login_failed_txn,
                    [login_subject("addr", address)],
                    now=now,
                    actor=console_actor("unknown"),
                    reason="CERTIFICATE_NOT_BOUND",
                )
                self._logins.labels("failed").inc()
                return await self._login_page(request, t, t("login.failed"), 401)
            return await self._open_session(request, user, "certificate")
        username = (_first(form, "username") or "").strip()
        password = _first(form, "password") or ""
        subjects = [login_subject("user", username.lower()), login_subject("addr", address)]
        console = deps.config.console
        since = now - timedelta(minutes=console.login_window_minutes)
        if (
            await deps.db.run_txn(recent_failures_txn, subjects, since=since)
            >= console.login_attempts
        ):
            await deps.db.run_txn(
                login_failed_txn, [], now=now, actor=console_actor("unknown"), reason="RATE_LIMITED"
            )
            self._logins.labels("rate_limited").inc()
            message = t("login.rate_limited", minutes=console.login_window_minutes)
            return await self._login_page(request, t, message, 429)
        user = await deps.db.run_txn(find_user_txn, username) if username else None
        usable = user is not None and user.active
        ok = await deps.run(
            verify_password, user.password_hash if usable and user else None, password
        )
        if not ok or user is None:
            actor = console_actor(user.username if user else "unknown")
            await deps.db.run_txn(
                login_failed_txn, subjects, now=now, actor=actor, reason="BAD_CREDENTIALS"
            )
            self._logins.labels("failed").inc()
            return await self._login_page(request, t, t("login.failed"), 401)
        return await self._open_session(request, user, "password")

    async def _open_session(self, request: Any, user: ConsoleUser, method: str) -> None:
        token, now = new_token(), self._deps.now()
        await self._deps.db.run_txn(
            create_session_txn,
            token_hash=token_hash(token),
            username=user.username,
            method=method,
            now=now,
            expires_at=now + self._minutes(),
        )
        self._logins.labels("ok").inc()
        self._set_cookie(request, SESSION_COOKIE, token)
        self._redirect(request, "/")

    async def _login_page(
        self, request: Any, t: Translator, error: str | None, status: int
    ) -> None:
        # Keep a token the browser has (another tab, or a request for an icon, must not
        # change the one an open login form carries).
        login_token = (request.getCookie(LOGIN_COOKIE) or b"").decode("ascii", "replace")
        if len(login_token) < 32 or not login_token.replace("-", "").replace("_", "").isalnum():
            login_token = new_token()
            self._set_cookie(request, LOGIN_COOKIE, login_token)
        fingerprint = self._certificate_user_fp(request)
        cert_user = (
            await self._deps.db.run_txn(user_by_certificate_txn, fingerprint)
            if fingerprint
            else None
        )
        page = Page(
            "login.html",
            {"error": error, "login_csrf": login_token, "cert_user": cert_user},
        )
        await self._page(request, status, page, None, t, "")

    async def _logout(
        self, request: Any, token: str, form: dict[str, list[str]], user: ConsoleUser | None
    ) -> None:
        if user is None:
            return self._redirect(request, "/login")
        if not same(_first(form, "csrf"), csrf_token(token)):
            t = Translator(negotiate(self._accept(request), user.language))
            return await self._error(request, 403, "error.csrf", user, t, token)
        await self._deps.db.run_txn(end_session_txn, token_hash(token), now=self._deps.now())
        request.addCookie(
            SESSION_COOKIE,
            b"",
            path=b"/",
            secure=True,
            httpOnly=True,
            sameSite="strict",
            max_age=b"0",
        )
        self._redirect(request, "/login?flash=flash.logged_out")


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


__all__ = ["CSP", "LOGIN_COOKIE", "SESSION_COOKIE", "ConsoleRoot"]
