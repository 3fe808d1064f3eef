"""The bad-input corpus (issue #10): every line is a configuration a user could type.
Each is refused with one line that names the key (and the value) and what is allowed,
in-process through the CLI's own compose-and-check path (`fedray.cli.precheck` prints
these lines and exits 2); the planner refuses what only the data can. A few
subprocess tests in test_cli.py check the exit code and that nothing is written."""

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from fedray.cli import compose, composition_error_line
from fedray.config import ConfigError

CONFIG = [
    (['num_rounds=0'], 'num_rounds=0: must be an integer'),
    (['num_rounds=-3'], 'num_rounds=-3: must be an integer'),
    (['num_rounds=abc'], "num_rounds: Value 'abc' of type"),
    (['num_rounds=1.5'], "num_rounds: Value '1.5' of type"),
    (['num_clients=0'], 'num_clients=0: must be an integer'),
    (['fraction_per_round=0'], 'fraction_per_round=0.0: must be in (0,'),
    (['fraction_per_round=1.5'], 'fraction_per_round=1.5: must be in (0,'),
    (['min_clients=0'], 'min_clients=0: must be an integer'),
    (['local_epochs=0'], 'local_epochs=0: must be an integer'),
    (['local_steps=0'], 'local_steps=0: must be an integer'),
    (['batch_size=0'], 'batch_size=0: must be an integer'),
    (['lr=0'], 'lr=0.0: must be a finite'),
    (['lr=-1'], 'lr=-1.0: must be a finite'),
    (['lr=nan'], 'lr=nan: must be a finite'),
    (['lr=inf'], 'lr=inf: must be a finite'),
    (['seed=-1'], 'seed=-1: must be an integer'),
    (['eval_every=0'], 'eval_every=0: must be an integer'),
    (['round_timeout_s=0'], 'round_timeout_s=0.0: must be a finite'),
    (['round_timeout_s=-5'], 'round_timeout_s=-5.0: must be a finite'),
    (['optimizer=rmsprop'], "optimizer='rmsprop': must be one of"),
    (['personalize_steps=-1'], 'personalize_steps=-1: must be an integer'),
    (['progress=maybe'], "progress: Value 'maybe' is not"),
    (['nonexistent=3'], 'nonexistent: no such key (a'),
    (['dataset=foo'], "dataset='foo': must be one of"),
    (['partition=foo'], "partition='foo': must be one of"),
    (['model=foo'], "model='foo': must be one of"),
    (['strategy=foo'], "strategy='foo': must be one of"),
    (['privacy=foo'], "privacy='foo': must be one of"),
    (['encryption=foo'], "encryption='foo': must be one of"),
    (['epsilon=eps2'], "epsilon='eps2': must be one of"),
    (['heterogeneity=alpha7'], "heterogeneity='alpha7': must be one of"),
    (['dataset.num_records=0'], 'dataset.num_records=0: must be an integer'),
    (['dataset.num_features=0'], 'dataset.num_features=0: must be an integer'),
    (['dataset.num_classes=1'], 'dataset.num_classes=1: must be an integer'),
    (['dataset.test_fraction=0'], 'dataset.test_fraction=0.0: must be strictly between'),
    (['dataset.test_fraction=1'], 'dataset.test_fraction=1.0: must be strictly between'),
    (['dataset.feature_shift=-1'], 'dataset.feature_shift=-1.0: must be >= 0'),
    (['partition=dirichlet', 'partition.alpha=0'], 'partition.alpha=0.0: must be a finite'),
    (['partition=dirichlet', 'partition.alpha=abc'], "partition.alpha: Value 'abc' of type"),
    (['partition.min_records=0'], 'partition.min_records=0: must be an integer'),
    (['partition=shards', 'partition.shards_per_client=0'],
     'partition.shards_per_client=0: must be an integer'),
    (['model=mlp', 'model.hidden=0'], 'model.hidden=0: must be an integer'),
    (['strategy=fedprox', 'strategy.mu=-1'], 'strategy.mu=-1.0: must be a finite'),
    (['strategy=fedadam', 'strategy.beta1=1.5'], 'strategy.beta1=1.5: must be in [0,'),
    (['strategy=fedadam', 'strategy.tau=0'], 'strategy.tau=0.0: must be a finite'),
    (['strategy.server_lr=0'], 'strategy.server_lr=0.0: must be a finite'),
    (['strategy.control_weights=foo'], "strategy.control_weights='foo': must be one of"),
    (['strategy.pooled_scaling=foo'], "strategy.pooled_scaling='foo': must be one of"),
    (['privacy=local', 'privacy.epsilon=0'], 'privacy.epsilon=0.0: must be a finite'),
    (['privacy=local', 'privacy.delta=0'], 'privacy.delta=0.0: must be in (0,'),
    (['privacy=local', 'privacy.delta=1'], 'privacy.delta=1.0: must be in (0,'),
    (['privacy=local', 'privacy.clip=0'], 'privacy.clip=0.0: must be a finite'),
    (['privacy=local', 'privacy.noise_multiplier=-1'],
     'privacy.noise_multiplier=-1.0: must be a finite'),
    (['privacy=local', 'privacy.accountant=foo'], "privacy.accountant='foo': must be one of"),
    (['privacy=local', 'privacy.epsilon=null'],
     'privacy.epsilon=None: privacy=local needs privacy.epsilon (a'),
    (['privacy=distributed', 'privacy.epsilon=1'],
     "privacy.name='distributed': needs encryption=ckks: each hospital"),
    (['privacy=central', 'encryption=ckks'],
     "privacy.name='central': cannot run with encryption=ckks:"),
    (['privacy=distributed', 'encryption=ckks', 'privacy.colluders=-1'],
     'privacy.colluders=-1: must be an integer'),
    (['encryption=ckks', 'encryption.preset=foo'], "encryption.preset='foo': must be one of"),
    (['encryption=ckks', 'encryption.packing=foo'], "encryption.packing='foo': must be one of"),
    (['encryption=ckks', 'encryption.decrypt_rounding_bits=-1'],
     'encryption.decrypt_rounding_bits=-1: must be an integer'),
    (['ray.num_cpus_per_actor=0'], 'ray.num_cpus_per_actor=0: must be a finite'),
    (['ray.num_gpus_per_actor=-1'], 'ray.num_gpus_per_actor=-1: must be >= 0'),
    (['ray.num_actors=0'], 'ray.num_actors=0: must be an integer'),
    (['ray.num_cpus=0'], 'ray.num_cpus=0: must be an integer'),
    (["ray.address=''"], "ray.address='': must be null (fresh"),
    (["ray.address=nohostport"], "ray.address='nohostport': must be null (fresh"),
    (['output_dir=/x'], "output_dir='/x': the CLI writes to"),
    (['strategy=local', 'privacy=local'], "strategy.name='local': is a reference run"),
    (['strategy=scaffold', 'privacy=local'],
     "strategy.name='scaffold': with privacy=local the server"),
    (['strategy=pooled', 'min_clients=2'], 'min_clients=2: must be 1 with'),
    (['optimizer=adam', 'strategy=scaffold'], "optimizer='adam': SCAFFOLD's control variates and"),
    (['strategy=fedbn'], "strategy.name='fedbn': keeps each hospital's BatchNorm"),
    (['privacy=dpsgd', 'model=mlp', 'model.batchnorm=true'],
     'model.batchnorm=True: BatchNorm mixes the records'),
    (['dataset=synthetic'], "partition.name='natural': dataset synthetic has no"),
    (['audit=canary', 'audit.canaries=10'], 'audit.canaries=10: must be a multiple of 4'),
    (['audit=canary', 'audit.confidence=1.0'], 'audit.confidence=1.0: must be in [0.5, 1)'),
    (['audit=canary', 'audit.target=-1'], 'audit.target=-1: must be a hospital index'),
    (['audit=canary', 'strategy=pooled'], "strategy.name='pooled': is a reference run without"),
    (['audit=leak'], "audit='leak': must be one of canary, client_canary, gradient_canary, "
                    "inversion, membership, none"),
    (['privacy=distributed', 'privacy.epsilon=4', 'encryption=ckks', 'privacy.bits=1'],
     'privacy.bits=1: must be an integer in [2, 22]'),
    (['privacy=distributed', 'privacy.epsilon=4', 'encryption=ckks',
      'privacy.accountant=prv'], "privacy.accountant='prv': must be rdp with privacy=distrib"),
    (['training.batched=maybe'], "training.batched='maybe': must be auto, true or false"),
    (['audit=gradient_canary', 'audit.gradient_canaries=10'],
     'audit.gradient_canaries=10: must be null (as many as the model allows'),
]

