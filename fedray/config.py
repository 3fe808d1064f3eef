"""Typed, validated configuration.

The library takes these frozen dataclasses (``fedray.simulate(SimulationConfig(...))``);
the Hydra CLI builds them from its composed config with :func:`config_from_dict`.
Every check raises :class:`ConfigError`, whose message names the full key, the value
and what is allowed, so a bad sweep fails in one line before Ray starts. Each section
checks its own keys; the rules that read keys of several sections are in
fedray/config_rules.py and run last.
"""

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from fedray.config_rules import check_cross_rules
from fedray.errors import ConfigError

if TYPE_CHECKING:
    from fedray.crypto.ckks import CKKSParameters
    from fedray.crypto.threshold import ThresholdParameters


def first_line(err: BaseException, default: Optional[str] = None) -> str:
    """An error's message as one line: its first non-blank line, else ``default`` (the
    error's type name when not given)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else (type(err).__name__ if default is None else default)


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def _positive_int(key: str, value: Any) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        key, value, "must be an integer >= 1",
    )


def _positive_float(key: str, value: Any) -> None:
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value) and value > 0,
        key, value, "must be a finite number > 0",
    )


def _one_of(key: str, value: Any, names: tuple[str, ...]) -> None:
    _require(value in names, key, value, f"must be one of {', '.join(names)}")


DATASETS = ("heart_disease", "synthetic")
PARTITIONS = ("natural", "iid", "dirichlet", "quantity", "shards")
MODELS = ("logreg", "mlp")
STRATEGIES = ("fedavg", "fedprox", "scaffold", "fedadam", "fedyogi", "fedadagrad", "fedbn",
              "local", "pooled")
OPTIMIZERS = ("sgd", "adam")
PRIVACY_MODES = ("none", "local", "central", "distributed", "dpsgd")
ENCRYPTIONS = ("none", "ckks")
ACCOUNTANTS = ("rdp", "prv")


@dataclass(frozen=True)
class DatasetConfig:
    """Which records the hospitals hold.

    ``heart_disease`` has four real hospitals and ignores the synthetic keys.
    ``synthetic`` draws ``num_records`` tabular records in total (per hospital on
    average: ``num_records / num_clients``) with hospital-specific feature shift.
    """

    name: str = "heart_disease"
    num_records: int = 2000
    num_features: int = 13
    num_classes: int = 2
    feature_shift: float = 0.5
    test_fraction: float = 0.25

    def __post_init__(self) -> None:
        _one_of("name", self.name, DATASETS)
        _positive_int("num_records", self.num_records)
        _positive_int("num_features", self.num_features)
        _require(
            isinstance(self.num_classes, int) and self.num_classes >= 2,
            "num_classes", self.num_classes, "must be an integer >= 2",
        )
        _require(self.feature_shift >= 0, "feature_shift", self.feature_shift, "must be >= 0")
        _require(
            0 < self.test_fraction < 1, "test_fraction", self.test_fraction,
            "must be strictly between 0 and 1",
        )


@dataclass(frozen=True)
class PartitionConfig:
    """How records are split into hospitals (``natural`` keeps real hospital ids),
    and how each hospital's "scanner" distorts its features (docs/data.md).

    ``feature_shift`` and ``masked_features`` apply to every partition and dataset,
    after the hospital's own standardisation; ``dataset.feature_shift`` is a different
    knob, the synthetic generator's built-in covariate shift.
    """

    name: str = "natural"
    alpha: float = 0.5  # dirichlet: label skew; quantity: size skew (smaller = more skewed)
    min_records: int = 4  # every hospital holds at least this many records (train + test)
    shards_per_client: int = 2  # shards only: label shards per hospital (fewer = more skewed)
    feature_shift: float = 0.0  # per-hospital gain, offset and noise strength; 0 = off
    masked_features: float = 0.0  # share of features each hospital does not measure (-> 0)

    def __post_init__(self) -> None:
        _one_of("name", self.name, PARTITIONS)
        _positive_float("alpha", self.alpha)
        _require(
            isinstance(self.min_records, int) and self.min_records >= 2, "min_records",
            self.min_records, "must be an integer >= 2 (one train and one test record)",
        )
        _positive_int("shards_per_client", self.shards_per_client)
        _require(
            isinstance(self.feature_shift, (int, float))
            and not isinstance(self.feature_shift, bool)
            and math.isfinite(self.feature_shift) and self.feature_shift >= 0,
            "feature_shift", self.feature_shift, "must be a finite number >= 0 (0 = off)",
        )
        _require(
            isinstance(self.masked_features, (int, float))
            and not isinstance(self.masked_features, bool) and 0 <= self.masked_features < 1,
            "masked_features", self.masked_features,
            "must be a share in [0, 1) of the features each hospital leaves unmeasured",
        )


@dataclass(frozen=True)
class ModelConfig:
    name: str = "logreg"
    hidden: int = 32  # mlp only
    batchnorm: bool = False  # mlp only; not compatible with privacy=dpsgd

    def __post_init__(self) -> None:
        _one_of("name", self.name, MODELS)
        _positive_int("hidden", self.hidden)


@dataclass(frozen=True)
class StrategyConfig:
    """How hospitals train and the server aggregates (docs/strategies.md).

    ``server_lr`` scales the server's step (FedAvg, FedProx, SCAFFOLD: the averaged
    update; FedAdam/Yogi/Adagrad: the adaptive step); ``mu`` is FedProx's proximal
    weight; ``beta1``, ``beta2``, ``tau`` are the FedOpt moments' decay and the
    adaptivity floor."""

    name: str = "fedavg"
    server_lr: Optional[float] = None  # None: the strategy's own (1.0; FedOpt 0.01)
    mu: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    tau: float = 1e-8
    control_weights: str = "uniform"  # scaffold: "uniform" (the paper) or "size" (FLamby)
    # pooled: "hospital" trains on the union as each hospital holds (and scales) its data;
    # "pooled" re-standardises the union with pooled statistics, as FLamby's pooled run does
    pooled_scaling: str = "hospital"

    def __post_init__(self) -> None:
        _one_of("name", self.name, STRATEGIES)
        _one_of("control_weights", self.control_weights, ("uniform", "size"))
        _one_of("pooled_scaling", self.pooled_scaling, ("hospital", "pooled"))
        if self.server_lr is not None:
            _positive_float("server_lr", self.server_lr)
        _positive_float("mu", self.mu)
        _positive_float("tau", self.tau)
        for key in ("beta1", "beta2"):
            value = getattr(self, key)
            _require(isinstance(value, (int, float)) and 0 <= value < 1, key, value,
                     "must be in [0, 1)")


@dataclass(frozen=True)
class PrivacyConfig:
    """Differential privacy (docs/privacy.md).

    ``local``: each hospital clips its update to ``clip`` and adds N(0, σ²C²) before it
    leaves (client-level DP against everyone). ``central``: hospitals clip; the
    aggregator adds the noise to the sum (DP-FedAvg, trusted server). ``dpsgd``: each
    hospital trains with Opacus DP-SGD (record-level DP). σ is calibrated by Opacus's
    accountant so the whole run spends at most ``epsilon`` at ``delta``; or give
    ``noise_multiplier`` and read the ε spent (with ``epsilon`` too, it is a cap).
    """

    name: str = "none"
    epsilon: Optional[float] = None
    delta: float = 1e-5
    clip: float = 1.0
    noise_multiplier: Optional[float] = None
    accountant: str = "rdp"
    # True: noise and sampling from ChaCha20 under fresh OS keys, never reproducible
    # (fedray/privacy/csprng.py; Opacus secure_mode with an OS-seeded torch generator for
    # DP-SGD); False: seeded from ``seed``, so the guarantee assumes the seed is secret.
    secure_rng: bool = False
    colluders: int = 0  # distributed: hospitals that may pool their noise shares
    # distributed: the Skellam mechanism's field 2^bits (fedray/privacy/skellam.py)
    bits: int = 16
    # central, distributed: who was in a round is part of the secret; true writes the
    # diagnostics that reveal it (train losses, participant counts, bytes) anyway
    reveal_sample: bool = False

    def __post_init__(self) -> None:
        _one_of("name", self.name, PRIVACY_MODES)
        _one_of("accountant", self.accountant, ACCOUNTANTS)
        _require(
            isinstance(self.delta, (int, float)) and 0 < self.delta < 1, "delta", self.delta,
            "must be in (0, 1)",
        )
        _positive_float("clip", self.clip)
        if self.epsilon is not None:
            _positive_float("epsilon", self.epsilon)
        if self.noise_multiplier is not None:
            _positive_float("noise_multiplier", self.noise_multiplier)
        _require(isinstance(self.secure_rng, bool), "secure_rng", self.secure_rng,
                 "must be true or false")
        _require(isinstance(self.reveal_sample, bool), "reveal_sample", self.reveal_sample,
                 "must be true or false")
        _require(isinstance(self.colluders, int) and not isinstance(self.colluders, bool)
                 and self.colluders >= 0, "colluders", self.colluders,
                 "must be an integer >= 0")
        _require(isinstance(self.bits, int) and not isinstance(self.bits, bool)
                 and 2 <= self.bits <= 22, "bits", self.bits,
                 "must be an integer in [2, 22] (the field 2^bits of distributed DP's integers)")
        if self.colluders and self.name != "distributed":
            raise ConfigError("colluders", self.colluders, "only privacy=distributed splits "
                              "the noise into shares that colluders could pool; use 0")
        if self.name != "none" and self.epsilon is None and self.noise_multiplier is None:
            raise ConfigError(
                "epsilon", None, f"privacy={self.name} needs privacy.epsilon (a budget) "
                "or privacy.noise_multiplier",
            )


@dataclass(frozen=True)
class EncryptionConfig:
    """Secure aggregation (docs/encryption.md). ``ckks``: hospitals encrypt their
    updates with CKKS (TenSEAL); the aggregator adds ciphertexts it cannot read.

    ``preset`` picks tested 128-bit-secure parameters; ``preset=custom`` takes
    ``poly_modulus_degree``, ``coeff_mod_bit_sizes`` and ``scale_bits`` (checked).
    ``decrypt_rounding_bits``: the decrypted aggregate is rounded to multiples of
    2^-bits, far above the CKKS error, before it leaves the hospital.
    """

    name: str = "none"
    preset: str = "n8192"
    poly_modulus_degree: Optional[int] = None
    coeff_mod_bit_sizes: Optional[list[int]] = None
    scale_bits: Optional[int] = None
    decrypt_rounding_bits: int = 20
    packing: str = "none"  # "quantized": two values per slot, 16 B/param (docs/encryption.md)
    quantization_bits: int = 15
    # quantized: values are clipped to ±range before rounding; None derives the range
    # from the DP noise scale (local), else 1.0 (docs/encryption.md)
    packing_range: Optional[float] = None
    # 1: one CKKS key (every hospital worker and the decryptor hold it); k >= 2: the key
    # exists only as k shares held by k key holders (threshold CKKS, docs/encryption.md)
    key_holders: int = 1
    # set by the planner under privacy=distributed (privacy.bits): every update is
    # integers modulo 2^bits, packed several to a slot and summed exactly
    integer_field_bits: Optional[int] = None

    def __post_init__(self) -> None:
        from fedray.crypto.ckks import PRESETS, check_parameters

        _one_of("name", self.name, ENCRYPTIONS)
        _one_of("preset", self.preset, (*PRESETS, "custom"))
        _require(
            isinstance(self.decrypt_rounding_bits, int) and 8 <= self.decrypt_rounding_bits <= 24,
            "decrypt_rounding_bits", self.decrypt_rounding_bits,
            "must be an integer in [8, 24] (grid 2^-bits, above the CKKS error ~1e-8)",
        )
        _one_of("packing", self.packing, ("none", "quantized"))
        _require(
            isinstance(self.quantization_bits, int) and 4 <= self.quantization_bits <= 17,
            "quantization_bits", self.quantization_bits, "must be an integer in [4, 17]",
        )
        if self.packing_range is not None:
            _positive_float("packing_range", self.packing_range)
        _require(self.integer_field_bits is None
                 or (isinstance(self.integer_field_bits, int) and 2 <= self.integer_field_bits
                     <= 22), "integer_field_bits", self.integer_field_bits,
                 "is set by the planner from privacy.bits (privacy=distributed); leave it null")
        _require(isinstance(self.key_holders, int) and not isinstance(self.key_holders, bool)
                 and 1 <= self.key_holders <= 8, "key_holders", self.key_holders,
                 "must be an integer in [1, 8] (1: one key; k >= 2: threshold CKKS)")
        if self.key_holders > 1:
            from fedray.crypto.threshold import PRESETS as THRESHOLD_PRESETS

            _require(self.preset in THRESHOLD_PRESETS, "preset", self.preset,
                     f"with key_holders={self.key_holders} must be one of "
                     f"{', '.join(THRESHOLD_PRESETS)} (threshold presets)")
            _require(self.packing == "none", "packing", self.packing,
                     "must be none with key_holders > 1 (threshold CKKS packs one value a slot)")
        elif self.name == "ckks":
            problem = check_parameters(self.parameters)
            if problem is not None:
                raise ConfigError("preset", self.preset, problem)

    @property
    def threshold_parameters(self) -> "ThresholdParameters":
        """The threshold preset with this run's number of key holders."""
        from fedray.crypto.threshold import PRESETS as THRESHOLD_PRESETS

        return dataclasses.replace(THRESHOLD_PRESETS[self.preset], key_holders=self.key_holders)

    @property
    def threshold(self) -> bool:
        return self.key_holders > 1

    @property
    def parameters(self) -> "CKKSParameters":
        from fedray.crypto.ckks import PRESETS, CKKSParameters

        if self.preset != "custom":
            return PRESETS[self.preset]
        missing = [k for k in ("poly_modulus_degree", "coeff_mod_bit_sizes", "scale_bits")
                   if getattr(self, k) is None]
        if missing:
            raise ConfigError(missing[0], None, "preset=custom needs poly_modulus_degree, "
                              "coeff_mod_bit_sizes and scale_bits")
        return CKKSParameters(int(self.poly_modulus_degree),  # type: ignore[arg-type]
                              tuple(self.coeff_mod_bit_sizes),  # type: ignore[arg-type]
                              int(self.scale_bits))  # type: ignore[arg-type]

    @property
    def enabled(self) -> bool:
        return self.name != "none"


