"""Encryption at rest with keys derived from ``settings.secret_key``.

Each purpose gets its own key (HKDF with the purpose as context), so a key used to
encrypt second-factor secrets can never decrypt anything else.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class DecryptionError(ValueError):
    """The ciphertext was not made with this deployment's key for this purpose."""


def derive_key(secret_key: str, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"bhp-ctms",
        info=purpose.encode("utf-8"),
    ).derive(secret_key.encode("utf-8"))


def _fernet(secret_key: str, purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret_key, purpose)))


def encrypt(secret_key: str, purpose: str, plaintext: str) -> str:
    return _fernet(secret_key, purpose).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(secret_key: str, purpose: str, ciphertext: str) -> str:
    try:
        return _fernet(secret_key, purpose).decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except InvalidToken as error:
        raise DecryptionError(f"cannot decrypt {purpose} data with this secret key") from error
