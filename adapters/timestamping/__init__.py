"""RFC 3161 time-stamps of audit checkpoints (optional; ``[audit] tsa_url``).

* :mod:`.der`: a small DER encoder and reader (only what RFC 3161 needs);
* :mod:`.rfc3161`: ``TimeStampReq``, ``TimeStampResp`` and token
  verification (sans-IO);
* :mod:`.client`: :class:`TSAClient`, which posts a request over the node's
  hardened outbound HTTP path.

A TSA that is down never blocks the node: the checkpoint service keeps the
checkpoint untimestamped and asks again later. Import as
``gateway.adapters.timestamping``. See docs/audit.md.
"""

from .client import TimestampUnavailable, TSAClient, check_tsa_url
from .rfc3161 import TimestampInfo, TimestampInvalid, TimestampRefused, verify_token

__all__ = [
    "TSAClient",
    "TimestampInfo",
    "TimestampInvalid",
    "TimestampRefused",
    "TimestampUnavailable",
    "check_tsa_url",
    "verify_token",
]
