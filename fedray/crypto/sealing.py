"""Sealed delivery of secret material between actors (docs/encryption.md, "Key custody").

Ray moves a call's arguments through its object store, and a large argument sits in
shared memory that every worker process on the node maps: a secret key passed as a
plain argument can be read by any process there, the aggregator's included. So the
key authority never passes secret material in the clear: it encrypts it to the
recipient with an authenticated box, X25519 Diffie-Hellman between its own static key
and the recipient's, HKDF-SHA256, and ChaCha20-Poly1305 (all from ``cryptography``).
Only the recipient can open a box, and only the authority can make one the recipient
accepts (a box sealed with any other key fails to open), so a process that can read
or write the object store learns nothing and cannot plant keys of its own. The
``purpose`` string is bound into the key derivation and the AEAD, so a box made for
one purpose (a hospital worker's keys of run 3) never opens as another.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class SealingError(PermissionError):
    """A box did not open: not made for this recipient, by this sender, for this purpose."""


class SealingKey:
    """One party's X25519 key pair; the private half never leaves the object."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def seal(self, recipient: bytes, plaintext: bytes, *, purpose: str) -> bytes:
        """``plaintext`` for ``recipient``'s eyes only, authenticated as from this key."""
        nonce = os.urandom(NONCE_BYTES)
        aead = ChaCha20Poly1305(self._shared(recipient, sender=self.public,
                                             receiver=recipient, purpose=purpose))
        return nonce + aead.encrypt(nonce, plaintext, purpose.encode())

    def open(self, sender: bytes, box: bytes, *, purpose: str) -> bytes:
        """The plaintext of a box ``sender`` sealed to this key for ``purpose``."""
        if type(box) is not bytes or len(box) <= NONCE_BYTES:
            raise SealingError("not a sealed box")
        aead = ChaCha20Poly1305(self._shared(sender, sender=sender, receiver=self.public,
                                             purpose=purpose))
        try:
            return aead.decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], purpose.encode())
        except InvalidTag:
            raise SealingError(f"a box for {purpose!r} that this key's sender did not seal "
                               "to it") from None

    def _shared(self, other: bytes, *, sender: bytes, receiver: bytes, purpose: str) -> bytes:
        secret = self._private.exchange(X25519PublicKey.from_public_bytes(other))
        info = b"fedray-sealed|" + purpose.encode() + b"|" + sender + b"|" + receiver
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
