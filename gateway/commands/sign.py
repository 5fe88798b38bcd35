"""``imi-gateway sign``: sign an XML document with the protocol's signature profile.

For national-system developers and operators: the same enveloped XML-DSig
(URI="", exclusive C14N, SHA-256, ECDSA-SHA256 or RSA-SHA256 by key type,
certificate in KeyInfo) that :class:`gateway.core.signing.Signer` makes.
See docs/signatures.md.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.core import certs
from gateway.core.signing import ENGINES, Signer
from gateway.core.signing.profile import describe_algorithm

EXIT_STATUSES = """\
exit status:
  0  the document was signed
  1  the document cannot be signed (not well-formed, DOCTYPE, comments,
     already signed, duplicate IDs, no Header/Created with --now...), or the certificate is expired or not
     yet valid (CERTIFICATE_EXPIRED, CERTIFICATE_NOT_YET_VALID; see
     --allow-invalid-certificate): the error code is printed
  2  usage error
  3  the key, certificate, password or document file cannot be read, or the
     key does not belong to the certificate
"""


def read_input(path: str) -> bytes:
    """The bytes of file ``path``, or of standard input for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _run(args: argparse.Namespace) -> int:
    password = None
    if args.password_file is not None:
        password = Path(args.password_file).read_bytes().rstrip(b"\r\n")
    key = certs.load_pem_private_key(Path(args.key).read_bytes(), password)
    certificate = certs.load_pem_certificate(Path(args.cert).read_bytes())
    if not args.allow_invalid_certificate:
        # Every verifier refuses a signature by an expired or not-yet-valid
        # certificate: refuse to make one, unless a test asks for it.
        certs.check_validity(certificate, datetime.now(UTC), "the signing certificate")
    signer = Signer(key, certificate, engine=args.engine)
    if args.now:
        from gateway.client.documents import with_created
        from gateway.core.xmlparse import parse_xml

        signed = signer.sign(with_created(parse_xml(read_input(args.document))))
    else:
        signed = signer.sign_bytes(read_input(args.document))
    if args.output is None or args.output == "-":
        sys.stdout.buffer.write(signed)
        sys.stdout.buffer.flush()
    else:
        Path(args.output).write_bytes(signed)
        identity = certs.authority_id_of(certificate) or certs.node_id_of(certificate) or "-"
        print(
            f"signed {args.document} -> {args.output} "
            f"({describe_algorithm(signer.signature_method)}, signer {identity}, "
            f"certificate sha256 {certs.fingerprint(certificate)})",
            file=sys.stderr,
        )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sign",
        help="sign an XML document (enveloped XML-DSig, the protocol profile)",
        description=(
            "Sign DOCUMENT with an enveloped XML signature in the protocol's profile: "
            'Reference URI="", enveloped-signature and exclusive C14N transforms, SHA-256, '
            "ECDSA-SHA256 for EC keys or RSA-SHA256 for RSA keys, the certificate in "
            "KeyInfo. The signature is appended as the root's last child. The document "
            "is read with the gateway's hardened parser: no DOCTYPE, comments or "
            "processing instructions."
        ),
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("document", metavar="DOCUMENT", help="the XML document ('-': stdin)")
    parser.add_argument("--key", required=True, metavar="KEY.pem", help="PEM private key")
    parser.add_argument(
        "--cert", required=True, metavar="CERT.pem", help="PEM certificate of that key"
    )
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="file holding the password of an encrypted private key",
    )
    parser.add_argument(
        "-o", "--output", metavar="OUT", help="where to write the signed document (default: stdout)"
    )
    parser.add_argument(
        "--now",
        action="store_true",
        help=(
            "set the document's Header/Created to the current time (UTC) before signing: "
            "a node accepts a document only within its replay window (300 s) of its clock"
        ),
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="fast",
        help="signing implementation (default: fast; signxml is the reference)",
    )
    parser.add_argument(
        "--allow-invalid-certificate",
        action="store_true",
        help=(
            "sign even if the certificate is expired or not yet valid (for making test "
            "documents only: every node refuses such a signature)"
        ),
    )
    parser.set_defaults(func=_run)
