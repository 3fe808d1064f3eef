"""What threshold decryption costs beside fedray's single-key CKKS path.

    .venv/bin/python benchmarks/bench_threshold.py [--values 100000] [--hospitals 10]

Threshold (fedray/crypto/threshold.py, preset n8192: N=8192, (60, 60, 60 | 38), Δ=2^100,
3 key holders, 2^40 smudging): key generation (every holder's share and the joint key),
one hospital's encryption, the aggregator's sum, one holder's partial decryption, the
combination; single key (fedray/crypto/ckks.py, preset n8192: N=8192, (60 | 40), Δ=2^40,
TenSEAL ckks_vector): key set, encryption, sum, decryption. Times are one process, one
thread; bytes are what crosses between parties.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def threshold_costs(values: int, hospitals: int) -> dict[str, float]:
    from fedray.crypto import threshold as th

    params = th.PRESETS["n8192"]
    seed = np.random.default_rng().bytes(32)
    rng = np.random.default_rng(0)
    vectors = [rng.normal(0, 0.01, values) for _ in range(hospitals)]
    th._seal(params)  # SEAL context: built once per process, not a protocol step

    def keygen() -> tuple[list[th.SecretShare], list[bytes], bytes]:
        keys = [th.holder_keygen(params, common_seed=seed, holder_index=i)
                for i in range(params.key_holders)]
        shares, publics = [s for s, _ in keys], [p for _, p in keys]
        return shares, publics, th.joint_public_key(params, publics, common_seed=seed)

    (shares, publics, joint), t_keys = _timed(keygen)
    encrypted, t_enc = [], 0.0
    for v in vectors:
        ct, t = _timed(lambda v=v: th.encrypt(params, joint, v))
        encrypted.append(ct)
        t_enc += t
    total, t_sum = _timed(lambda: th.add(params, encrypted))
    partials, t_partial = [], 0.0
    for share in shares:
        p, t = _timed(lambda share=share: th.partial_decrypt(params, share, total,
                                                             np.random.default_rng()))
        partials.append(p)
        t_partial += t
    decrypted, t_combine = _timed(lambda: th.combine(params, total, partials, size=values))
    error = np.abs(decrypted - np.sum(vectors, axis=0)).max()
    return dict(keys=t_keys, encrypt=t_enc / hospitals, sum=t_sum,
                partial=t_partial / len(shares), combine=t_combine,
                ct_bytes=sum(map(len, encrypted[0])) / values,
                partial_bytes=len(partials[0]) / values,
                public_share=len(publics[0]), joint_key=len(joint),
                secret_share=len(shares[0].secret_key), error=error)


def single_key_costs(values: int, hospitals: int) -> dict[str, float]:
    from fedray.crypto import CKKSCodec
    from fedray.crypto.ckks import PRESETS, new_key_set

    rng = np.random.default_rng(0)
    vectors = [rng.normal(0, 0.01, values) for _ in range(hospitals)]
    keys, t_keys = _timed(lambda: new_key_set(PRESETS["n8192"]))
    hospital = CKKSCodec(keys.secret_context, keys.fingerprint)
    aggregator = CKKSCodec(keys.public_context, keys.fingerprint)
    encrypted, t_enc = [], 0.0
    for v in vectors:
        payload, t = _timed(lambda v=v: hospital.encode(v))
        encrypted.append(payload)
        t_enc += t

    def summed() -> Any:
        total = None
        for payload in encrypted:
            total = aggregator.add(total, payload)
        return aggregator.seal(total)

    total, t_sum = _timed(summed)
    decrypted, t_dec = _timed(lambda: hospital.decode(total)[:values])
    error = np.abs(decrypted - np.sum(vectors, axis=0)).max()
    return dict(keys=t_keys, encrypt=t_enc / hospitals, sum=t_sum, partial=float("nan"),
                combine=t_dec, ct_bytes=encrypted[0].nbytes / values,
                partial_bytes=float("nan"), error=error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--hospitals", type=int, default=10)
    args = parser.parse_args()
    rows = {"threshold k=3": threshold_costs(args.values, args.hospitals),
            "single key": single_key_costs(args.values, args.hospitals)}
    print(f"{args.values} values per hospital, {args.hospitals} hospitals, N=8192 (seconds; "
          f"'decrypt' is combine for threshold)")
    print(f"{'path':>14} {'keygen':>8} {'encrypt/h':>10} {'sum':>7} {'partial/holder':>15} "
          f"{'decrypt':>8} {'ct B/param':>11} {'partial B/param':>16} {'max error':>10}")
    for name, r in rows.items():
        print(f"{name:>14} {r['keys']:8.3f} {r['encrypt']:10.3f} {r['sum']:7.3f} "
              f"{r['partial']:15.3f} {r['combine']:8.3f} {r['ct_bytes']:11.1f} "
              f"{r['partial_bytes']:16.1f} {r['error']:10.1e}")
    t = rows["threshold k=3"]
    print(f"threshold keys: public share {t['public_share']} B, joint public key "
          f"{t['joint_key']} B, secret share (SEAL, zstd) {t['secret_share']} B")


if __name__ == "__main__":
    main()
