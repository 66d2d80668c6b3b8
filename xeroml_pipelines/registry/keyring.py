"""Customer credentials at rest: Fernet tokens (AES-128-CBC with HMAC-SHA256) under keys from the
environment. `XEROML_REGISTRY_KEYS` lists keys, newest first: new secrets are encrypted with the
first, every listed key decrypts, and `xeroml destinations rotate-key` re-encrypts what an older
key wrote, after which that key can be dropped from the list."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from xeroml_pipelines.errors import ConfigError

KEYS_ENV = "XEROML_REGISTRY_KEYS"


def new_key() -> str:
    return Fernet.generate_key().decode()


class Keyring:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ConfigError(
                f"{KEYS_ENV} is not set: stored credentials need a key (make one with `xeroml destinations new-key`)"
            )
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError:
            raise ConfigError(f"{KEYS_ENV} holds a malformed key: each is 32 url-safe base64-encoded bytes") from None

    @classmethod
    def from_env(cls) -> Keyring:
        return cls([k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()])

    def seal(self, secrets: Mapping[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(dict(secrets), sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, str]:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ConfigError(
                f"stored credentials do not open with any key in {KEYS_ENV} (was a key dropped too early?)"
            ) from None

    def rotate(self, token: str) -> str:
        """The same secrets under the newest key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(f"stored credentials do not open with any key in {KEYS_ENV}") from None
