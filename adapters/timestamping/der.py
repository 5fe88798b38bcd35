"""A small DER encoder and reader: just what RFC 3161 requests, responses and tokens need.

Not a general ASN.1 library: definite lengths only (DER has no other), tags
of one byte (every tag RFC 3161 and CMS use), and readers that refuse
anything else with :class:`DERInvalid`. Sans-IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.core.errors import InvalidInput

INTEGER, BIT_STRING, OCTET_STRING, NULL, OID = 0x02, 0x03, 0x04, 0x05, 0x06
BOOLEAN, UTF8_STRING, GENERALIZED_TIME = 0x01, 0x0C, 0x18
SEQUENCE, SET = 0x30, 0x31


def context(n: int, *, constructed: bool = True) -> int:
    """The tag ``[n]`` (constructed for EXPLICIT or IMPLICIT SET/SEQUENCE, else primitive)."""
    return (0xA0 if constructed else 0x80) | n


class DERInvalid(InvalidInput):
    """A time-stamp request, response or token is not the DER structure it must be."""

    code = "TIMESTAMP_DER_INVALID"


# --- encoding -----------------------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def seq(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes) -> bytes:
    """A SET OF, its elements sorted as DER requires."""
    return tlv(SET, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    length = max(1, (value.bit_length() + 8) // 8)  # room for the sign bit
    return tlv(INTEGER, value.to_bytes(length, "big", signed=True))


def octets(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def null() -> bytes:
    return tlv(NULL, b"")


def boolean(value: bool) -> bytes:
    return tlv(BOOLEAN, b"\xff" if value else b"\x00")


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(OID, bytes(body))


def generalized_time(moment: datetime) -> bytes:
    text = moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    if moment.microsecond:
        text += "." + f"{moment.astimezone(UTC).microsecond:06d}".rstrip("0")
    return tlv(GENERALIZED_TIME, (text + "Z").encode("ascii"))


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One DER element: its tag, its content and its whole encoding (tag and length too)."""

    tag: int
    content: bytes
    raw: bytes

    def children(self) -> list[Node]:
        """The elements inside a constructed element, in order."""
        if not self.tag & 0x20:
            raise DERInvalid("a primitive element has no elements inside")
        out: list[Node] = []
        pos = 0
        while pos < len(self.content):
            node, pos = _read(self.content, pos)
            out.append(node)
        return out

    def expect(self, tag: int, what: str) -> Node:
        if self.tag != tag:
            raise DERInvalid(f"{what}: unexpected tag 0x{self.tag:02x}")
        return self

    def as_int(self) -> int:
        self.expect(INTEGER, "INTEGER")
        if not self.content:
            raise DERInvalid("INTEGER: empty")
        return int.from_bytes(self.content, "big", signed=True)

    def as_oid(self) -> str:
        self.expect(OID, "OBJECT IDENTIFIER")
        if not self.content or self.content[-1] & 0x80:
            raise DERInvalid("OBJECT IDENTIFIER: truncated")
        first = self.content[0]
        arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
        value = 0
        for byte in self.content[1:]:
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        return ".".join(str(a) for a in arcs)

    def as_time(self) -> datetime:
        self.expect(GENERALIZED_TIME, "GeneralizedTime")
        text = self.content.decode("ascii", "replace")
        if not text.endswith("Z"):
            raise DERInvalid("GeneralizedTime: not in UTC")
        body = text[:-1]
        fraction = ""
        if "." in body:
            body, fraction = body.split(".", 1)
        try:
            moment = datetime.strptime(body, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            micro = int((fraction + "000000")[:6]) if fraction else 0
        except ValueError:
            raise DERInvalid("GeneralizedTime: malformed") from None
        return moment.replace(microsecond=micro)


def _read(data: bytes, pos: int) -> tuple[Node, int]:
    if pos + 2 > len(data):
        raise DERInvalid("truncated element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DERInvalid("multi-byte tags are not used here")
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise DERInvalid("a length that DER does not allow")
        length = int.from_bytes(data[start : start + count], "big")
        if length < 0x80 or data[start] == 0:
            raise DERInvalid("a length that is not minimal")
        start += count
    end = start + length
    if end > len(data):
        raise DERInvalid("truncated element")
    return Node(tag, data[start:end], data[pos:end]), end


def parse(data: bytes) -> Node:
    """The one element ``data`` holds (nothing may follow it)."""
    node, end = _read(data, 0)
    if end != len(data):
        raise DERInvalid("bytes after the element")
    return node
