"""The distributed Skellam mechanism (Agarwal, Kairouz and Liu, NeurIPS 2021, "The
Skellam mechanism for differentially private federated learning"): distributed DP on
integers, summed exactly.

Each hospital rotates its clipped (and weighted) update with a random Hadamard
rotation (public, the run's), scales it by γ, rounds it stochastically to integers
(conditionally: redrawn until the rounded vector's L2 norm is within a bound, so its
sensitivity is bounded), adds its share of Skellam noise (Poisson(v/2) − Poisson(v/2)
per coordinate, integer-valued) and reduces it modulo 2^B. The encrypted sum is reduced
modulo 2^B too, so what is released is exactly (Σ hospitals' integers) mod 2^B, a
function of the integer sum, and the integer sum is the Skellam mechanism's output:
sums of independent Skellam shares are Skellam. The server re-centres, divides by γ
and rotates back.

Why Skellam and not the distributed discrete Gaussian: its RDP is in closed form
(Agarwal et al., Theorem 3.5) and holds for the sum of any number of shares (a sum of
discrete Gaussians is not a discrete Gaussian, so DDGauss's bound carries an extra τ
term), and its noise is two Poisson draws: numpy's seeded generator's, or (with
``privacy.secure_rng``) Hörmann's PTRS on the ChaCha20 stream (fedray/privacy/csprng.py).

Privacy: the neighbouring relation is distributed DP's zero-out (one hospital's
content replaced by zero); in the scaled domain its rounded vector has L2 norm ≤ Δ₂
and L1 norm ≤ Δ₁ (``norm_bounds``). Per round the sum of at least m − t shares
(m released shares less t colluders) has variance ≥ the planned ``variance``;
``skellam_rdp`` bounds the round's Rényi DP, ``poisson_subsampled_rdp`` amplifies it
by the hospitals' own coins (Zhu and Wang, ICML 2019, "Poisson subsampled Rényi
differential privacy": their general upper bound), rounds compose by adding RDP, and
``rdp_to_epsilon`` converts as dp-accounting does. Pure numpy and scipy.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erfcinv, gammaln, logsumexp

BETA = math.exp(-0.5)  # conditional rounding's failure probability (TFF's recommended)
WRAP_PROBABILITY = 1e-4  # per coordinate of the sum: the modular range's k std
K_STDDEVS = math.sqrt(2.0) * float(erfcinv(WRAP_PROBABILITY))  # ≈ 3.89
MAX_ROUNDING_TRIES = 1000
# integer Rényi orders (the subsampling bound needs integers, and every order below each)
ORDERS = (*range(2, 65), 80, 96, 128, 192, 256)
MIN_BITS, MAX_BITS = 2, 22  # a lane of B + log2(n) bits must fit a CKKS slot's 39


def padded_length(size: int) -> int:
    """The Hadamard rotation's length: the next power of two."""
    return 1 << max(0, math.ceil(math.log2(max(size, 1))))


def _walsh_hadamard(matrix: np.ndarray) -> np.ndarray:
    """The unnormalised fast Walsh–Hadamard transform of each row (length 2^k)."""
    rows, length = matrix.shape
    out = matrix.astype(np.float64, copy=True)
    half = 1
    while half < length:
        blocks = out.reshape(rows, -1, 2, half)
        top, bottom = blocks[:, :, 0, :].copy(), blocks[:, :, 1, :]
        blocks[:, :, 0, :] = top + bottom
        blocks[:, :, 1, :] = top - bottom
        half *= 2
    return out


def _signs(length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, ROTATION_STREAM]))
    return rng.choice(np.array([-1.0, 1.0]), size=length)


ROTATION_STREAM = 0x4AD  # "Hadamard": the run's public rotation signs


def rotate(vector: np.ndarray, seed: int) -> np.ndarray:
    """H·S·x/√D: pads to D = 2^k, flips signs (a public seeded Rademacher diagonal S),
    then the normalised Hadamard transform. Orthonormal: norms are kept; it spreads a
    vector's mass over every coordinate, so no coordinate wraps for being large."""
    length = padded_length(len(vector))
    padded = np.zeros(length)
    padded[: len(vector)] = vector
    return _walsh_hadamard((padded * _signs(length, seed))[None])[0] / math.sqrt(length)


