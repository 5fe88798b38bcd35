"""SHA-256 hex digests go through one helper, ``gateway.core.docxml.sha256_hex``.

Only the helper itself and the certificate fingerprint (hex of the DER
encoding, a naming rule of its own) call ``hashlib.sha256(...).hexdigest()``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {"gateway/core/docxml.py", "gateway/core/certs.py"}


def hex_digests(path: Path) -> list[int]:
    """Lines of ``hashlib.sha256(...).hexdigest()`` calls in ``path``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "hexdigest"
            and isinstance(node.func.value, ast.Call)
            and ast.unparse(node.func.value.func) in ("hashlib.sha256", "sha256")
        ):
            lines.append(node.lineno)
    return lines


def test_sha256_hex_digests_use_the_one_helper() -> None:
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for folder in ("gateway", "adapters")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in ALLOWED
        for line in hex_digests(path)
    }
    assert found == set(), "use gateway.core.docxml.sha256_hex"
