"""How an update travels: codecs that hospitals encode with and the aggregator adds.

``PlainCodec`` sends float32 vectors; ``CKKSCodec`` (TenSEAL) sends CKKS ciphertexts,
and the aggregator's copy of it holds a public context only.
"""

from fedray.crypto.ckks import CKKSCodec, EncryptedVector
from fedray.crypto.codec import Codec, PlainCodec

__all__ = ["CKKSCodec", "Codec", "EncryptedVector", "PlainCodec"]
