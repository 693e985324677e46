"""Server keys and signed URLs.

One random 32-byte master key lives in the data directory (``server.key``, created once,
atomically). Every purpose gets its own subkey, ``HMAC-SHA256(master, purpose || dev secret)``:
tokens, download URLs, upload-grant URLs, dedup HMAC keys. Consequences worth knowing:

* restarting with the same data dir and dev secret keeps every token and URL valid (the crash
  tests rely on it);
* changing the dev secret revokes everything at once;
* a fresh data dir never accepts a token minted for another one.

Signed URLs carry their own authority (no bearer token, like a presigned S3 URL): the signature
covers the method, the path, the signed byte-range set and the expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from .byteranges import ByteRange, format_ranges, parse_ranges
from .errors import Forbidden

KEY_FILE = "server.key"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a credential from a request with the expected one. Any
    text is accepted: ``hmac.compare_digest`` refuses ``str`` with non-ASCII characters (a
    TypeError, that is a 500), so both sides are compared as UTF-8 bytes."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _load_or_create_master(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    if not path.exists():
        tmp = data_dir / f".{KEY_FILE}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(secrets.token_bytes(32))
            f.flush()
            os.fsync(f.fileno())
        # link() fails if another process won the race; then both use the winner's key.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_bytes()
    if len(key) != 32:
        raise RuntimeError(f"{path} is not a 32-byte key")
    return key


@dataclass(frozen=True)
class ServerKeys:
    token: bytes
    download_url: bytes
    grant_url: bytes
    dedup: bytes

    @classmethod
    def load(cls, data_dir: Path, dev_secret: str) -> ServerKeys:
        master = _load_or_create_master(data_dir)
        secret = dev_secret.encode()

        def sub(purpose: bytes) -> bytes:
            return hmac.new(master, purpose + b"\0" + secret, hashlib.sha256).digest()

        return cls(sub(b"token"), sub(b"download-url"), sub(b"grant-url"), sub(b"dedup"))


def _mac(key: bytes, *parts: str) -> str:
    return b64url(hmac.new(key, "\n".join(parts).encode(), hashlib.sha256).digest())


class UrlSigner:
    """Signs and checks the two kinds of capability URLs this server hands out."""

    def __init__(self, keys: ServerKeys) -> None:
        self._keys = keys

    # ---------------------------------------------------------------- xorb downloads
    @staticmethod
    def xorb_path(xorb_hex: str) -> str:
        return f"/xorb/default/{xorb_hex}"

    def sign_xorb_url(self, base: str, xorb_hex: str, ranges: list[ByteRange], expires: int) -> str:
        path = self.xorb_path(xorb_hex)
        signed = format_ranges(ranges)
        sig = _mac(self._keys.download_url, "GET", path, signed, str(expires))
        query = urlencode({"X-Xet-Signed-Range": signed, "Expires": expires, "Signature": sig})
        return f"{base}{quote(path)}?{query}"

    def verify_xorb_url(self, path: str, params: dict[str, str], now: float) -> list[ByteRange]:
        """Return the signed range set, or raise Forbidden (tampered, incomplete or expired)."""
        try:
            signed, expires, sig = (
                params["X-Xet-Signed-Range"],
                params["Expires"],
                params["Signature"],
            )
            expiry = int(expires)
        except (KeyError, ValueError):
            raise Forbidden("signed URL is incomplete") from None
        expected = _mac(self._keys.download_url, "GET", path, signed, expires)
        if not same_secret(sig, expected):
            raise Forbidden("signed URL signature does not match")
        if expiry < now:
            raise Forbidden("signed URL has expired")
        try:
            return parse_ranges(signed)
        except ValueError:  # pragma: no cover - we signed it ourselves
            raise Forbidden("signed range set is malformed") from None

    # ---------------------------------------------------------------- upload grants
    @staticmethod
    def grant_path(xorb_hex: str, grant_id: str) -> str:
        return f"/upload/xorb/default/{xorb_hex}/{grant_id}"

    def sign_grant_url(self, base: str, xorb_hex: str, grant_id: str, expires: int) -> str:
        path = self.grant_path(xorb_hex, grant_id)
        sig = _mac(self._keys.grant_url, "PUT", path, str(expires))
        return f"{base}{path}?{urlencode({'Expires': expires, 'Signature': sig})}"

    def verify_grant_url(self, path: str, params: dict[str, str], now: float) -> None:
        try:
            expires, sig = params["Expires"], params["Signature"]
            expiry = int(expires)
        except (KeyError, ValueError):
            raise Forbidden("upload URL is incomplete") from None
        if not same_secret(sig, _mac(self._keys.grant_url, "PUT", path, expires)):
            raise Forbidden("upload URL signature does not match")
        if expiry < now:
            raise Forbidden("upload URL has expired")
