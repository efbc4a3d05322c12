"""API keys: bearer tokens that guard the routes which change the artifact, and optionally the reads.

Keys come from a file (``fusionrec serve --api-key-file PATH``), one per line, ``write:KEY`` or ``read:KEY``
(a bare ``KEY`` is a write key; ``#`` starts a comment), and from the environment: ``FUSIONREC_API_KEY`` (a
write key) and ``FUSIONREC_READ_API_KEY`` (a read key). A write key also reads. Mutating routes
(``POST /items``, ``POST /interactions``, ``DELETE /users/{id}``) need a write key whenever any key is
configured; reads need a key only when a read key is configured. ``GET /healthz`` stays open for load
balancers.

Requests send ``Authorization: Bearer KEY``. No key: 401; a key that is not configured: 401; a read key on a
mutating route: 403. Keys are compared in constant time (on their SHA-256 digests, so neither content nor
length leaks through timing) and never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from fusionrec.errors import ConfigError, DataError

ENV_API_KEY = "FUSIONREC_API_KEY"
ENV_READ_API_KEY = "FUSIONREC_READ_API_KEY"
ENV_API_KEY_FILE = "FUSIONREC_API_KEY_FILE"
MIN_KEY_LENGTH = 16
OPEN_PATHS = ("/healthz",)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass
class ApiKeys:
    """Digests of the configured write and read keys."""

    write: list[bytes] = field(default_factory=list)
    read: list[bytes] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.write or self.read)

    @property
    def reads_need_key(self) -> bool:
        return bool(self.read)

    def add(self, key: str, role: str, where: str) -> None:
        key = key.strip()
        if len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
            raise ConfigError(
                f"{where}: an API key must be at least {MIN_KEY_LENGTH} characters without spaces "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        (self.write if role == "write" else self.read).append(_digest(key))

    def role(self, presented: str | None) -> str | None:
        """ "write", "read" or None for a presented key, compared against every configured key."""
        if presented is None:
            return None
        d = _digest(presented)
        is_write = False
        is_read = False
        for k in self.write:  # no early exit: the time taken does not depend on which key matched
            is_write |= hmac.compare_digest(d, k)
        for k in self.read:
            is_read |= hmac.compare_digest(d, k)
        return "write" if is_write else "read" if is_read else None

    @classmethod
    def from_sources(cls, key_file: str | Path | None = None, env: dict[str, str] | None = None) -> ApiKeys:
        """Keys from ``key_file`` plus ``$FUSIONREC_API_KEY`` / ``$FUSIONREC_READ_API_KEY``."""
        from fusionrec.files import read_bytes

        env = dict(os.environ) if env is None else env
        keys = cls()
        key_file = key_file or env.get(ENV_API_KEY_FILE) or None
        if key_file:
            try:
                text = read_bytes(key_file, max_bytes=1 << 20).decode("utf-8")
            except FileNotFoundError:
                raise ConfigError(f"--api-key-file {key_file}: no such file") from None
            except (DataError, UnicodeDecodeError) as e:
                raise ConfigError(f"--api-key-file {key_file}: {e}") from None
            for n, line in enumerate(text.splitlines(), start=1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                role, sep, key = line.partition(":")
                if not sep or role not in ("read", "write"):
                    role, key = "write", line
                keys.add(key, role, f"{key_file} line {n}")
            if not keys.enabled:
                raise ConfigError(f"--api-key-file {key_file}: holds no key (lines of write:KEY or read:KEY)")
        if env.get(ENV_API_KEY):
            keys.add(env[ENV_API_KEY], "write", ENV_API_KEY)
        if env.get(ENV_READ_API_KEY):
            keys.add(env[ENV_READ_API_KEY], "read", ENV_READ_API_KEY)
        return keys


class ApiKeyAuth:
    """ASGI middleware enforcing :class:`ApiKeys` before a request reaches any route."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, is_write: Callable[[str, str], bool]) -> None:
        self.app = app
        self.keys = keys
        self.is_write = is_write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        write = self.is_write(scope["method"], scope["path"])
        if write or self.keys.reads_need_key:
            role = self.keys.role(_bearer(scope))
            if role is None:
                await _deny(send, 401, "a valid API key is required: send `Authorization: Bearer KEY`")
                return
            if write and role != "write":
                await _deny(send, 403, "this API key may only read; changing the catalogue needs a write key")
                return
        await self.app(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


async def _deny(send: Send, status: int, message: str) -> None:
    payload = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="fusionrec"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
