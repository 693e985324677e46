"""A token refresher that GETs a Hub-style token endpoint.

The endpoint answers ``{"accessToken": str, "exp": unix_seconds, "casUrl": str}`` (the Hub's
``/api/{repo_type}s/{repo}/xet-{read|write}-token/{rev}``, or the local CAS server's token
route). This is what hf_xet's ``token_refresh_url`` does; the CLI uses it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ..errors import XetAuthError, XetResponseError
from .http import HttpClient
from .retry import RetryPolicy
from .tokens import TokenInfo, coerce_token_info
from .transport import Transport


class TokenUrlRefresher:
    """Awaitable callable: ``await refresher()`` → :class:`~xet_pyodide.io.tokens.TokenInfo`."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        transport: Transport | None = None,
        retry: RetryPolicy | None = None,
        session_id: str | None = None,
    ) -> None:
        if transport is None:
            from .runtime import default_transport

            transport = default_transport()
        self.url = url
        self._http = HttpClient(
            transport, None, retry=retry, session_id=session_id, custom_headers=headers
        )

    async def __call__(self) -> TokenInfo:
        resp = await self._http.send("GET", self.url, what="token refresh", auth=False)
        if resp.status in (401, 403):
            raise XetAuthError(
                "the token endpoint refused our credentials", status=resp.status, url=self.url
            )
        if resp.status != 200:
            raise XetAuthError(
                "the token endpoint did not issue a token",
                status=resp.status,
                request_id=resp.request_id,
                url=self.url,
            )
        try:
            data = json.loads(resp.body)
        except ValueError:
            raise XetResponseError(
                "the token endpoint did not answer JSON", status=resp.status, url=self.url
            ) from None
        return coerce_token_info(data)

    async def aclose(self) -> None:
        await self._http.aclose()


__all__ = ["TokenUrlRefresher"]
