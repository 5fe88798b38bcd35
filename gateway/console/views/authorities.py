"""Authorities: register and edit names in several languages, competences, region, languages.

The same directory store and competence rules as ``imi-gateway authorities
add|update`` (``storage.directory_files.DirectoryStore``,
``commands._authority_options.build_competences``); each change is recorded
(AUTHORITIES_CHANGED, actor ``console:<user>``) right after the directory
files are written, and the running node reloads its trust at once. The bound
national-system certificate is issued by ``imi-gateway keys issue-national``
and shown here by fingerprint.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from cryptography import x509

from gateway.commands._authority_options import build_competences, name_arg
from gateway.console.registry import (
    OPERATOR,
    ConsoleInputInvalid,
    Context,
    Page,
    Redirect,
    action,
    page,
)
from gateway.core import certs
from gateway.core import directory as rules
from gateway.core.audit import Event
from gateway.core.directory.document import Address, AuthorityEntry
from gateway.core.docxml import LocalizedText
from gateway.core.ns import LANGUAGES
from gateway.storage.audit import append_audit_txn


def _lines(ctx: Context, name: str) -> list[str]:
    return [line.strip() for line in ctx.arg(name).splitlines() if line.strip()]


def _words(ctx: Context, name: str) -> list[str]:
    return [w.strip() for w in ctx.arg(name).replace(",", " ").split() if w.strip()]


def _names(ctx: Context) -> tuple[LocalizedText, ...]:
    names = []
    for line in _lines(ctx, "names"):
        try:
            names.append(name_arg(line))
        except argparse.ArgumentTypeError:
            raise ConsoleInputInvalid(
                "names: one LANG:NAME a line, e.g. nb:Helsedirektoratet"
            ) from None
    if not names:
        raise ConsoleInputInvalid("names: at least one LANG:NAME line")
    return tuple(names)


def _languages(ctx: Context) -> tuple[str, ...]:
    languages = tuple(_words(ctx, "languages")) or ctx.deps.config.node.languages
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown:
        raise ConsoleInputInvalid(f"languages: unknown code(s) {' '.join(unknown)}")
    return languages


def _competences(ctx: Context) -> Any:
    return build_competences(
        ctx.deps.directory.catalogue,
        ctx.args("area"),
        _words(ctx, "question_sets"),
        _words(ctx, "professions"),
    )


def _fingerprints(entry: AuthorityEntry) -> list[str]:
    return [certs.fingerprint(x509.load_der_x509_certificate(der)) for der in entry.certificates]


@page("authorities", roles=OPERATOR, nav="nav.authorities", order=50, prefix=True)
async def authorities(ctx: Context) -> Page:
    store = ctx.deps.directory
    published = await ctx.deps.run(store.published)
    areas = sorted(store.catalogue.areas)
    if ctx.rest:
        entry = published.entries.get(ctx.rest)
        if entry is None:
            raise rules.AuthorityFieldInvalid(f"authority: {ctx.rest} is not registered here")
        return Page(
            "authority_form.html",
            {"entry": entry, "areas": areas, "fingerprints": _fingerprints(entry)},
        )
    if ctx.arg("new"):
        return Page("authority_form.html", {"entry": None, "areas": areas, "fingerprints": []})
    entries = sorted(published.entries.values(), key=lambda e: e.authority_id)
    return Page(
        "authorities.html",
        {"entries": entries, "version": published.version, "lang": ctx.t.lang},
    )


async def _record(ctx: Context, authority_id: str) -> None:
    deps = ctx.deps
    state = deps.directory.state_path
    data = await deps.run(lambda: state.read_bytes() if state.exists() else b"")
    await deps.db.run_txn(
        append_audit_txn,
        at=ctx.now,
        event=Event.AUTHORITIES_CHANGED,
        actor=ctx.actor,
        message_id=authority_id,
        digest=deps.audit_key.digest(data),
    )
    deps.reload_trust()


@action("authorities/add", roles=OPERATOR)
async def add(ctx: Context) -> Redirect:
    authority_id = ctx.required("authority_id").upper()
    address = _lines(ctx, "address")
    if not address:
        raise ConsoleInputInvalid("address: at least one line")
    entry = AuthorityEntry(
        authority_id=authority_id,
        names=_names(ctx),
        address=Address(
            tuple(address),
            ctx.required("city"),
            authority_id[:2],
            postal_code=ctx.arg("postal_code") or None,
        ),
        region=ctx.arg("region") or None,
        competences=_competences(ctx),
        working_languages=_languages(ctx),
        certificates=(),
    )
    await ctx.deps.run(ctx.deps.directory.add, entry, now=ctx.now)
    await _record(ctx, authority_id)
    return Redirect(f"/authorities/{authority_id}", "flash.authority_saved")


@action("authorities/update", roles=OPERATOR)
async def update(ctx: Context) -> Redirect:
    authority_id = ctx.required("authority_id")
    names = _names(ctx)
    competences = _competences(ctx)
    languages = _languages(ctx)
    address_lines = _lines(ctx, "address")

    def edit(current: AuthorityEntry) -> AuthorityEntry:
        address = current.address
        if address_lines:
            address = dataclasses.replace(address, lines=tuple(address_lines))
        if ctx.arg("city"):
            address = dataclasses.replace(address, city=ctx.arg("city"))
        address = dataclasses.replace(address, postal_code=ctx.arg("postal_code") or None)
        return dataclasses.replace(
            current,
            names=names,
            address=address,
            region=ctx.arg("region") or None,
            competences=competences,
            working_languages=languages,
        )

    await ctx.deps.run(ctx.deps.directory.update, authority_id, edit, now=ctx.now)
    await _record(ctx, authority_id)
    return Redirect(f"/authorities/{authority_id}", "flash.authority_saved")
