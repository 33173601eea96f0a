"""Secrets at rest (carrier credentials, SSO client secrets): Fernet, keyed from SECRET_KEY and
a purpose, so a value encrypted for one purpose cannot be decrypted as another."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken


def _fernet(secret: bytes, purpose: str) -> Fernet:
    key = hashlib.sha256(purpose.encode() + b":" + secret).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret: bytes, purpose: str, plaintext: str) -> str:
    return _fernet(secret, purpose).encrypt(plaintext.encode()).decode()


@lru_cache(maxsize=1024)
def decrypt(secret: bytes, purpose: str, token: str) -> str:
    """Kept for the next time (every carrier webhook reads its account's credentials): the
    process holds SECRET_KEY, so a plaintext kept in memory reveals nothing more."""
    try:
        return _fernet(secret, purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(f"cannot decrypt the stored {purpose}: was SECRET_KEY changed?") from None
