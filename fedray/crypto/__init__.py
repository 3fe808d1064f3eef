"""How an update travels: encoders that hospitals use and the aggregator adds.

Only the plaintext codec exists today; CKKS (TenSEAL) plugs in behind the same
interface, with the aggregator holding a public-only context.
"""

from fedray.crypto.codec import Codec, PlainCodec

__all__ = ["Codec", "PlainCodec"]
