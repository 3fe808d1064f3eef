"""How an update travels: codecs that hospitals encode with and the aggregator adds.

``PlainCodec`` sends float32 vectors; ``CKKSCodec`` (TenSEAL) sends CKKS ciphertexts;
``PackedCKKSCodec`` quantises and packs two values per slot. The aggregator's copy
of an encrypted codec holds a key-free context only.
"""

from __future__ import annotations

from typing import Any

from fedray.crypto.ckks import CKKSCodec, EncryptedVector
from fedray.crypto.codec import AwaitingKeys, Codec, PlainCodec
from fedray.crypto.packing import Layout, PackedCKKSCodec, PackedVector

__all__ = [
    "AwaitingKeys", "CKKSCodec", "Codec", "EncryptedVector", "Layout", "PackedCKKSCodec",
    "PackedVector", "PlainCodec", "make_codec", "packing_layout",
]


def packing_layout(encryption: Any, num_hospitals: int) -> Layout:
    """The quantised layout every party of a run shares. The planner resolves a null
    ``packing_range`` from the DP noise (fedray.planning) before any party is built;
    1.0 stands in only where no plan ran (benchmarks)."""
    value_range = encryption.packing_range if encryption.packing_range is not None else 1.0
    return Layout(bits=encryption.quantization_bits, value_range=value_range,
                  max_summands=num_hospitals)


def make_codec(context: tuple[bytes, str] | None, encryption: Any, num_hospitals: int) -> Any:
    """The codec every party of one run uses, from its context (None: plaintext)."""
    if context is None:
        return PlainCodec()
    if getattr(encryption, "threshold", False):  # the joint public key (hospitals) or none
        from fedray.crypto.threshold_codec import IntegerThresholdCodec, ThresholdCodec

        joint, fingerprint = context
        kind = (IntegerThresholdCodec if getattr(encryption, "integer_field_bits", None)
                is not None else ThresholdCodec)
        return kind(encryption.threshold_parameters, fingerprint, joint_public=joint or None)
    if getattr(encryption, "integer_field_bits", None) is not None:  # distributed DP
        from fedray.crypto.lanes import IntegerLanes, IntegerLanesCodec

        return IntegerLanesCodec(*context, lanes=IntegerLanes(encryption.integer_field_bits,
                                                              num_hospitals))
    if encryption.packing == "quantized":
        return PackedCKKSCodec(*context, layout=packing_layout(encryption, num_hospitals))
    return CKKSCodec(*context)