@dataclass(frozen=True)
class AvailabilityConfig:
    """Hospitals that are offline some rounds or slow (docs/design.md, "Dropouts and
    stragglers"). Each hospital draws its own online probability and speed factor once
    (seeded by ``seed``); a round closes at ``round_timeout_s`` of simulated time."""

    online: float = 1.0  # mean probability that a hospital is reachable in a round
    online_spread: float = 0.0  # per-hospital probabilities uniform in online ± spread
    speed_spread: float = 0.0  # σ of the log-normal per-hospital compute-speed factor
    seconds_per_step: float = 0.0  # simulated seconds per local step at speed 1 (0: none)

    def __post_init__(self) -> None:
        _require(isinstance(self.online, (int, float)) and 0 < self.online <= 1, "online",
                 self.online, "must be in (0, 1]")
        for key in ("online_spread", "speed_spread", "seconds_per_step"):
            value = getattr(self, key)
            _require(isinstance(value, (int, float)) and not isinstance(value, bool)
                     and math.isfinite(value) and value >= 0, key, value,
                     "must be a finite number >= 0")

    @property
    def enabled(self) -> bool:
        return self.online < 1 or self.online_spread > 0 or self.seconds_per_step > 0


@dataclass(frozen=True)
class FaultsConfig:
    """Fault injection, to see a run survive a failure: in round ``kill_actor_round`` the
    hospital worker ``kill_actor`` is killed by its handle (Ray restarts it)."""

    kill_actor_round: Optional[int] = None
    kill_actor: int = 0

    def __post_init__(self) -> None:
        if self.kill_actor_round is not None:
            _positive_int("kill_actor_round", self.kill_actor_round)
        _require(isinstance(self.kill_actor, int) and self.kill_actor >= 0, "kill_actor",
                 self.kill_actor, "must be an integer >= 0 (a hospital worker's number)")


