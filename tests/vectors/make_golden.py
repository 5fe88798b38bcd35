"""Regenerate the golden signed documents in ``tests/vectors/golden/``.

    .venv/bin/python -m tests.vectors.make_golden

Golden vectors pin the canonical form and digests of real signatures made by
our two engines and by xmlsec1, so a change in lxml/libxml2 canonicalization
or in either engine shows up as a failing test. The private keys live only in
memory and in a temporary directory that is deleted at the end (xmlsec1 reads
key files): only the signed documents and the public CA certificate are
written. Every document is verified at :data:`GOLDEN_TIME`, recorded in
``manifest.json`` (the certificates are valid around it, so the vectors never
expire).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lxml import etree

from gateway.core import pki
from gateway.core.certs import dump_pem_certificate, dump_pem_private_key
from gateway.core.signing import Signer
from gateway.core.signing.fast import detach_enveloped
from gateway.core.signing.profile import ECDSA_SHA256, RSA_SHA256
from gateway.core.xmlparse import parse_xml
from tests.vectors.hostile import DOCUMENTS_DIR, VECTORS

GOLDEN_DIR = VECTORS / "golden"
GOLDEN_TIME = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SOURCES = ("request.xml", "namespaces.xml", "unicode.xml")

#: The xmlsec1 template of the profile, appended as the root's last child.
TEMPLATE = """<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
  <ds:SignedInfo>
    <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
    <ds:SignatureMethod Algorithm="{method}"/>
    <ds:Reference URI="">
      <ds:Transforms>
        <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
        <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      </ds:Transforms>
      <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
      <ds:DigestValue/>
    </ds:Reference>
  </ds:SignedInfo>
  <ds:SignatureValue/>
  <ds:KeyInfo>
    <ds:X509Data>
      <ds:X509Certificate/>
    </ds:X509Data>
  </ds:KeyInfo>
</ds:Signature>"""


def with_template(data: bytes, method: str) -> bytes:
    """``data`` with the profile's signature template as the root's last child."""
    closing = data.rstrip().rsplit(b"</", 1)
    return closing[0] + TEMPLATE.format(method=method).encode() + b"\n</" + closing[1] + b"\n"


def xmlsec1_sign(template: bytes, key_pem: Path, cert_pem: Path, workdir: Path) -> bytes:
    source = workdir / "template.xml"
    output = workdir / "signed.xml"
    source.write_bytes(template)
    subprocess.run(
        [
            "xmlsec1",
            "--sign",
            "--privkey-pem",
            f"{key_pem},{cert_pem}",
            "--output",
            str(output),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return output.read_bytes()


def signed_content_sha256(data: bytes) -> str:
    """SHA-256 of the exclusive canonical form of ``data`` without its signature."""
    root = parse_xml(data)
    detach_enveloped(root[-1])
    return hashlib.sha256(etree.tostring(root, method="c14n", exclusive=True)).hexdigest()


def main() -> None:
    made = GOLDEN_TIME - timedelta(days=30)
    ca = pki.make_ca("NO", now=made, days=3650)
    systems = {
        "ec": pki.issue_national_system(ca, "NO-HELSEDIR", now=made, days=3650),
        "rsa": pki.issue_national_system(ca, "NO-HELSEDIR", now=made, days=3650, kind="rsa"),
    }
    GOLDEN_DIR.mkdir(exist_ok=True)
    for old in GOLDEN_DIR.glob("*.xml"):
        old.unlink()
    (GOLDEN_DIR / "ca.pem").write_bytes(dump_pem_certificate(ca.certificate))
    manifest = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for kind, issued in systems.items():
            (workdir / f"{kind}.key").write_bytes(dump_pem_private_key(issued.key))
            (workdir / f"{kind}.crt").write_bytes(dump_pem_certificate(issued.certificate))
        for source in SOURCES:
            data = (DOCUMENTS_DIR / source).read_bytes()
            stem = source.removesuffix(".xml")
            outputs: dict[str, bytes] = {}
            for kind, issued in systems.items():
                for engine in ("fast", "signxml"):
                    signer = Signer(issued.key, issued.certificate, engine=engine)  # type: ignore[arg-type]
                    outputs[f"{engine}-{kind}"] = signer.sign(parse_xml(data))
                method = ECDSA_SHA256 if kind == "ec" else RSA_SHA256
                outputs[f"xmlsec1-{kind}"] = xmlsec1_sign(
                    with_template(data, method),
                    workdir / f"{kind}.key",
                    workdir / f"{kind}.crt",
                    workdir,
                )
            for signer_name, signed in sorted(outputs.items()):
                name = f"{stem}.{signer_name}.xml"
                (GOLDEN_DIR / name).write_bytes(signed)
                manifest.append(
                    {
                        "file": name,
                        "signer": signer_name,
                        "verify_at": GOLDEN_TIME.isoformat(),
                        "authority_id": "NO-HELSEDIR",
                        "signed_content_sha256": signed_content_sha256(signed),
                    }
                )
    (GOLDEN_DIR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(manifest)} golden documents to {GOLDEN_DIR}")


if __name__ == "__main__":
    main()
