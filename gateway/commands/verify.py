"""``imi-gateway verify``: verify a signed document as a node would, offline.

Applies exactly the node's rules (:func:`gateway.core.signing.verify`, then
the XSD unless ``--no-schema``) against the certificates given on the command
line: pinned certificates (``--cert``) and/or CA certificates (``--ca``).
Never a system or public CA bundle. See docs/signatures.md.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from gateway.commands.sign import read_input
from gateway.core import certs, schemas
from gateway.core.errors import GatewayError
from gateway.core.signing import ENGINES, Verified, verify

EXIT_STATUSES = """\
exit status:
  0  the signature is valid (and the document is schema-valid unless --no-schema)
  1  the document was refused: the error code and reason are printed
     (error: CODE: message); see docs/signatures.md and docs/errors.md
  2  usage error (for example neither --cert nor --ca given)
  3  a certificate or the document file cannot be read
"""


def _fingerprint(value: str) -> str:
    try:
        return certs.normalise_fingerprint(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give the time zone, e.g. 2026-03-02T09:30:00Z")
    return moment


def _report(verified: Verified, document_type: str, validated: bool) -> dict[str, object]:
    cert = verified.certificate
    return {
        "valid": True,
        "document_type": document_type,
        "schema_validated": validated,
        "signer": {
            "authority_id": verified.authority_id,
            "node_id": verified.node_id,
            "subject": cert.subject.rfc4514_string(),
            "certificate_sha256": verified.fingerprint,
            "not_valid_after": cert.not_valid_after_utc.isoformat(),
        },
        "sha256": verified.sha256,
    }


def _run(args: argparse.Namespace) -> int:
    if not args.cert and not args.ca:
        args.parser.error("give the signer's pinned certificate (--cert) and/or a CA (--ca)")
    trust = certs.TrustStore.from_pem(
        pinned=[Path(p).read_bytes() for p in args.cert],
        cas=[Path(p).read_bytes() for p in args.ca],
        revoked=args.revoked,
    )
    data = read_input(args.document)
    now = args.at or datetime.now(UTC)
    try:
        verified = verify(data, trust, now=now, engine=args.engine)
        if args.no_schema:
            document_type = etree.QName(verified.root).localname
        else:
            document_type = schemas.validate(verified.root)
    except GatewayError as exc:
        if args.json:
            refusal = {"valid": False, "error": {"code": exc.code, "message": str(exc)}}
            print(json.dumps(refusal, indent=2))
        raise
    report = _report(verified, document_type, not args.no_schema)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    signer = report["signer"]
    assert isinstance(signer, dict)
    if verified.authority_id:
        identity = f"authority {verified.authority_id}"
    elif verified.node_id:
        identity = f"node {verified.node_id}"
    else:
        identity = "no authority or node identity"
    print(f"valid: {document_type} signed by {identity}")
    print(
        f"document type:      {document_type}"
        + ("" if not args.no_schema else " (not schema-checked)")
    )
    print(f"signer:             {identity}")
    print(f"certificate:        {signer['subject']}")
    print(f"certificate sha256: {signer['certificate_sha256']}")
    print(f"document sha256:    {verified.sha256}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="verify a signed document against pinned certificates or a CA",
        description=(
            "Verify DOCUMENT's XML signature with the node's rules (one enveloped "
            'signature as the root\'s last child, one reference URI="", exclusive C14N, '
            "SHA-256, RSA-SHA256 or ECDSA-SHA256, no DOCTYPE/comments/duplicate IDs, "
            "a trusted certificate inside its validity period and not revoked), then "
            "validate it against the protocol XSDs. Prints the document type, the "
            "signer's identity, the certificate fingerprint and the SHA-256 of the bytes."
        ),
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("document", metavar="DOCUMENT", help="the signed document ('-': stdin)")
    parser.add_argument(
        "--cert",
        action="append",
        default=[],
        metavar="PINNED.pem",
        help="a certificate trusted exactly as it is (repeatable)",
    )
    parser.add_argument(
        "--ca",
        action="append",
        default=[],
        metavar="CA.pem",
        help="a CA whose directly issued certificates are trusted (repeatable)",
    )
    parser.add_argument(
        "--revoked",
        action="append",
        default=[],
        type=_fingerprint,
        metavar="FINGERPRINT",
        help="SHA-256 fingerprint (hex) of a revoked certificate (repeatable)",
    )
    parser.add_argument(
        "--no-schema", action="store_true", help="check the signature only, not the XSD"
    )
    parser.add_argument(
        "--at",
        type=_time,
        metavar="TIME",
        help="verify at this ISO 8601 time instead of now (e.g. 2026-03-02T09:30:00Z)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="fast",
        help="verification implementation (default: fast; signxml is the reference)",
    )
    parser.set_defaults(func=_run, parser=parser)
