"""``imi-gateway keys``: inspect and manage a node's certificates and trust store.

Sub-commands: ``show``, ``issue-national``, ``export``, ``import-peer``,
``revoke``, ``rotate`` and ``retire-old``. The work is done by :mod:`gateway.keystore`; this module parses
arguments and prints results (never key material).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway import config as config_mod
from gateway import keystore
from gateway.commands import usage_when_no_subcommand
from gateway.commands._audit import record_change
from gateway.commands.reload import notify_running_node
from gateway.core.audit import Event
from gateway.storage.directory_files import DirectoryStore


def _show(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    keys = keystore.load_node_keys(args.node_dir)  # also checks the key files' permissions
    config = config_mod.load_config(args.node_dir)
    trust = keystore.load_trust(args.node_dir)
    revocations = keystore.read_revocations(args.node_dir)
    revoked = trust.revoked
    own = [
        keystore.certificate_info(name, pair.certificate, revoked)
        for name, pair in (("ca", keys.ca), ("signing", keys.signing), ("tls", keys.tls))
    ]
    warnings: list[str] = []
    peers = []
    for peer_id in sorted(set(trust.peers) | {p.id for p in config.peers}):
        peer_conf = config.peer_config(peer_id)
        certs = trust.peers.get(peer_id)
        if peer_conf is None:
            warnings.append(f"peer {peer_id} has certificates but is not in gateway.toml")
        if certs is None:
            warnings.append(f"peer {peer_id} is in gateway.toml but has no certificates")
        infos = (
            [
                keystore.certificate_info(name, cert, revoked)
                for name, cert in zip(keystore.NODE_KEY_NAMES, certs.all(), strict=True)
            ]
            + [
                keystore.certificate_info(f"{name}-old", cert, revoked)
                for name, old in (("signing", certs.previous_signing), ("tls", certs.previous_tls))
                for cert in old
            ]
            if certs
            else []
        )
        peers.append((peer_id, peer_conf.url if peer_conf else None, infos))
    national = []
    for authority_id in sorted(set(trust.national) | {a.id for a in config.authorities}):
        certs_bound = trust.national.get(authority_id, ())
        if config.authority_config(authority_id) is None:
            warnings.append(f"authority {authority_id} has a certificate but is not registered")
        if not certs_bound:
            warnings.append(f"authority {authority_id} is registered but has no certificate")
        infos = [keystore.certificate_info("national", c, revoked) for c in certs_bound]
        national.append((authority_id, infos))
    everything = own + [i for _, _, infos in peers for i in infos]
    everything += [i for _, infos in national for i in infos]
    for info in everything:
        status = info.status(now)
        if status != "valid":
            warnings.append(f"{info.subject}: {status}")

    if args.json:
        document = {
            "node_id": keys.node_id,
            "node_dir": str(keys.node_dir),
            "certificates": [i.as_json(now) for i in own],
            "peers": [
                {"id": pid, "url": url, "certificates": [i.as_json(now) for i in infos]}
                for pid, url, infos in peers
            ],
            "national": [
                {"id": aid, "certificates": [i.as_json(now) for i in infos]}
                for aid, infos in national
            ],
            "revoked": [{"sha256": fp, "comment": c} for fp, c in revocations.items()],
            "warnings": warnings,
        }
        print(json.dumps(document, indent=2))
        return 0

    def line(info: keystore.CertificateInfo, indent: str) -> None:
        print(
            f"{indent}{info.role:<9} sha256 {info.fingerprint}\n"
            f"{indent}{'':<9} {info.not_before:%Y-%m-%d} .. {info.not_after:%Y-%m-%d}  "
            f"{info.status(now)}  {info.subject}"
        )
        if info.names:
            print(f"{indent}{'':<9} names: {', '.join(info.names)}")

    print(f"node {keys.node_id}  ({keys.node_dir})")
    for info in own:
        line(info, "  ")
    print(f"peers ({len(peers)})")
    for peer_id, url, infos in peers:
        print(f"  {peer_id}  {url or '(no URL configured)'}")
        for info in infos:
            line(info, "    ")
    print(f"national systems ({len(national)})")
    for authority_id, infos in national:
        print(f"  {authority_id}")
        for info in infos:
            line(info, "    ")
    print(f"revoked ({len(revocations)})")
    for fp, comment in revocations.items():
        print(f"  {fp}  {comment}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _issue_national(args: argparse.Namespace) -> int:
    issued = keystore.issue_national_certificate(
        args.node_dir,
        args.authority_id,
        args.out,
        kind="rsa" if args.rsa else "ec",
        days=args.days,
    )
    cert = issued.certificate
    print(f"Issued a certificate bound to {issued.authority_id}:")
    print(f"  sha256      {issued.fingerprint}")
    print(
        f"  valid       {cert.not_valid_before_utc:%Y-%m-%d} .. {cert.not_valid_after_utc:%Y-%m-%d}"
    )
    print(
        f"  private key {issued.key_path}  (0600: hand it to the national system, then delete it)"
    )
    print(f"  certificate {issued.certificate_path}")
    print(f"  node CA     {issued.node_ca_path}")
    if issued.registered:
        print(f"Registered {issued.authority_id} under [[authorities]] in gateway.toml.")
    record_change(args.node_dir, Event.TRUST_CHANGED, issued.authority_id)
    if issued.registered:
        record_change(args.node_dir, Event.CONFIG_CHANGED, issued.authority_id)
    if _publish_issued(args.node_dir, issued.authority_id):
        record_change(args.node_dir, Event.AUTHORITIES_CHANGED, issued.authority_id)
    notify_running_node(args.node_dir)
    return 0


def _publish_issued(node_dir: str, authority_id: str) -> bool:
    """List the new certificate in the node's published directory (True), or say how to.

    Once the directory lists any authority, peers pin exactly the listed
    certificates and the node refuses documents signed with others
    (AUTHORITY_NOT_PUBLISHED): issuing and listing must both happen.
    """
    store = DirectoryStore(node_dir)
    if authority_id in store.records():
        published = store.refresh(now=datetime.now(UTC))
        print(
            f"Published the certificate in the authority directory (version {published.version}); "
            "peers pick it up at their next directory sync."
        )
        return True
    if not store.published().entries:
        return False  # no directory published: peers trust any certificate of this node's CA
    print(
        f"{authority_id} is not in the published authority directory yet. Register it "
        f"(imi-gateway authorities add {node_dir} {authority_id} --name ...): until then "
        "the node refuses its documents (AUTHORITY_NOT_PUBLISHED), which peers that "
        "synced the directory would refuse."
    )
    return False


def _export(args: argparse.Namespace) -> int:
    bundle = keystore.export_node_bundle(args.node_dir)
    if args.output and args.output != "-":
        out = Path(args.output)
        keystore.atomic_write(out.absolute(), bundle, 0o644)
        data = json.loads(bundle)
        print(f"Wrote the bundle of node {data['node_id']} to {out}.", file=sys.stderr)
        print(
            f"The peer operator must check its CA fingerprint {data['fingerprints']['ca']} "
            "with you over another channel.",
            file=sys.stderr,
        )
    else:
        sys.stdout.buffer.write(bundle)
        sys.stdout.flush()
    return 0


def _import_peer(args: argparse.Namespace) -> int:
    if args.bundle == "-":
        data = sys.stdin.buffer.read()
    else:
        data = Path(args.bundle).read_bytes()
    result = keystore.import_peer(args.node_dir, data, url=args.url, replace=args.replace)
    peer = result.certificates
    verb = "Imported" if result.changed else "Already up to date:"
    if result.rotated:
        verb = "Added the rotated keys of"
    print(f"{verb} peer {peer.node_id} at {result.url}")
    if result.rotated:
        print(
            "  its previous signing and TLS certificates stay accepted until the end of "
            f"the overlap (retire them earlier: imi-gateway keys retire-old NODE_DIR {peer.node_id})"
        )
    for name, cert in zip(keystore.NODE_KEY_NAMES, peer.all(), strict=True):
        print(f"  {name:<8} sha256 {keystore.certificate_fingerprint(cert)}")
    print(
        "Check the CA fingerprint with the peer's operator over another channel; "
        "revoke it (keys revoke) if it does not match."
    )
    if result.changed:
        record_change(args.node_dir, Event.TRUST_CHANGED, peer.node_id)
        record_change(args.node_dir, Event.CONFIG_CHANGED, peer.node_id)
        notify_running_node(args.node_dir)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    result = keystore.revoke(args.node_dir, args.target)
    for description in result.described:
        print(f"revoked {description}")
    for authority_id in result.unbound:
        print(f"unbound the certificate from {authority_id} (archived under national/revoked/)")
    if result.already_revoked:
        print("(it was already revoked: nothing changed)")
    else:
        subject = result.unbound[0] if result.unbound else result.fingerprints[0]
        record_change(args.node_dir, Event.TRUST_CHANGED, subject)
    notify_running_node(args.node_dir)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    rotation = keystore.rotate_node_keys(args.node_dir, overlap_days=args.overlap_days)
    record_change(args.node_dir, Event.TRUST_CHANGED, f"rotate {rotation.node_id}")
    print(f"Rotated the signing and TLS keys of node {rotation.node_id}.")
    for role in ("signing", "tls"):
        print(f"  {role:<8} old sha256 {rotation.old[role]}")
        print(f"  {role:<8} new sha256 {rotation.new[role]}")
    print(f"Peers accept the old certificates until {rotation.overlap_until:%Y-%m-%d %H:%M} UTC.")
    print(rotation_next_steps(args.node_dir))
    return 0


def rotation_next_steps(node_dir: str) -> str:
    """What the operator does after a key rotation (printed by ``keys rotate``, shown by the console)."""
    return (
        "Next: send the new bundle to each peer (imi-gateway keys export), let them import it "
        "(keys import-peer adds it next to the old one), then make this node use the new "
        f"keys: imi-gateway reload {node_dir}"
    )


def _retire_old(args: argparse.Namespace) -> int:
    dropped = keystore.retire_old(args.node_dir, args.peers)
    if not dropped:
        print("No previous certificates to retire.")
        return 0
    record_change(args.node_dir, Event.TRUST_CHANGED, "retire-old " + ",".join(dropped))
    for what in dropped:
        print(
            f"Retired the previous certificates of {what if what == 'this node' else 'peer ' + what}."
        )
    notify_running_node(args.node_dir)
    return 0


def _overlap_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not 1 <= days <= 365:
        raise argparse.ArgumentTypeError("the overlap must be between 1 and 365 days")
    return days


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError("the validity must be between 1 and 3650 days")
    return days


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="inspect and manage certificates, peers and national systems",
        description=(
            "Inspect and manage the node's key store: its own certificates, the national "
            "systems' certificates it issued, the peers it trusts, and revocations. "
            "Exit status 0 on success, 1 for refused input, 3 for a configuration or "
            "key-store problem."
        ),
    )
    parser.set_defaults(func=usage_when_no_subcommand(parser))
    sub = parser.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")

    show = sub.add_parser(
        "show",
        help="list every certificate with its SHA-256 fingerprint and validity",
        description=(
            "List the node's CA, signing and TLS certificates, each peer's certificates, "
            "the certificates bound to national systems and the revoked fingerprints, "
            "with SHA-256 fingerprints and validity. Also checks the private keys "
            "(permissions, matching certificates); warnings go to standard error."
        ),
    )
    show.add_argument("node_dir", metavar="NODE_DIR")
    show.add_argument("--json", action="store_true", help="print JSON for scripts")
    show.set_defaults(func=_show)

    issue = sub.add_parser(
        "issue-national",
        help="issue a certificate to a national system, bound to its authority id",
        description=(
            "Issue a key and certificate for the national system of AUTHORITY_ID (an "
            "authority of this node's country, e.g. NO-HELSEDIR), signed by the node CA. "
            "The certificate both signs the system's documents and authenticates its API "
            "calls. Writes AUTHORITY_ID.key (0600), AUTHORITY_ID.pem and node-ca.pem "
            "into DIR, binds the certificate to the authority (national/AUTHORITY_ID.pem, "
            "next to an older one during a rotation) and registers the authority in "
            "gateway.toml."
        ),
    )
    issue.add_argument("node_dir", metavar="NODE_DIR")
    issue.add_argument("authority_id", metavar="AUTHORITY_ID")
    issue.add_argument(
        "--out", required=True, metavar="DIR", help="directory for the national system's files"
    )
    issue.add_argument(
        "--rsa", action="store_true", help="RSA-2048 key instead of ECDSA P-256 (for HSMs)"
    )
    issue.add_argument(
        "--days", type=_days, default=825, metavar="N", help="validity in days (825)"
    )
    issue.set_defaults(func=_issue_national)

    export = sub.add_parser(
        "export",
        help="write the bundle (certificates, node id, URL) that peers import",
        description=(
            "Print (or write to FILE) this node's public bundle: node id, peer API URL "
            "([peer] public_url) and CA, signing and TLS certificates, as JSON. It holds "
            "no secret; the receiving operator checks the CA fingerprint with you."
        ),
    )
    export.add_argument("node_dir", metavar="NODE_DIR")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    export.set_defaults(func=_export)

    imp = sub.add_parser(
        "import-peer",
        help="trust a peer node from its exported bundle",
        description=(
            "Check a peer's bundle (from its 'keys export'), store its certificates under "
            "trust/peers/ID/ and add it to [[peers]] in gateway.toml. New signing and TLS "
            "certificates of a known peer from the same CA (its key rotation) are added "
            "next to the old ones, which stay accepted until the overlap the bundle "
            "announces ends; certificates from another CA are refused unless --replace "
            "is given."
        ),
    )
    imp.add_argument("node_dir", metavar="NODE_DIR")
    imp.add_argument("bundle", metavar="BUNDLE", help="bundle file, or - for standard input")
    imp.add_argument("--url", metavar="URL", help="peer API URL (default: the bundle's)")
    imp.add_argument("--replace", action="store_true", help="replace a known peer's certificates")
    imp.set_defaults(func=_import_peer)

    rev = sub.add_parser(
        "revoke",
        help="revoke a certificate (fingerprint) or unbind an authority's certificates",
        description=(
            "Add a certificate's SHA-256 fingerprint to revoked.txt, so the node refuses "
            "it everywhere; given an AUTHORITY_ID, revoke and unbind every certificate "
            "bound to that authority (issue a new one with issue-national)."
        ),
    )
    rev.add_argument("node_dir", metavar="NODE_DIR")
    rev.add_argument("target", metavar="FINGERPRINT|AUTHORITY_ID")
    rev.set_defaults(func=_revoke)

    rot = sub.add_parser(
        "rotate",
        help="renew the node's signing and TLS keys and certificates, with an overlap",
        description=(
            "Issue new signing and TLS keys and certificates (825 days) from the node CA, "
            "for the same node id and host names, replacing the old keys. The old "
            "certificates are kept until the end of the overlap; the exported bundle "
            "announces it, and peers that import it (keys import-peer) accept old and new "
            "certificates until then. A running node starts using the new keys at its next "
            "reload (imi-gateway reload): let the peers import the new bundle first. "
            "See docs/operator-keys.md."
        ),
    )
    rot.add_argument("node_dir", metavar="NODE_DIR")
    rot.add_argument(
        "--overlap-days",
        type=_overlap_days,
        default=keystore.DEFAULT_OVERLAP_DAYS,
        metavar="N",
        help=f"days the old certificates stay accepted (default {keystore.DEFAULT_OVERLAP_DAYS})",
    )
    rot.set_defaults(func=_rotate)

    ret = sub.add_parser(
        "retire-old",
        help="stop accepting the certificates a rotation replaced, before the overlap ends",
        description=(
            "Drop the previous certificates kept through a key rotation's overlap: this "
            "node's own and every peer's, or only the peers named. A running node is told "
            "to reload."
        ),
    )
    ret.add_argument("node_dir", metavar="NODE_DIR")
    ret.add_argument("peers", metavar="PEER", nargs="*", help="only these peers' (node ids)")
    ret.set_defaults(func=_retire_old)
