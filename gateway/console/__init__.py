"""The admin web console: operators, coordinators and auditors (docs/console.md).

Its own listener (HTTPS with the node's TLS certificate by default, ``[console]``
in gateway.toml), twisted.web plus Jinja2 templates with autoescaping,
server-rendered pages that need no JavaScript, one static CSS file, English
and Norwegian Bokmål (``i18n/*.toml``). The core and storage never import
this package; it calls the same storage and service functions as the CLI and
the API (never a second implementation).

Layout:

* :mod:`.app` — the root resource: headers, login, sessions, CSRF, routing;
* :mod:`.registry` — routes, roles, what a handler gets and returns;
* :mod:`.security` — argon2id hashes, session and CSRF tokens;
* :mod:`.translate` — interface languages; :mod:`.deps` — what pages use;
* :mod:`.views` — one module per area of pages; ``templates/``, ``static/``.

Adding a page (the whole recipe)
--------------------------------

1. In a module of :mod:`gateway.console.views` (a new one goes into
   ``views.MODULES``), write an async handler and register it::

       from gateway.console.registry import OPERATOR, Context, Page, Redirect, action, page

       @page("things", roles=OPERATOR, nav="nav.things", order=45)
       async def things(ctx: Context) -> Page:
           rows = await ctx.deps.db.run_txn(things_txn)   # a storage *_txn, as the CLI uses
           return Page("things.html", {"rows": rows})

       @action("things/fix", roles=OPERATOR)               # POST; CSRF checked before it runs
       async def fix(ctx: Context) -> Redirect:
           n = await ctx.deps.db.run_txn(
               audited_txn, lambda conn: fix_things_txn(conn, ctx.args("id")),
               at=ctx.now, actor=ctx.actor, subject="things-fixed:" + ",".join(ctx.args("id")),
           )
           return Redirect("/things", "flash.things_fixed", {"n": n})

   ``roles`` is the whole access rule (operator: everything but coordinator
   actions; coordinator: coordinator pages only; auditor: read-only pages of
   exchange metadata, audit and KPIs). ``prefix=True`` lets ``/things/<id>``
   reach the page with ``ctx.rest == "<id>"``.
2. Write ``templates/things.html`` extending ``base.html`` (forms include
   ``csrf_field()`` from ``macros.html``); show metadata only, never
   personal data.
3. Add the messages (``nav.things``, ``flash.things_fixed``, ...) to every
   ``i18n/*.toml`` (a test checks all catalogues have the same keys).
4. Add the route to the expected role table of
   ``tests/console/test_roles.py``, which checks every route × role.

Changes go through storage functions run with their audit entry in one
transaction (``storage.console_accounts.audited_txn``); a change kept in
files (the directory) records its entry right after, as the CLI does.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import ssl
from twisted.web.resource import Resource

from gateway.console.deps import ConsoleDeps

__all__ = ["ConsoleDeps", "build_console", "console_tls_options"]


def build_console(deps: ConsoleDeps) -> Resource:
    """The console's root resource for ``deps`` (mount it on its own listener)."""
    from gateway.console.app import ConsoleRoot

    return ConsoleRoot(deps, secure=deps.config.console.tls)


def console_tls_options(key: Any, certificate: Any, client_ca: Any) -> ssl.CertificateOptions:
    """The console's TLS: the node's TLS certificate; a client certificate of the node CA
    is asked for but not required (it may log a user in, see docs/console.md)."""
    from gateway.transport.tls import _ossl_cert

    return ssl.CertificateOptions(
        privateKey=key,
        certificate=certificate,
        verify=True,
        caCerts=[_ossl_cert(client_ca)],
        requireCertificate=False,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        enableSessions=False,
    )
