import numpy as np
import torch

from fedray.config import ModelConfig
from fedray.models import build_model, flatten, initial_parameters, load_flat, loss_fn
from fedray.strategies import FedAvg
from fedray.training import LocalTraining, batch_indices, sgd_step, train_local


def test_steps_cycle_through_epochs():
    g = torch.Generator().manual_seed(0)
    batches = list(batch_indices(10, batch_size=4, num_steps=5, generator=g))
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4]
    assert sorted(torch.cat(batches[:3]).tolist()) == list(range(10))  # one full epoch


def test_epochs_mode_counts_steps():
    assert LocalTraining(epochs=2, batch_size=32).num_steps(100) == 8
    assert LocalTraining(epochs=2, steps=100, batch_size=32).num_steps(100) == 100


def test_sgd_step_matches_torch_optim():
    torch.manual_seed(0)
    a = torch.nn.Linear(5, 2)
    b = torch.nn.Linear(5, 2)
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(8, 5), torch.randint(0, 2, (8,))
    params = list(a.parameters())
    sgd_step(params, torch.autograd.grad(loss_fn(a(x), y), params), lr=0.1)
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    loss_fn(b(x), y).backward()
    opt.step()
    assert np.allclose(flatten(a), flatten(b))


def test_local_training_lowers_the_loss():
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    model = build_model(ModelConfig(name="logreg"), num_features=4, num_classes=2)
    before = float(loss_fn(model(x), y).detach())
    train_local(model, x, y, settings=LocalTraining(epochs=5, batch_size=16, lr=0.5),
                generator=torch.Generator().manual_seed(0), strategy=FedAvg())
    assert float(loss_fn(model(x), y).detach()) < 0.6 * before


def test_flat_vector_round_trip_and_seeded_init():
    vec = initial_parameters(ModelConfig(name="mlp", hidden=8), num_features=3, num_classes=2,
                             seed=5)
    assert vec.dtype == np.float32 and vec.shape == (3 * 8 + 8 + 8 * 2 + 2,)
    again = initial_parameters(ModelConfig(name="mlp", hidden=8), num_features=3,
                               num_classes=2, seed=5)
    assert np.array_equal(vec, again)
    model = build_model(ModelConfig(name="mlp", hidden=8), num_features=3, num_classes=2)
    readonly = vec.copy()
    readonly.setflags(write=False)  # as a ray.get array arrives
    load_flat(model, readonly)
    assert np.array_equal(flatten(model), vec)


def test_batchnorm_running_statistics_are_part_of_the_flat_vector():
    config = ModelConfig(name="mlp", hidden=4, batchnorm=True)
    model = build_model(config, num_features=3, num_classes=2)
    model.train()
    model(torch.randn(16, 3) * 5 + 2)  # a forward pass in train mode moves the running stats
    vector = flatten(model)
    fresh = build_model(config, num_features=3, num_classes=2)
    load_flat(fresh, vector)
    bn, fresh_bn = model[1], fresh[1]
    assert torch.equal(bn.running_mean, fresh_bn.running_mean)
    assert torch.equal(bn.running_var, fresh_bn.running_var)
    assert not torch.allclose(fresh_bn.running_mean, torch.zeros(4))


def test_adam_resumed_from_its_saved_state_continues_exactly():
    torch.manual_seed(1)
    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    config = ModelConfig(name="logreg")
    settings = LocalTraining(steps=5, batch_size=8, lr=0.01, optimizer="adam")  # one epoch
    resumed = build_model(config, num_features=4, num_classes=2)
    straight = build_model(config, num_features=4, num_classes=2)
    straight.load_state_dict(resumed.state_dict())
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    state: dict = {}
    for _ in range(2):  # two rounds of one epoch, Adam's moments carried in `state`
        train_local(resumed, x, y, settings=settings, generator=g1, strategy=FedAvg(),
                    optimizer_state=state)
    train_local(straight, x, y, settings=LocalTraining(steps=10, batch_size=8, lr=0.01,
                                                        optimizer="adam"),
                generator=g2, strategy=FedAvg(), optimizer_state={})
    assert np.array_equal(flatten(resumed), flatten(straight))
    assert int(state["state"][0]["step"]) == 10


def test_epochs_count_the_planned_records_not_audit_canaries_on_top():
    # 40 records of which 20 were planned (the rest: canaries): one epoch is 2 steps of 10
    x = torch.randn(40, 13, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 2, (40,), generator=torch.Generator().manual_seed(1))

    def trained(settings, **kwargs):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="logreg"), num_features=13, num_classes=2)
        train_local(model, x, y, settings=settings, generator=torch.Generator().manual_seed(2),
                    strategy=FedAvg(), **kwargs)
        return flatten(model)

    planned = trained(LocalTraining(epochs=1, batch_size=10), planned_records=20)
    np.testing.assert_array_equal(planned, trained(LocalTraining(steps=2, batch_size=10)))
    assert not np.array_equal(planned, trained(LocalTraining(epochs=1, batch_size=10)))