BATCHED_CHOICES = ("auto", "true", "false")


@dataclass(frozen=True)
class TrainingConfig:
    """How a hospital worker trains the hospitals it hosts (fedray/batched.py):
    ``batched=auto`` trains them together in stacked tensors when the model, optimiser,
    strategy and privacy mode allow it and one by one otherwise; ``true`` insists
    (refused before Ray with the reason when it cannot); ``false`` keeps the
    per-hospital loop."""

    batched: str = "auto"

    def __post_init__(self) -> None:
        _require(str(self.batched).lower() in BATCHED_CHOICES, "batched", self.batched,
                 "must be auto, true or false")

    @property
    def choice(self) -> str:
        """auto, true or false (a YAML boolean arrives as True/False)."""
        return str(self.batched).lower()


@dataclass(frozen=True)
class RayConfig:
    """Where the simulation runs. ``address=None`` always starts a fresh local Ray."""

    address: Optional[str] = None
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0
    num_actors: Optional[int] = None  # None: as many as the cluster's CPUs allow
    num_cpus: Optional[int] = None  # local Ray only: CPUs to give it (None: all)

    def __post_init__(self) -> None:
        _require(
            self.address is None or (isinstance(self.address, str) and (
                self.address == "auto" or "://" in self.address
                or (self.address.rpartition(":")[2].isdigit()
                and self.address.rpartition(":")[0] != ""))),
            "address", self.address,
            "must be null (fresh local Ray), 'auto', ray://host:port or host:port",
        )
        _positive_float("num_cpus_per_actor", self.num_cpus_per_actor)
        _require(
            self.num_gpus_per_actor >= 0, "num_gpus_per_actor", self.num_gpus_per_actor,
            "must be >= 0 (fractions share a GPU)",
        )
        if self.num_actors is not None:
            _positive_int("num_actors", self.num_actors)
        if self.num_cpus is not None:
            _positive_int("num_cpus", self.num_cpus)


