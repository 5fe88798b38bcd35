"""``imi-gateway audit``: export the node's signed audit log, and verify an export offline.

``audit export NODE_DIR`` reads the node's database (running or not), records
a checkpoint (the Merkle tree head over every entry so far) and writes the
selected entries with their inclusion proofs, signed by the node.
``audit verify FILE --cert NODE_CERT`` needs nothing but the export and the
node's signing certificate. See docs/audit.md.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway import keystore
from gateway.commands import usage_when_no_subcommand
from gateway.commands._audit_checkpoints import (
    consistency_for_export,
    register_checkpoint_commands,
    verify_against_checkpoint,
)
from gateway.commands.queue import _database
from gateway.commands.verify import _time
from gateway.core import audit, certs
from gateway.core.signing import Signer

VERIFY_EXIT_STATUSES = """\
exit status:
  0  the export is valid: signature, chain and checkpoint
  1  the export is invalid: the error code names the first bad entry
     (error: AUDIT_...: entry N: ...); see docs/audit.md and docs/errors.md
  3  a file cannot be read
"""


def _export(args: argparse.Namespace) -> int:
    from gateway.storage.audit import audit_export_txn  # imported when run: fast CLI start-up

    if args.exchange and (args.start or args.end):
        args.parser.error("give either --from/--to or --exchange, not both")
    db, node_id = _database(args.node_dir)
    try:
        now = datetime.now(UTC)
        entries, hashes, selected = db.run_txn_sync(
            audit_export_txn, at=now, start=args.start, end=args.end, exchange_id=args.exchange
        )
    finally:
        db.stop()
    keys = keystore.load_node_keys(args.node_dir)
    signer = Signer(keys.signing.key, keys.signing.certificate)
    data = audit.signed_export(
        node_id,
        entries,
        hashes,
        selected,
        at=now,
        by_exchange=bool(args.exchange),
        sign=lambda tree: signer.sign(
            consistency_for_export(args.node_dir, tree, entries, args.consistent_with)
            if args.consistent_with
            else tree
        ),
    )
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        keystore.atomic_write(Path(args.output).absolute(), data, 0o644)
        print(f"exported {len(selected)} of {len(entries)} audit entries to {args.output}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    certificate = certs.load_pem_certificate(Path(args.cert).read_bytes())
    data = Path(args.file).read_bytes()
    result = audit.verify_export(data, certificate, now=args.at or datetime.now(UTC))
    seqs = [e.seq for e in result.entries]
    span = f"entries {seqs[0]}..{seqs[-1]}" if seqs else "no entries"
    print(f"valid: {len(seqs)} audit entries ({span}) of node {result.node_id}")
    print(f"checkpoint: size {result.checkpoint.size} root {result.checkpoint.root}")
    if args.checkpoint:
        now = args.at or datetime.now(UTC)
        print(verify_against_checkpoint(data, certificate, args.checkpoint, now))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="export the signed audit log; verify an export offline",
        description="Export the node's signed audit log, or verify an export (docs/audit.md).",
    )
    sub = parser.add_subparsers(metavar="COMMAND")
    parser.set_defaults(func=usage_when_no_subcommand(parser))

    export = sub.add_parser(
        "export",
        help="write a signed XML export of a time range or of one exchange",
        description=(
            "Record a checkpoint and write the selected audit entries (all by default), "
            "each with its proof of inclusion in the checkpoint, signed by the node."
        ),
    )
    export.add_argument("node_dir", metavar="NODE_DIR")
    export.add_argument("--from", dest="start", type=_time, metavar="TIME", help="from (ISO 8601)")
    export.add_argument("--to", dest="end", type=_time, metavar="TIME", help="until (excluded)")
    export.add_argument("--exchange", metavar="ID", help="the entries of one exchange")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="'-': stdout")
    export.add_argument(
        "--consistent-with",
        metavar="CHECKPOINT",
        help="prove the log extends this checkpoint of the node (as a peer holds it)",
    )
    export.set_defaults(func=_export, parser=export)

    check = sub.add_parser(
        "verify",
        help="verify an export offline: signature, chain, checkpoint",
        description=(
            "Verify an audit export with nothing but the file and the node's signing "
            "certificate; name the first bad entry."
        ),
        epilog=VERIFY_EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", metavar="FILE")
    check.add_argument("--cert", required=True, metavar="NODE_CERT", help="the node's signing.pem")
    check.add_argument("--at", type=_time, metavar="TIME", help="verify at this time, not now")
    check.add_argument(
        "--checkpoint",
        metavar="CHECKPOINT",
        help="also prove the export extends this signed checkpoint (held by a peer)",
    )
    check.set_defaults(func=_verify, parser=check)
    register_checkpoint_commands(sub)