def unrotate(rotated: np.ndarray, seed: int, size: int) -> np.ndarray:
    """The inverse of :func:`rotate` (H is symmetric and H·H = D·I), cut to ``size``."""
    length = len(rotated)
    back = _walsh_hadamard(np.asarray(rotated, dtype=np.float64)[None])[0] / math.sqrt(length)
    return (back * _signs(length, seed))[:size]


def norm_bounds(scaled_clip: float, length: int, beta: float = BETA) -> tuple[float, int]:
    """(Δ₂, Δ₁): the L2 and L1 norms a conditionally rounded vector can have, when its
    unrounded L2 norm is at most ``scaled_clip`` (γ·C) in ``length`` coordinates.
    Stochastic rounding moves each coordinate by less than 1, so ‖r‖₂ ≤ γC + √D always;
    conditioned on ‖r‖₂² ≤ γ²C² + D/4 + √(2 ln 1/β)(γC + √D/2) (which holds with
    probability ≥ 1 − β, Kairouz et al. 2021, Theorem 1), the smaller applies. An integer
    vector's L1 norm is at most min(√D·L2, L2²)."""
    plain = scaled_clip + math.sqrt(length)
    conditioned = math.sqrt(scaled_clip ** 2 + length / 4.0 + math.sqrt(2.0 * math.log(
        1.0 / beta)) * (scaled_clip + math.sqrt(length) / 2.0)) if beta > 0 else plain
    l2 = min(plain, conditioned)
    return l2, math.ceil(l2 * min(math.sqrt(length), l2))


def conditional_round(scaled: np.ndarray, bound: float, rng: np.random.Generator
                      ) -> np.ndarray:
    """Unbiased stochastic rounding to integers, redrawn until the L2 norm is at most
    ``bound`` (``norm_bounds``' Δ₂). Raises after ``MAX_ROUNDING_TRIES`` (probability
    β^1000: never, unless the input was not clipped)."""
    floor = np.floor(scaled)
    fraction = scaled - floor
    for _ in range(MAX_ROUNDING_TRIES):
        rounded = floor + (rng.random(len(scaled)) < fraction)
        if float(np.linalg.norm(rounded)) <= bound:
            return rounded.astype(np.int64)
    raise RuntimeError(f"no rounding within the norm bound {bound:.6g} in "
                       f"{MAX_ROUNDING_TRIES} tries: was the update clipped?")


def skellam_noise(length: int, variance: float, rng: np.random.Generator) -> np.ndarray:
    """Integer noise of the given variance per coordinate: Poisson(v/2) − Poisson(v/2)."""
    if variance == 0:
        return np.zeros(length, dtype=np.int64)
    lam = variance / 2.0
    return (rng.poisson(lam, length) - rng.poisson(lam, length)).astype(np.int64)


def wrap(values: np.ndarray, bits: int) -> np.ndarray:
    """Reduces integers into the field [0, 2^B)."""
    return np.mod(np.asarray(values, dtype=np.int64), 1 << bits)