DATA = [
    (['dataset=synthetic', 'partition=iid', 'num_clients=1000'],
     'num_clients=1000: 1000 hospitals x 4'),
    (['privacy=dpsgd', 'privacy.delta=0.05'], 'privacy.delta=0.05: must be < 1/(records'),
    (['privacy=dpsgd', 'audit=gradient_canary', 'audit.gradient_canaries=100'],
     'audit.gradient_canaries=100: each canary needs its own parameter; model logreg has 14 '
     'parameters'),
    (['audit=inversion', 'audit.target=4'], 'audit.target=4: must be a hospital index < 4'),
    (['training.batched=true', 'optimizer=adam'],
     "training.batched=True: cannot train these hospitals together: optimizer 'adam'"),
    (['privacy=distributed', 'privacy.epsilon=4', 'encryption=ckks', 'min_clients=4',
      'encryption.key_holders=2', 'encryption.preset=n4096'],
     'privacy.bits=16: the sum of 4 hospitals\' integers below 2^16 reaches 262144, beyond'),
    (['privacy=distributed', 'privacy.epsilon=4', 'encryption=ckks', 'privacy.bits=8',
      'model=mlp'],
     'privacy.bits=8: with 4 hospitals in a field of 2^8 the rounding alone spends'),
]


def _refusal(overrides):
    try:
        compose(overrides)
    except ConfigError as err:
        return str(err)
    except (HydraException, OmegaConfBaseException) as err:
        return composition_error_line(err)
    return None


def test_the_corpus_is_large():
    assert len(CONFIG) + len(DATA) >= 50


@pytest.mark.parametrize("overrides, expected", CONFIG, ids=[" ".join(o) for o, _ in CONFIG])
def test_bad_config_is_one_line_naming_the_key_and_what_is_allowed(overrides, expected):
    line = _refusal(overrides)
    assert line is not None, "accepted"
    assert line.startswith(expected) and "\n" not in line and "Traceback" not in line


@pytest.mark.parametrize("overrides, expected", DATA, ids=[" ".join(o) for o, _ in DATA])
def test_what_the_data_cannot_give_is_one_line_from_the_planner(overrides, expected):
    from fedray.planning import plan

    with pytest.raises(ConfigError) as refused:
        plan(compose(overrides))
    assert str(refused.value).startswith(expected) and "\n" not in str(refused.value)
