"""Why encryption exists: one record's plaintext update gives the record away."""

import numpy as np
import pytest
import torch

from fedray.config import ModelConfig
from fedray.crypto import CKKSCodec
from fedray.crypto.ckks import PRESETS, new_key_set
from fedray.models import build_model, flatten
from fedray.strategies import FedAvg
from fedray.training import LocalTraining, train_local


def _single_record_update():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=8), num_features=13, num_classes=2)
    record = torch.randn(1, 13)
    start = flatten(model)
    train_local(model, record, torch.tensor([1]),
                settings=LocalTraining(steps=1, batch_size=1, lr=0.1),
                generator=torch.Generator().manual_seed(0), strategy=FedAvg())
    return flatten(model) - start, record.numpy()[0]


def test_plaintext_update_lets_the_server_reconstruct_the_record_exactly():
    delta, record = _single_record_update()
    weight_grad = delta[: 8 * 13].reshape(8, 13)  # first layer: Linear(13, 8) weight, bias
    bias_grad = delta[8 * 13: 8 * 13 + 8]
    neuron = int(np.argmax(np.abs(bias_grad)))
    assert abs(bias_grad[neuron]) > 0
    reconstructed = weight_grad[neuron] / bias_grad[neuron]  # dL/dW_j = δ_j x, dL/db_j = δ_j
    np.testing.assert_allclose(reconstructed, record, rtol=1e-3, atol=1e-4)


def test_encrypted_update_leaves_the_aggregator_only_ciphertext():
    delta, record = _single_record_update()
    keys = new_key_set(PRESETS["n4096"])
    hospital = CKKSCodec(keys.secret_context, keys.fingerprint)
    aggregator = CKKSCodec(keys.public_context, keys.fingerprint)
    payload = hospital.encode(delta)
    assert aggregator.validate(payload, delta.shape[0]) is None  # it can check and add…
    with pytest.raises(PermissionError):  # …but not read
        aggregator.decode(payload)
    with pytest.raises(ValueError, match="secret"):
        aggregator._load(payload)[0].decrypt()
    assert all(record.astype(np.float32).tobytes() not in c for c in payload.ciphertexts)
