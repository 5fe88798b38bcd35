"""Peers and trust: each peer's URL and pinned certificates, revoked certificates.

Operators also add a peer from its bundle, revoke a certificate and rotate
the node's keys here, with the same key-store functions as ``imi-gateway
keys import-peer``, ``keys revoke`` and ``keys rotate``
(:mod:`gateway.keystore`). Each change is recorded (CONSOLE_CHANGE, actor
``console:<user>``) right after the key-store files are written, and the
running node reloads its trust at once (as on SIGHUP).
"""

from __future__ import annotations

from gateway import keystore
from gateway.commands.keys import rotation_next_steps
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
from gateway.storage.console_accounts import record_console_change_txn

#: Largest peer bundle accepted from the form (a bundle is three certificates and a URL).
MAX_BUNDLE = 64 * 1024


@page("peers", roles=OPERATOR, nav="nav.peers", order=40)
async def peers(ctx: Context) -> Page:
    deps = ctx.deps
    raw = deps.trust.raw
    urls = {p.id: p.url for p in deps.config.peers}
    rows = []
    for peer_id in sorted(set(raw.peers) | set(urls)):
        pinned = raw.peers.get(peer_id)
        rows.append(
            {
                "id": peer_id,
                "url": urls.get(peer_id),
                "certificates": [
                    (kind, certs.fingerprint(c), c.not_valid_after_utc)
                    for kind, c in (
                        (("ca", pinned.ca), ("signing", pinned.signing), ("tls", pinned.tls))
                        if pinned
                        else ()
                    )
                ],
            }
        )
    own = [
        (what, certs.fingerprint(c), c.not_valid_after_utc) for what, c in deps.node_certificates
    ]
    return Page(
        "peers.html",
        {
            "peers": rows,
            "own": own,
            "revoked": sorted(raw.revoked),
            "default_overlap": keystore.DEFAULT_OVERLAP_DAYS,
        },
    )


async def _record(ctx: Context, subject: str) -> None:
    """The CONSOLE_CHANGE entry of a key-store change, then the trust reload."""
    await ctx.deps.db.run_txn(
        record_console_change_txn, at=ctx.now, actor=ctx.actor, subject=subject
    )
    ctx.deps.reload_trust()


@action("peers/add", roles=OPERATOR)
async def add_peer(ctx: Context) -> Redirect:
    values = ctx.form.get("bundle") or []
    bundle = (values[0] if values else "").encode("utf-8")
    if not bundle.strip():
        raise ConsoleInputInvalid("bundle: choose the peer's bundle file (keys export)")
    if len(bundle) > MAX_BUNDLE:
        raise ConsoleInputInvalid(f"bundle: at most {MAX_BUNDLE} bytes")
    deps = ctx.deps
    result = await deps.run(
        keystore.import_peer,
        deps.node_dir,
        bundle,
        url=ctx.arg("url") or None,
        replace=ctx.arg("replace") == "yes",
        now=ctx.now,
    )
    peer_id = result.certificates.node_id
    if result.changed:
        await _record(ctx, f"peer-imported:{peer_id}")
    return Redirect("/peers", "flash.peer_imported" if result.changed else "flash.peer_unchanged")


@action("peers/revoke", roles=OPERATOR)
async def revoke(ctx: Context) -> Redirect:
    target = ctx.required("fingerprint")
    result = await ctx.deps.run(keystore.revoke, ctx.deps.node_dir, target, now=ctx.now)
    if result.already_revoked:
        return Redirect("/peers", "flash.already_revoked")
    await _record(ctx, "certificate-revoked:" + ",".join(result.fingerprints))
    return Redirect("/peers", "flash.revoked", {"n": len(result.fingerprints)})


@action("peers/rotate", roles=OPERATOR)
async def rotate(ctx: Context) -> Page:
    deps = ctx.deps
    try:
        overlap = int(ctx.required("overlap_days"))  # required: an empty form rotates nothing
    except ValueError:
        raise ConsoleInputInvalid("overlap_days: a number of days") from None
    rotation = await deps.run(
        keystore.rotate_node_keys, deps.node_dir, overlap_days=overlap, now=ctx.now
    )
    await deps.db.run_txn(
        record_console_change_txn,
        at=ctx.now,
        actor=ctx.actor,
        subject=f"keys-rotated:{rotation.node_id}",
    )
    return Page(
        "peers_rotated.html",
        {"rotation": rotation, "next_steps": rotation_next_steps(str(deps.node_dir))},
    )