def centre(values: np.ndarray, bits: int) -> np.ndarray:
    """The field's representatives in [−2^(B−1), 2^(B−1))."""
    field = 1 << bits
    reduced = np.mod(np.asarray(values, dtype=np.int64), field)
    return np.where(reduced >= field // 2, reduced - field, reduced)


def skellam_rdp(alpha: float, *, variance: float, l2: float, l1: float) -> float:
    """Rényi DP of order α of adding Skellam noise of total ``variance`` per coordinate
    to an integer vector of sensitivity ``l2``, ``l1`` (Agarwal et al. 2021, Theorem
    3.5): αΔ₂²/(2v) + min(((2α − 1)Δ₂² + 6Δ₁)/(4v²), 3Δ₁/(2v)). The first term is the
    Gaussian mechanism's; the rest is the price of discreteness, vanishing as v grows."""
    gaussian = alpha * l2 ** 2 / (2.0 * variance)
    return gaussian + min(((2 * alpha - 1) * l2 ** 2 + 6 * l1) / (4 * variance ** 2),
                          3 * l1 / (2 * variance))


def _log_binomial(n: int, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def poisson_subsampled_rdp(alpha: int, q: float, rdp_of: dict[int, float]) -> float:
    """RDP of order α (an integer ≥ 2) of a mechanism run on a Poisson sample of rate q,
    from the unsampled mechanism's RDP at orders 2..α (``rdp_of``), by Zhu and Wang's
    general upper bound for Poisson subsampling (ICML 2019):
    (1/(α−1))·log[(1−q)^(α−1)(1 + (α−1)q) + C(α,2)q²(1−q)^(α−2)e^{ε(2)}
    + 3·Σ_{j=3..α} C(α,j)q^j(1−q)^(α−j)e^{(j−1)ε(j)}], never more than the unsampled
    ε(α). q = 1: the unsampled RDP."""
    if q >= 1.0:
        return rdp_of[alpha]
    if q <= 0.0:
        return 0.0
    log_q, log_1q = math.log(q), math.log1p(-q)
    terms = [(alpha - 1) * log_1q + math.log1p((alpha - 1) * q),
             float(_log_binomial(alpha, np.array(2))) + 2 * log_q + (alpha - 2) * log_1q
             + rdp_of[2]]
    if alpha >= 3:
        j = np.arange(3, alpha + 1)
        terms.extend((math.log(3.0) + _log_binomial(alpha, j) + j * log_q
                      + (alpha - j) * log_1q
                      + (j - 1) * np.array([rdp_of[int(i)] for i in j])).tolist())
    return min(float(logsumexp(terms)) / (alpha - 1), rdp_of[alpha])


def rdp_to_epsilon(orders: tuple[int, ...], rdp: np.ndarray, delta: float) -> float:
    """(ε, δ) from RDP at several orders, the conversion dp-accounting uses (Canonne,
    Kamath and Steinke 2020, Proposition 12 / Asoodeh et al. 2021):
    ε = min over α of RDP(α) + log((α−1)/α) − (log δ + log α)/(α − 1), at least 0."""
    alphas = np.asarray(orders, dtype=np.float64)
    eps = (np.asarray(rdp) + np.log1p(-1.0 / alphas)
           - (math.log(delta) + np.log(alphas)) / (alphas - 1))
    return max(0.0, float(np.min(eps)))


@dataclass(frozen=True)
class SkellamPlan:
    """One run's Skellam mechanism, decided before Ray starts: the field (``bits``), the
    scale γ, the padded length D, the bounds Δ₂/Δ₁, the total noise ``variance`` of a
    released sum (in scaled integer units) and each hospital's share of it."""

    bits: int
    scale: float
    length: int
    l2: float
    l1: int
    variance: float
    share_variance: float
    seed: int  # the public rotation's
    # True: each hospital reduces its integers into the field (one key's lanes); False:
    # they travel whole (threshold CKKS, one a slot), so the combined sum is exactly S
    reduces: bool = True

    def round_rdp(self, alpha: int) -> float:
        return skellam_rdp(alpha, variance=self.variance, l2=self.l2, l1=self.l1)

    def epsilon(self, *, rounds: int, sample_rate: float, delta: float) -> float:
        """The run's ε after ``rounds`` rounds with own-coin rate ``sample_rate``."""
        return skellam_epsilon(self, rounds=rounds, sample_rate=sample_rate, delta=delta)


def skellam_epsilon(plan: SkellamPlan, *, rounds: int, sample_rate: float, delta: float
                    ) -> float:
    if rounds == 0:
        return 0.0
    return rdp_to_epsilon(ORDERS, rounds * _round_rdp(plan, sample_rate), delta)


@functools.lru_cache(maxsize=64)
def _round_rdp(plan: SkellamPlan, sample_rate: float) -> np.ndarray:
    """One round's subsampled RDP at ``ORDERS``: the same every round, so the run's
    ledger (asked each round) computes it once (6 ms at q < 1)."""
    rdp_of = {a: plan.round_rdp(a) for a in range(2, ORDERS[-1] + 1)}
    per_round = np.array([poisson_subsampled_rdp(a, sample_rate, rdp_of) for a in ORDERS])
    per_round.flags.writeable = False  # shared by every caller
    return per_round


def scale_for_bits(*, bits: int, summands: int, clip: float, length: int,
                   noise_std: float) -> float | None:
    """The largest γ whose sum stays in the field except with probability
    ``WRAP_PROBABILITY`` per coordinate (TFF's heuristic): k·√(n²γ²C²/D + n/4 + γ²σ²)
    ≤ 2^(B−1), with n summands, their rotated values about C/√D each (aligned updates:
    the worst case it is sized for), rounding variance 1/4 each and the noise std σ
    (unscaled) that all n senders' shares add up to.
    None when even γ → 0 does not fit (2^(2B) ≤ n·k²)."""
    room = 4.0 ** bits - summands * K_STDDEVS ** 2
    if room <= 0:
        return None
    return math.sqrt(room) / (2 * K_STDDEVS * math.sqrt(
        summands ** 2 * clip ** 2 / length + noise_std ** 2))


class SkellamPlanError(ValueError):
    """The bits cannot carry the mechanism: names bits, summands and the bound."""


def plan_skellam(*, bits: int, summands: int, min_shares: int, colluders: int, clip: float,
                 size: int, noise_multiplier: float, seed: int, reduces: bool = True
                 ) -> SkellamPlan:
    """The mechanism whose released sum carries noise of std ``noise_multiplier``·C
    (unscaled, like the Gaussian's σ) in a field of 2^``bits``: γ from the bits,
    variance (γσC)² for the sum, shared by the ``min_shares`` − ``colluders`` shares a
    release is guaranteed to keep."""
    length = padded_length(size)
    noise_std = noise_multiplier * clip
    shares = min_shares - colluders
    # every one of the n senders adds a share v/(m − t): the sum carries n/(m − t) times
    # the planned noise, and the field must hold that, not the planned noise alone
    scale = scale_for_bits(bits=bits, summands=summands, clip=clip, length=length,
                           noise_std=noise_std * math.sqrt(summands / shares))
    if scale is None:
        raise SkellamPlanError(
            f"privacy.bits={bits}: a field of 2^{bits} cannot hold the sum of {summands} "
            f"hospitals' values at {K_STDDEVS:.2f} std (needs 2^(2B) > n·k² = "
            f"{summands * K_STDDEVS ** 2:.0f})")
    l2, l1 = norm_bounds(scale * clip, length)
    variance = (scale * noise_std) ** 2
    return SkellamPlan(bits=bits, scale=scale, length=length, l2=l2, l1=l1,
                       variance=variance, share_variance=variance / shares, seed=seed,
                       reduces=reduces)


def calibrate_skellam(*, epsilon: float, delta: float, rounds: int, sample_rate: float,
                      bits: int, summands: int, min_shares: int, colluders: int, clip: float,
                      size: int, seed: int, reduces: bool = True) -> SkellamPlan:
    """The least noise (as σ, the released sum's std over C) whose Skellam mechanism in
    2^``bits`` spends at most ``epsilon`` over ``rounds``. Refused, naming the bits,
    when no σ reaches it: the rounding's own sensitivity (the D/4 term) grows against
    the noise as the bits shrink, so ε has a floor that only more bits lower."""
    def spent(sigma: float) -> float:
        plan = plan_skellam(bits=bits, summands=summands, min_shares=min_shares,
                            colluders=colluders, clip=clip, size=size,
                            noise_multiplier=sigma, seed=seed, reduces=reduces)
        return plan.epsilon(rounds=rounds, sample_rate=sample_rate, delta=delta)

    high = 1.0
    while spent(high) > epsilon:
        high *= 2.0
        if high > 1e6:
            floor = spent(1e6)
            raise SkellamPlanError(
                f"privacy.bits={bits}: with {summands} hospitals in a field of 2^{bits} the "
                f"rounding alone spends ε ≥ {floor:.3g} over {rounds} rounds, above "
                f"epsilon={epsilon}: raise privacy.bits")
    low = 0.0
    for _ in range(60):  # bisection on σ; ε falls as σ grows
        middle = (low + high) / 2.0
        if middle == 0 or spent(middle) > epsilon:
            low = middle
        else:
            high = middle
    return plan_skellam(bits=bits, summands=summands, min_shares=min_shares,
                        colluders=colluders, clip=clip, size=size, noise_multiplier=high,
                        seed=seed, reduces=reduces)
