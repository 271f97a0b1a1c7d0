"""Status links: a URL a caller can poll exactly as given, with no header and no function key.

Logic Apps polls a 202's `Location` as it was given (and re-applies only the action's
`authentication` settings, never custom headers such as `x-functions-key`), so the link carries
its own credential: an HMAC-SHA256, keyed by STATUS_LINK_SECRET, over the operation id and the
link's expiry. It reads that one operation until it expires, and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

SIGNATURE_PARAM = "sig"
EXPIRY_PARAM = "exp"


def signature(secret: bytes, operation_id: str, expires: int) -> str:
    """The link's credential: hex HMAC-SHA256 over `operation_id NUL expires`."""
    message = f"{operation_id}\0{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def credential(secret: bytes, operation_id: str, expires: int) -> dict[str, str]:
    """The query parameters of a status link that expires at `expires` (Unix seconds)."""
    return {EXPIRY_PARAM: str(expires), SIGNATURE_PARAM: signature(secret, operation_id, expires)}


def is_valid(secret: bytes, operation_id: str, query: dict[str, str], *, now: datetime) -> bool:
    """Whether `query` holds a credential for `operation_id` that has not expired."""
    given_expiry = query.get(EXPIRY_PARAM, "")
    given_signature = query.get(SIGNATURE_PARAM, "")
    if not (given_expiry.isascii() and given_expiry.isdigit()) or len(given_expiry) > 12:
        return False
    expires = int(given_expiry)
    expected = signature(secret, operation_id, expires)
    matches = hmac.compare_digest(expected.encode(), given_signature.encode())
    return matches and now.timestamp() < expires
