"""Layer 3: I/O edges — HTTP transports, tokens, retries and the CAS client.

Only this package (and the kernel loaders) may look at ``sys.platform == "emscripten"`` or
import ``js``/``pyodide``; everything above talks to :class:`Transport` and :class:`CasClient`.
"""

from __future__ import annotations

from .cas import CasClient, ShardUploadResult, XorbUploadResult
from .http import HttpClient, default_user_agent, new_session_id, raise_for_status
from .retry import RetryPolicy, parse_retry_after
from .runtime import default_transport
from .token_url import TokenUrlRefresher
from .tokens import TokenInfo, TokenSource, call_refresher, coerce_token_info
from .transport import Response, StreamingResponse, Transport, TransportError

__all__ = [
    "CasClient",
    "HttpClient",
    "Response",
    "RetryPolicy",
    "ShardUploadResult",
    "StreamingResponse",
    "TokenInfo",
    "TokenSource",
    "TokenUrlRefresher",
    "Transport",
    "TransportError",
    "XorbUploadResult",
    "call_refresher",
    "coerce_token_info",
    "default_transport",
    "default_user_agent",
    "new_session_id",
    "parse_retry_after",
    "raise_for_status",
]
