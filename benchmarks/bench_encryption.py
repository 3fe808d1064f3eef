"""What secure aggregation costs: CKKS presets, Paillier, and fedray's round time.

    .venv/bin/python benchmarks/bench_encryption.py [--sizes 1000 10000 100000 1000000]
                                                     [--skip-paillier] [--skip-rounds]

1. CKKS (TenSEAL) per preset and vector size: one hospital's encryption, the
   aggregator's sum of 10 ciphertexts (deserialise + add), one decryption, bytes per
   parameter on the wire and the max error of the 10-hospital sum.
2. Paillier (the `phe` package, 2048-bit keys, gmpy2 when installed) at 10^3 values
   measured; larger sizes extrapolated linearly and marked so.
3. Verified decryption (fedray/crypto/release.py), 10 hospitals x 100k parameters:
   each hospital's registration (digest + HMAC), and the decryptor's checks (digests,
   its own sum, the comparison with the aggregator's) beside the decryption itself.
4. fedray's steady round time with encryption=ckks over without: 10 synthetic
   hospitals with a ~100k-parameter MLP, and the 4 heart-disease hospitals.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

import numpy as np

HOSPITALS = 10


def ckks_costs(sizes: list[int]) -> None:
    from fedray.crypto import CKKSCodec, Layout, PackedCKKSCodec
    from fedray.crypto.ckks import PRESETS, new_key_set

    print("CKKS (TenSEAL), 10 hospitals:")
    print(f"{'preset':>10} {'values':>9} {'encrypt s':>10} {'sum10 s':>9} {'decrypt s':>10} "
          f"{'B/param':>8} {'max error':>10}")
    rng = np.random.default_rng(0)
    codecs = {}
    for name, params in PRESETS.items():
        keys = new_key_set(params)
        codecs[name] = (CKKSCodec(keys.secret_context, keys.fingerprint),
                        CKKSCodec(keys.public_context, keys.fingerprint))
    keys = new_key_set(PRESETS["n8192"])
    layout = Layout(bits=15, value_range=1.0, max_summands=HOSPITALS)
    codecs["n8192+q15"] = (PackedCKKSCodec(keys.secret_context, keys.fingerprint, layout=layout),
                           PackedCKKSCodec(keys.public_context, keys.fingerprint, layout=layout))
    for name, (hospital, aggregator) in codecs.items():
        for size in sizes:
            vectors = [rng.normal(0, 0.05, size).astype(np.float32) for _ in range(3)]
            start = time.perf_counter()
            payloads = [hospital.encode(v) for v in vectors]
            encrypt = (time.perf_counter() - start) / len(vectors)
            start = time.perf_counter()
            total = None
            for i in range(HOSPITALS):
                total = aggregator.add(total, payloads[i % 3])
            sealed = aggregator.seal(total)
            summed = time.perf_counter() - start
            start = time.perf_counter()
            decrypted = hospital.decode(sealed)
            decrypt = time.perf_counter() - start
            expected = sum(vectors[i % 3].astype(np.float64) for i in range(HOSPITALS))
            error = float(np.max(np.abs(decrypted - expected)))
            print(f"{name:>10} {size:>9} {encrypt:>10.3f} {summed:>9.3f} {decrypt:>10.3f} "
                  f"{payloads[0].nbytes / size:>8.1f} {error:>10.1e}", flush=True)


def verified_decryption_costs(size: int = 100_000, repeats: int = 5) -> None:
    from fedray.crypto import CKKSCodec, Layout, PackedCKKSCodec
    from fedray.crypto.ckks import PRESETS, new_key_set
    from fedray.crypto.release import VerifiedDecryption, hospital_key, register_update
    from fedray.pipeline import Update

    print(f"\nVerified decryption, {HOSPITALS} hospitals x {size:,} parameters (median of "
          f"{repeats}):")
    print(f"{'codec':>10} {'register/hosp s':>16} {'aggregator sum s':>17} "
          f"{'checks s':>9} {'decrypt s':>10} {'added s':>8}")
    keys = new_key_set(PRESETS["n8192"])
    layout = Layout(bits=15, value_range=1.0, max_summands=HOSPITALS)
    codecs = {
        "n8192": (CKKSCodec(keys.secret_context, keys.fingerprint),
                  CKKSCodec(keys.public_context, keys.fingerprint)),
        "n8192+q15": (PackedCKKSCodec(keys.secret_context, keys.fingerprint, layout=layout),
                      PackedCKKSCodec(keys.public_context, keys.fingerprint, layout=layout)),
    }
    rng = np.random.default_rng(0)
    master = bytes(32)
    for name, (hospital, aggregator) in codecs.items():
        timings: dict[str, list[float]] = {"register": [], "sum": [], "checks": [], "decrypt": []}
        for round_ in range(1, repeats + 1):
            updates = [Update(h, hospital.encode(rng.normal(0, 0.05, size).astype(np.float32)),
                              round_) for h in range(HOSPITALS)]
            decryptor = VerifiedDecryption(codec=hospital, master_key=master,
                                           min_shares=HOSPITALS, rounding_bits=20)
            start = time.perf_counter()
            registrations = [register_update(u, hospital_key(master, u.hospital), bytes(32))
                             for u in updates]
            timings["register"].append((time.perf_counter() - start) / HOSPITALS)
            decryptor.register(registrations)
            start = time.perf_counter()
            total = None
            for u in updates:
                assert aggregator.validate(u.payload, size) is None
                total = aggregator.add(total, u.payload)
            claimed = aggregator.seal(total)
            timings["sum"].append(time.perf_counter() - start)
            start = time.perf_counter()
            hospital.decode(claimed)  # what an unverified decryptor does
            timings["decrypt"].append(time.perf_counter() - start)
            start = time.perf_counter()
            decryptor.decrypt(round_, updates, claimed)
            timings["checks"].append(time.perf_counter() - start - timings["decrypt"][-1])
        m = {k: float(np.median(v)) for k, v in timings.items()}
        print(f"{name:>10} {m['register']:>16.4f} {m['sum']:>17.3f} {m['checks']:>9.3f} "
              f"{m['decrypt']:>10.3f} {m['checks'] + m['register']:>8.3f}", flush=True)


def paillier_costs(sizes: list[int], measured: int = 1000) -> None:
    try:
        import phe
    except ImportError:
        print("Paillier: the optional package `phe` is not installed (pip install phe gmpy2)")
        return
    public, private = phe.generate_paillier_keypair(n_length=2048)
    values = np.random.default_rng(0).normal(0, 0.05, measured)
    start = time.perf_counter()
    encrypted = [public.encrypt(float(v)) for v in values]
    encrypt = time.perf_counter() - start
    start = time.perf_counter()
    total = list(encrypted)
    for _ in range(HOSPITALS - 1):
        total = [a + b for a, b in zip(total, encrypted)]
    summed = time.perf_counter() - start
    start = time.perf_counter()
    decrypted = np.array([private.decrypt(c) for c in total])
    decrypt = time.perf_counter() - start
    nbytes = (encrypted[0].ciphertext().bit_length() + 7) // 8
    error = float(np.max(np.abs(decrypted - HOSPITALS * values)))
    print("\nPaillier (phe, 2048-bit key), 10 hospitals:")
    print(f"{'values':>9} {'encrypt s':>10} {'sum10 s':>9} {'decrypt s':>10} {'B/param':>8} "
          f"{'max error':>10}")
    for size in sizes:
        scale = size / measured
        mark = "" if size == measured else "  (extrapolated)"
        print(f"{size:>9} {encrypt * scale:>10.2f} {summed * scale:>9.2f} "
              f"{decrypt * scale:>10.2f} {nbytes:>8} {error:>10.1e}{mark}", flush=True)


def round_ratio() -> None:
    import ray

    from fedray import DatasetConfig, ModelConfig, PartitionConfig, SimulationConfig, simulate
    from fedray.config import EncryptionConfig

    ENCODINGS = {
        "none": EncryptionConfig(),
        "ckks": EncryptionConfig(name="ckks"),
        "ckks+q15": EncryptionConfig(name="ckks", packing="quantized"),
    }
    cases = {
        "10 synthetic hospitals, MLP 100-1000-2 (103,002 params)": SimulationConfig(
            dataset=DatasetConfig(name="synthetic", num_records=2500, num_features=100,
                                  test_fraction=0.2),
            partition=PartitionConfig(name="iid"), model=ModelConfig(name="mlp", hidden=1000),
            num_clients=10, num_rounds=6, batch_size=32, lr=0.05, eval_every=6,
            progress=False),
        "same, 5 local epochs": SimulationConfig(
            dataset=DatasetConfig(name="synthetic", num_records=2500, num_features=100,
                                  test_fraction=0.2),
            partition=PartitionConfig(name="iid"), model=ModelConfig(name="mlp", hidden=1000),
            num_clients=10, num_rounds=6, local_epochs=5, batch_size=32, lr=0.05,
            eval_every=6, progress=False),
        "4 heart-disease hospitals, logistic regression (14 params)": SimulationConfig(
            num_rounds=10, eval_every=10, progress=False),
    }
    print("\nRound time, encryption=ckks (n8192) over none (median steady round):")
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        for label, config in cases.items():
            seconds = {}
            for name, encryption in ENCODINGS.items():
                result = simulate(dataclasses.replace(config, encryption=encryption))
                rounds = result.metrics.query("split == 'round' and metric == 'seconds'")
                seconds[name] = float(np.median(rounds["value"].iloc[1:]))
                if name != "none":
                    t = result.summary["seconds"]
                    print(f"  {label}, {name}: {seconds['none']:.3f} s -> {seconds[name]:.3f} s "
                          f"per round, ratio {seconds[name] / seconds['none']:.2f}; "
                          f"{result.summary['encryption']['bytes_per_parameter']:.1f} B/param; "
                          f"encrypt {t['encrypt']:.2f} s, aggregate {t['aggregate']:.2f} s, "
                          f"decrypt {t['decrypt']:.2f} s in total", flush=True)
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    parser.add_argument("--skip-paillier", action="store_true")
    parser.add_argument("--skip-rounds", action="store_true")
    parser.add_argument("--only-verified", action="store_true",
                        help="only the verified-decryption costs (part 3)")
    args = parser.parse_args()
    if args.only_verified:
        verified_decryption_costs()
        return
    ckks_costs(args.sizes)
    verified_decryption_costs()
    if not args.skip_paillier:
        paillier_costs([s for s in args.sizes if s >= 1000])
    if not args.skip_rounds:
        round_ratio()


if __name__ == "__main__":
    main()
