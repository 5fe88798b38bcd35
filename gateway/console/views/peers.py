"""Peers and trust: each peer's URL and pinned certificates, revoked certificates.

Read-only: adding a peer (``keys import-peer``), rotating and revoking
certificates (``keys rotate``, ``keys revoke``) stay CLI commands, which a
running node picks up at once (SIGHUP).
"""

from __future__ import annotations

from gateway.console.registry import OPERATOR, Context, Page, page
from gateway.core import certs


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
    return Page("peers.html", {"peers": rows, "own": own, "revoked": sorted(raw.revoked)})
