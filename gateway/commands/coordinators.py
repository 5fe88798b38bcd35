"""``imi-gateway coordinators``: register coordinators, see what needs them, prepare their documents.

Sub-commands:

* ``add NODE_DIR ID --name NAME (--national | --regions R,... | --authorities A,...) --out DIR``:
  issue the coordinator's client certificate (node CA, marked as a
  coordinator's; key and certificate written to ``DIR``) and register it;
* ``list NODE_DIR`` / ``show NODE_DIR ID``: the registered coordinators,
  their scope and certificates;
* ``remove NODE_DIR ID``: unregister it and revoke its certificates;
* ``exchanges NODE_DIR ID [--view all|overdue|disputed|escalated]``: the
  exchanges in its scope that need attention (metadata only; reads the
  database, the node may be running);
* ``document NODE_DIR ID KIND --exchange EXCHANGE_ID ...``: an UNSIGNED
  coordinator document (reminder, forward, note, settle, end) for the
  coordinator to sign (``imi-gateway sign``) and post to
  ``/api/v1/coordination/documents`` (docs/coordinators.md).

Errors print ``error: CODE: message``; exit status 0 on success, 1 for
refused input, 3 for a configuration or key-store problem.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime

from gateway import keystore
from gateway.commands import usage_when_no_subcommand
from gateway.commands.queue import _database
from gateway.commands.reload import notify_running_node
from gateway.core.admission import country_of, scoped_id
from gateway.core.coordinators import Coordinator, CoordinatorUnknown, Scope, scope_members
from gateway.core.documents import to_bytes
from gateway.core.docxml import LocalizedText
from gateway.core.errors import InvalidInput
from gateway.service.coordinators import (
    KINDS,
    VIEWS,
    attention_query,
    coordinator_document,
    select_views,
)
from gateway.storage.coordinators import CoordinatorExists, CoordinatorRegistry
from gateway.storage.deadlines import attention_exchanges_txn
from gateway.storage.directory_files import DirectoryStore
from gateway.storage.exchanges import exchange_txn


def _registered(node_dir: str, coordinator_id: str) -> Coordinator:
    found = CoordinatorRegistry(node_dir).get(coordinator_id)
    if found is None:
        raise CoordinatorUnknown(f"no coordinator {coordinator_id} is registered at this node")
    return found


def _scope(args: argparse.Namespace) -> tuple[Scope, tuple[str, ...]]:
    if args.national:
        return Scope.NATIONAL, ()
    if args.regions:
        return Scope.REGIONS, scope_members(args.regions.split(","))
    return Scope.AUTHORITIES, scope_members(args.authorities.split(","))


def _add(args: argparse.Namespace) -> int:
    scope, members = _scope(args)
    coordinator = Coordinator(args.coordinator_id, args.name, scope, members)
    registry = CoordinatorRegistry(args.node_dir)
    if registry.get(coordinator.id) is not None:  # before any certificate is issued
        raise CoordinatorExists(f"coordinator {coordinator.id} is already registered")
    issued = keystore.issue_national_certificate(
        args.node_dir,
        coordinator.id,
        args.out,
        kind="rsa" if args.rsa else "ec",
        days=args.days,
        coordinator=True,
    )
    registry.add(coordinator)
    print(f"Registered coordinator {coordinator.id} ({_scope_text(coordinator)}).")
    print(f"  sha256      {issued.fingerprint}")
    print(f"  private key {issued.key_path}  (0600: hand it to the coordinator, then delete it)")
    print(f"  certificate {issued.certificate_path}")
    print(f"  node CA     {issued.node_ca_path}")
    notify_running_node(args.node_dir)
    return 0


def _scope_text(c: Coordinator) -> str:
    return "national" if c.scope is Scope.NATIONAL else f"{c.scope.value}: {', '.join(c.members)}"


def _as_json(c: Coordinator) -> dict[str, object]:
    return {"id": c.id, "name": c.name, "scope": c.scope.value, "members": list(c.members)}


def _list(args: argparse.Namespace) -> int:
    found = sorted(CoordinatorRegistry(args.node_dir).all().values(), key=lambda c: c.id)
    if args.json:
        print(json.dumps([_as_json(c) for c in found], indent=2, ensure_ascii=False))
        return 0
    print(f"coordinators ({len(found)})")
    for c in found:
        print(f"  {c.id:<24} {_scope_text(c)}  {c.name}")
    return 0


def _show(args: argparse.Namespace) -> int:
    c = _registered(args.node_dir, args.coordinator_id)
    trust = keystore.load_trust(args.node_dir)
    fingerprints = [keystore.certificate_fingerprint(x) for x in trust.national.get(c.id, ())]
    if args.json:
        print(json.dumps(_as_json(c) | {"certificates": fingerprints}, indent=2))
        return 0
    print(f"{c.id}  {c.name}")
    print(f"  scope        {_scope_text(c)}")
    for fp in fingerprints or ["(none: issue one with coordinators add, or it was revoked)"]:
        print(f"  certificate  {fp}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    removed = CoordinatorRegistry(args.node_dir).remove(args.coordinator_id)
    try:
        revoked = keystore.revoke(args.node_dir, removed.id)
        count = len(revoked.fingerprints)
        print(f"Removed coordinator {removed.id}; revoked its certificates ({count}).")
    except keystore.RevocationTargetUnknown:
        print(f"Removed coordinator {removed.id}; it had no certificate bound.")
    notify_running_node(args.node_dir)
    return 0


def _exchanges(args: argparse.Namespace) -> int:
    coordinator = _registered(args.node_dir, args.coordinator_id)
    records = DirectoryStore(args.node_dir).records()
    db, node_id = _database(args.node_dir)
    now = datetime.now(UTC)
    try:
        rows = db.run_txn_sync(attention_exchanges_txn, **attention_query(now))
    finally:
        db.engine.dispose()

    def region_of(authority_id: str) -> str | None:
        entry = records.get(authority_id)
        return None if entry is None else entry.region

    views = select_views(rows, coordinator, node_id, region_of, now, args.view)
    out = []
    for item in views:
        ex = item.exchange
        out.append(
            {
                "exchange_id": ex.exchange_id,
                "state": ex.state,
                "requester": ex.requester_authority,
                "responder": ex.responder_authority,
                "area": ex.area,
                "acceptance_due_at": _iso(ex.acceptance_due_at),
                "reply_due_at": _iso(ex.reply_due_at),
                "reply_date_agreed": ex.reply_date_agreed,
                "overdue": item.overdue,
                "escalations": item.escalations,
            }
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{len(out)} exchange(s) for {coordinator.id} ({args.view})")
    for row in out:
        flags = [f"overdue:{row['overdue']}"] if row["overdue"] else []
        flags += ["disputed"] if row["state"] == "disputed" else []
        flags += [f"escalations:{row['escalations']}"] if row["escalations"] else []
        print(f"  {row['exchange_id']}  {row['state']}  {' '.join(flags)}")
    return 0


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _document(args: argparse.Namespace) -> int:
    coordinator = _registered(args.node_dir, args.coordinator_id)
    db, node_id = _database(args.node_dir)
    try:
        exchange = db.run_txn_sync(exchange_txn, args.exchange)
    finally:
        db.engine.dispose()
    if args.kind == "forward" and (not args.forward_to or country_of(args.forward_to) != node_id):
        raise InvalidInput("--forward-to must name another authority of this country")
    if args.kind == "note" and not args.note:
        raise InvalidInput("a mediation note needs --note")
    document = coordinator_document(
        coordinator,
        exchange,
        node_id,
        args.kind,
        document_id=scoped_id(coordinator.id, uuid.uuid4().hex),
        created=datetime.now(UTC),
        note=LocalizedText(args.note, args.lang) if args.note else None,
        forward_to=args.forward_to,
        decision=args.decision,
    )
    sys.stdout.buffer.write(to_bytes(document))
    sys.stdout.flush()
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "coordinators",
        help="register national and regional coordinators; what needs them; their documents",
        description=(
            "Register the IMI coordinators of this node's country (national, regional or for "
            "listed authorities) with their own client certificate, list the overdue, "
            "disputed and escalated exchanges in a coordinator's scope (metadata only), and "
            "prepare a coordinator's documents for signing. Exit status 0 on success, 1 for "
            "refused input, 3 for a configuration or key-store problem. See "
            "docs/coordinators.md."
        ),
    )
    parser.set_defaults(func=usage_when_no_subcommand(parser))
    sub = parser.add_subparsers(dest="coordinators_command", metavar="SUBCOMMAND")

    add = sub.add_parser(
        "add",
        help="issue a coordinator's certificate and register it with its scope",
        description=(
            "Issue a client certificate to a coordinator (signed by the node CA, bound to its "
            "id and marked as a coordinator's) into DIR, and register the coordinator with "
            "its scope. The id looks like an authority id of this country (NO-KOORDINATOR)."
        ),
    )
    add.add_argument("node_dir", metavar="NODE_DIR")
    add.add_argument("coordinator_id", metavar="ID")
    add.add_argument("--name", required=True, help="the coordinator's name")
    scope = add.add_mutually_exclusive_group(required=True)
    scope.add_argument("--national", action="store_true", help="every authority of the country")
    scope.add_argument("--regions", metavar="R,...", help="authorities of these regions")
    scope.add_argument("--authorities", metavar="A,...", help="these authorities")
    add.add_argument("--out", required=True, metavar="DIR", help="where to write key and cert")
    add.add_argument("--rsa", action="store_true", help="an RSA-2048 key (default: EC P-256)")
    add.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    add.set_defaults(func=_add)

    lister = sub.add_parser("list", help="the registered coordinators and their scopes")
    lister.add_argument("node_dir", metavar="NODE_DIR")
    lister.add_argument("--json", action="store_true", help="print JSON for scripts")
    lister.set_defaults(func=_list)

    show = sub.add_parser("show", help="one coordinator: scope and certificate fingerprints")
    show.add_argument("node_dir", metavar="NODE_DIR")
    show.add_argument("coordinator_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON for scripts")
    show.set_defaults(func=_show)

    remove = sub.add_parser("remove", help="unregister a coordinator and revoke its certificates")
    remove.add_argument("node_dir", metavar="NODE_DIR")
    remove.add_argument("coordinator_id", metavar="ID")
    remove.set_defaults(func=_remove)

    exchanges = sub.add_parser(
        "exchanges",
        help="overdue, disputed and escalated exchanges in a coordinator's scope",
        description=(
            "List the exchanges in the coordinator's scope that need attention: metadata only "
            "(ids, parties, state, deadlines, escalations), never personal data."
        ),
    )
    exchanges.add_argument("node_dir", metavar="NODE_DIR")
    exchanges.add_argument("coordinator_id", metavar="ID")
    exchanges.add_argument("--view", choices=VIEWS, default="all")
    exchanges.add_argument("--json", action="store_true", help="print JSON for scripts")
    exchanges.set_defaults(func=_exchanges)

    document = sub.add_parser(
        "document",
        help="an unsigned coordinator document for an exchange (sign it, then post it)",
        description=(
            "Print an UNSIGNED coordinator document: reminder (CoordinatorReminder), forward "
            "(CoordinatorForward, --forward-to), note (MediationNote, --note), settle "
            "(DisputeSettled) or end (DisputeEnded), with --decision for the last two. Sign "
            "it with the coordinator's key (imi-gateway sign) and POST it to "
            "/api/v1/coordination/documents."
        ),
    )
    document.add_argument("node_dir", metavar="NODE_DIR")
    document.add_argument("coordinator_id", metavar="ID")
    document.add_argument("kind", choices=KINDS, metavar="KIND", help=", ".join(KINDS))
    document.add_argument("--exchange", required=True, metavar="EXCHANGE_ID")
    document.add_argument("--note", help="free text for the other coordinator or the parties")
    document.add_argument("--lang", default="en", help="language of --note (default en)")
    document.add_argument("--forward-to", metavar="AUTHORITY_ID")
    document.add_argument("--decision", metavar="CODE", help="REQUEST_JUSTIFIED, ... (settle/end)")
    document.set_defaults(func=_document)
