"""One place that keeps secrets out of every text the agent stores or prints.

Every configured secret resolved in this process is replaced by ``***``, and so are the
parts of URLs and headers that carry credentials wherever they come from (a server that
echoes a token in its reason phrase, a URL with ``user:pass@`` or ``?token=``). Log
records (tracebacks included), journal error rows, and hence status, scan summaries and
metrics, all pass through :func:`redact`.
"""

from __future__ import annotations

import re

from agent.secrets import credentials

MASK = "***"
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:access_token|token|key|secret|password|passwd|pwd|sig|signature|x-amz-signature"
    r"|x-amz-credential|x-amz-security-token|api_key|apikey)=)[^&\s#'\"]+"
)
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{6,}")


def redact(text: str) -> str:
    """*text* with every resolved secret and every credential-shaped URL or header part masked."""
    if not text:
        return text
    for secret in sorted(credentials.resolved_secrets(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(rf"\1{MASK}@", text)
    text = _QUERY_SECRET.sub(rf"\1{MASK}", text)
    return _AUTH_HEADER.sub(rf"\1 {MASK}", text)