AUDIT_ATTACKS = ("inversion", "membership", "canary", "client_canary", "gradient_canary")


@dataclass(frozen=True)
class AuditConfig:
    """Privacy audits run with the simulation (docs/privacy.md, "Auditing"); the CLI
    composes them: ``audit=[inversion,membership,canary]``. ``target``: the hospital
    whose first update the aggregator inverts and which holds the canaries;
    ``canaries``: how many canary records (each in with probability 1/2);
    ``dlg_iterations``: optimisation-based inversion beside the analytic one.
    ``client_canary``: canary clients (fedray/audit/client_canary.py), ``client_canaries``
    of them, join the federation. ``gradient_canary``: DP-SGD's white-box Dirac gradient
    canaries in the target hospital (fedray/audit/gradient_canary.py),
    ``gradient_canaries`` of them (None: as many as the model has trainable parameters,
    at most 1000, rounded down to a multiple of 4). ``noise_scale`` < 1 scales the
    mechanism's noise down while the accountant still prices the full noise (0: none):
    a broken mechanism, the audit's positive control, never a private run."""

    inversion: bool = False
    membership: bool = False
    canary: bool = False
    client_canary: bool = False
    gradient_canary: bool = False
    canaries: int = 200
    client_canaries: int = 1000
    gradient_canaries: Optional[int] = None
    noise_scale: float = 1.0
    target: int = 0
    confidence: float = 0.95
    dlg_iterations: int = 300  # optimisation-based inversion's steps per restart (0: off)

    def __post_init__(self) -> None:
        for key in AUDIT_ATTACKS:
            _require(isinstance(getattr(self, key), bool), key, getattr(self, key),
                     "must be true or false")
        _require(isinstance(self.canaries, int) and not isinstance(self.canaries, bool)
                 and self.canaries >= 8 and self.canaries % 4 == 0, "canaries", self.canaries,
                 "must be a multiple of 4, at least 8 (a quarter of them are guessed in, a "
                 "quarter out)")
        _require(isinstance(self.client_canaries, int)
                 and not isinstance(self.client_canaries, bool)
                 and self.client_canaries >= 8 and self.client_canaries % 4 == 0,
                 "client_canaries", self.client_canaries,
                 "must be a multiple of 4, at least 8")
        _require(self.gradient_canaries is None
                 or (isinstance(self.gradient_canaries, int)
                     and not isinstance(self.gradient_canaries, bool)
                     and self.gradient_canaries >= 8 and self.gradient_canaries % 4 == 0),
                 "gradient_canaries", self.gradient_canaries,
                 "must be null (as many as the model allows, at most 1000) or a multiple of 4, "
                 "at least 8")
        _require(isinstance(self.noise_scale, (int, float))
                 and not isinstance(self.noise_scale, bool) and 0 <= self.noise_scale <= 1,
                 "noise_scale", self.noise_scale,
                 "must be in [0, 1] (below 1: the audit's positive control)")
        _require(isinstance(self.target, int) and not isinstance(self.target, bool)
                 and self.target >= 0, "target", self.target, "must be a hospital index >= 0")
        _require(isinstance(self.dlg_iterations, int) and not isinstance(self.dlg_iterations, bool)
                 and self.dlg_iterations >= 0, "dlg_iterations", self.dlg_iterations,
                 "must be an integer >= 0 (0: analytic inversion only)")
        _require(isinstance(self.confidence, float) and 0.5 <= self.confidence < 1,
                 "confidence", self.confidence, "must be in [0.5, 1)")

    @property
    def enabled(self) -> bool:
        return any(getattr(self, key) for key in AUDIT_ATTACKS)

