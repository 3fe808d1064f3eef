"""DP-SGD inside a hospital, with Opacus: per-sample gradients (GradSampleModule),
per-sample clipping and Gaussian noise (DPOptimizer), Poisson batches
(UniformWithReplacementSampler), and the hospital's own accountant fed by the
optimizer's step hook — so the ε reported is exactly what was run."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

from fedray.models import loss_fn
from fedray.strategies.base import ClientRound, Strategy

if TYPE_CHECKING:
    from opacus.accountants import IAccountant

    from fedray.audit.gradient_canary import GradientCanaries


class DPSGDTrainer:
    """One per actor: wraps the actor's model once; hospitals bring their own state."""

    def __init__(self, model: nn.Module, *, clip: float, batch_size: int, lr: float) -> None:
        from opacus import GradSampleModule

        self.model = GradSampleModule(model)
        self.clip, self.batch_size, self.lr = clip, batch_size, lr

    def train(
        self, x: torch.Tensor, y: torch.Tensor, *, noise_multiplier: float, sample_rate: float,
        steps: int, sampling_generator: torch.Generator, noise_generator: torch.Generator,
        accountant: IAccountant, strategy: Strategy, round_: ClientRound, secure_mode: bool = False,
        planned_records: int | None = None, gradient_canaries: GradientCanaries | None = None,
        canary_generator: torch.Generator | None = None,
    ) -> float:
        """Runs ``steps`` DP-SGD steps in place; the accountant records each one. The
        strategy's gradient terms (FedProx, SCAFFOLD) are added after Opacus has
        clipped and noised the per-sample gradients: they depend on no record.

        ``gradient_canaries`` (the record-level audit, fedray/audit/gradient_canary.py):
        at every step each in-canary joins the Poisson batch with probability
        ``sample_rate``, drawn from ``canary_generator`` (its own stream: the batches and
        the noise are drawn exactly as without canaries), and its Dirac per-sample
        gradient is clipped, summed and noised with the records'. A step whose data batch
        is empty still steps (as without canaries). Without canaries nothing changes."""
        from opacus.optimizers import DPOptimizer

        canaries: tuple[GradientCanaries, torch.Generator] | None = None
        if gradient_canaries is not None:
            if canary_generator is None:
                raise ValueError("gradient canaries need a canary_generator to draw who joins")
            canaries = (gradient_canaries, canary_generator)

        self.model.train()
        params = list(self.model.parameters())
        optimizer = DPOptimizer(
            torch.optim.SGD(params, lr=self.lr),
            noise_multiplier=noise_multiplier, max_grad_norm=self.clip,
            # the mean's denominator is q·n: the batch size, or the whole hospital when
            # q is capped at 1 for a hospital smaller than a batch. n is the planned count
            # (a constant of the mechanism): audit canaries added to the records must not
            # change it, or the output's scale would depend on how many are in.
            expected_batch_size=max(1, round(sample_rate * (planned_records or len(y)))),
            generator=noise_generator, secure_mode=secure_mode,
        )
        optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
        losses = []
        for batch in poisson_batches(len(y), sample_rate=sample_rate, steps=steps,
                                     generator=sampling_generator):
            batch = batch.to(x.device)
            optimizer.zero_grad(set_to_none=True)
            with warnings.catch_warnings():  # an empty Poisson batch is legitimate
                warnings.simplefilter("ignore")
                loss = loss_fn(self.model(x[batch]), y[batch])
                loss.backward()
                if canaries is not None:
                    _add_canaries(self.model, *canaries, sample_rate=sample_rate)
                if not optimizer.pre_step():  # clip, noise, average (Opacus)
                    continue
            extra = strategy.gradient_terms(params, round_)
            if extra is not None:
                for p, term in zip(params, extra):
                    p.grad = p.grad + term
            optimizer.original_optimizer.step()
            if len(batch):
                losses.append(float(loss.detach()))
        return sum(losses) / max(len(losses), 1)


def _add_canaries(model: nn.Module, canaries: GradientCanaries, generator: torch.Generator,
                  *, sample_rate: float) -> None:
    """This step's joining in-canaries, appended to the per-sample gradients."""
    from fedray.audit.gradient_canary import append_dirac_gradients, canaries_joining

    joining = canaries_joining(canaries, sample_rate=sample_rate, generator=generator)
    append_dirac_gradients(model, canaries, joining)


def poisson_batches(
    num_records: int, *, sample_rate: float, steps: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Each record joins each batch independently with probability ``sample_rate``."""
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    sampler = UniformWithReplacementSampler(
        num_samples=num_records, sample_rate=sample_rate, generator=generator, steps=steps
    )
    for indices in sampler:
        yield torch.as_tensor(indices, dtype=torch.long)
