"""Kubeconfigs encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256), keys from MESHVIZ_ENCRYPTION_KEY.

`MESHVIZ_ENCRYPTION_KEY` holds one or more comma-separated Fernet keys (`Fernet.generate_key()`): the first
encrypts, every one decrypts (MultiFernet), so a key is rotated by putting the new key first, running
`manage.py rotate_cluster_keys`, then dropping the old key.

Without the variable:

* with DEBUG on (the embedded default), a key is derived from SECRET_KEY and a warning is logged once;
* with DEBUG off, nothing is encrypted or decrypted: `EncryptionKeyMissing` says what to set. Cluster
  connections cannot be stored and collections cannot start until the key is there.

Neither plaintext nor key is ever logged.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

_warned = False
_lock = threading.Lock()

GENERATE_HINT = (
    "generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


class EncryptionKeyMissing(ImproperlyConfigured):
    """DEBUG is off and MESHVIZ_ENCRYPTION_KEY is unset: kubeconfigs cannot be stored or used."""


class EncryptionKeyInvalid(ImproperlyConfigured):
    """MESHVIZ_ENCRYPTION_KEY holds something that is not a Fernet key."""


class DecryptionFailed(ValueError):
    """A stored kubeconfig that none of the configured keys decrypts (a key was dropped too early)."""


def derived_key(secret_key: str) -> bytes:
    """The development key: SHA-256 of SECRET_KEY with a purpose prefix, as a Fernet key."""
    digest = hashlib.sha256(b"meshviz.clusters.kubeconfig:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _warn_once() -> None:
    global _warned
    with _lock:
        if _warned:
            return
        _warned = True
    logger.warning(
        "MESHVIZ_ENCRYPTION_KEY is not set: kubeconfigs are encrypted with a key derived from SECRET_KEY "
        "(acceptable for local development only; set MESHVIZ_ENCRYPTION_KEY in any deployment - %s)",
        GENERATE_HINT,
    )


def configured_keys() -> list[bytes]:
    """The Fernet keys in force, newest first; raises EncryptionKeyMissing / EncryptionKeyInvalid."""
    raw = str(getattr(settings, "MESHVIZ_ENCRYPTION_KEY", "") or "")
    keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
    if not keys:
        if not settings.DEBUG:
            raise EncryptionKeyMissing(
                "MESHVIZ_ENCRYPTION_KEY must be set when DEBUG is false: cluster kubeconfigs are stored encrypted "
                f"with it and live collection is refused without it ({GENERATE_HINT})"
            )
        _warn_once()
        return [derived_key(settings.SECRET_KEY)]
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except ValueError as exc:
            # never echo the value: it is (meant to be) a secret
            raise EncryptionKeyInvalid(
                f"MESHVIZ_ENCRYPTION_KEY: key {number} of {len(keys)} is not a Fernet key "
                f"(32 url-safe base64-encoded bytes; {GENERATE_HINT})"
            ) from exc
    return keys


def require_key() -> None:
    """Raise EncryptionKeyMissing / EncryptionKeyInvalid unless kubeconfigs can be encrypted."""
    configured_keys()


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k) for k in configured_keys()])


def encrypt(plaintext: str) -> str:
    """The Fernet token (ASCII) for `plaintext`, with the newest key."""
    return _fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise DecryptionFailed(
            "the stored kubeconfig cannot be decrypted with MESHVIZ_ENCRYPTION_KEY (was the key that encrypted it "
            "removed?); upload the kubeconfig again"
        ) from exc


def rotate(token: str) -> str:
    """`token` re-encrypted with the newest key (MultiFernet.rotate)."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise DecryptionFailed("a stored kubeconfig cannot be decrypted with any configured key") from exc