@dataclass(frozen=True)
class SimulationConfig:
    """One federated run. Top-level keys are the public CLI names."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    encryption: EncryptionConfig = field(default_factory=EncryptionConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    availability: AvailabilityConfig = field(default_factory=AvailabilityConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    num_rounds: int = 20
    num_clients: int = 4  # for partitions that choose the count (not 'natural')
    fraction_per_round: float = 1.0
    min_clients: int = 1
    local_epochs: int = 1
    local_steps: Optional[int] = None  # when set, overrides local_epochs
    optimizer: str = "sgd"  # the hospitals' local optimiser; adam keeps its state per hospital
    personalize_steps: int = 0  # >0: each hospital also tests after k local steps of its own
    batch_size: int = 16
    lr: float = 0.05
    seed: int = 0
    eval_every: int = 1
    round_timeout_s: Optional[float] = None
    output_dir: Optional[str] = None  # None: no files written (library use)
    progress: bool = True
    checkpoint_every: int = 0  # k > 0: the run's whole state to checkpoints/ every k rounds
    resume: Optional[str] = None  # a run directory: continue from its last checkpoint

    def __post_init__(self) -> None:
        _positive_int("num_rounds", self.num_rounds)
        _require(isinstance(self.checkpoint_every, int)
                 and not isinstance(self.checkpoint_every, bool) and self.checkpoint_every >= 0,
                 "checkpoint_every", self.checkpoint_every,
                 "must be an integer >= 0 (0: no checkpoints)")
        _require(self.resume is None or (isinstance(self.resume, str) and self.resume != ""),
                 "resume", self.resume, "must be null or a run directory with checkpoints/")

        _positive_int("num_clients", self.num_clients)
        _require(
            0 < self.fraction_per_round <= 1, "fraction_per_round", self.fraction_per_round,
            "must be in (0, 1]",
        )
        _positive_int("min_clients", self.min_clients)
        _positive_int("local_epochs", self.local_epochs)
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _require(isinstance(self.personalize_steps, int) and self.personalize_steps >= 0,
                 "personalize_steps", self.personalize_steps, "must be an integer >= 0")
        if self.local_steps is not None:
            _positive_int("local_steps", self.local_steps)
        _positive_int("batch_size", self.batch_size)
        _positive_float("lr", self.lr)
        _require(
            isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed,
            "must be an integer >= 0",
        )
        _positive_int("eval_every", self.eval_every)
        if self.round_timeout_s is not None:
            _positive_float("round_timeout_s", self.round_timeout_s)
        check_cross_rules(self)  # rules that read more than one key (fedray/config_rules.py)


SECTIONS: dict[str, type] = {
    "dataset": DatasetConfig,
    "partition": PartitionConfig,
    "model": ModelConfig,
    "strategy": StrategyConfig,
    "privacy": PrivacyConfig,
    "encryption": EncryptionConfig,
    "ray": RayConfig,
    "availability": AvailabilityConfig,
    "faults": FaultsConfig,
    "training": TrainingConfig,
    "audit": AuditConfig,
}


def _build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(key, values[unknown[0]],
                          f"unknown key; known: {', '.join(sorted(names))}")
    try:
        return cls(**values)
    except ConfigError as err:
        raise (err.under(prefix.rstrip(".")) if prefix else err) from None


def config_from_dict(values: Mapping[str, Any]) -> SimulationConfig:
    """Builds a validated :class:`SimulationConfig` from plain (e.g. Hydra) values."""
    top = {k: v for k, v in values.items() if k not in SECTIONS and k not in ("defaults",)}
    sections = {
        name: _build(cls, values.get(name) or {}, f"{name}.")
        for name, cls in SECTIONS.items()
    }
    return _build(SimulationConfig, {**top, **sections})


def config_to_dict(config: SimulationConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


# Sections whose Hydra group options compose (audit=[membership,canary]): each option
# sets one flag, so the defaults must come from the root schema, not from the options.
TYPED_AT_ROOT = ("audit",)


def hydra_schema(cls: type) -> type:
    """A mutable twin of a frozen config dataclass for Hydra's ConfigStore.

    Hydra must write overrides into the nodes it composes, which a frozen dataclass
    forbids; the twin keeps field names, types and defaults, so OmegaConf still
    type-checks the command line. Range checks run when the library dataclass is built.
    """
    fields: list[tuple[str, Any, Any]] = []
    for f in dataclasses.fields(cls):
        if f.name in TYPED_AT_ROOT:  # its group's options only set flags on these defaults
            nested = hydra_schema(SECTIONS[f.name])
            fields.append((f.name, nested, field(default_factory=nested)))
        elif f.name in SECTIONS:
            fields.append((f.name, Any, field(default=None)))
        elif f.default is not dataclasses.MISSING:
            fields.append((f.name, f.type, field(default=f.default)))
        else:
            fields.append((f.name, f.type, field(default_factory=f.default_factory)))
    return dataclasses.make_dataclass(f"{cls.__name__}Schema", fields)
