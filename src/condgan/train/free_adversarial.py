"""FastGAN's step strategy: free adversarial training of D on real images, one fake batch per D iteration.

Per D iteration: one real batch x_r (augmented as usual) and one fake batch x_f = G(z, y_f), then
``robust.replays`` (m) times, on the same x_r and x_f:

    x_adv = clamp(x_r + delta, -1, 1)                     a leaf that requires grad
    one D pass and ONE backward of the D loss             gives D's grads and g = dL/dx_adv together
    delta <- clamp(delta + tau * sign(g), -eps, eps)      ascent on D's loss: the next replay is harder
    D optimiser step                                      so m D steps per D iteration

delta [B, C, H, W] belongs to the batch slots: it is created once (``robust.delta_init``), never reset,
carried across replays, iterations and batches, and saved in every checkpoint. Under torchrun each rank
holds the rows of its share of the batch; checkpoints hold the whole [B, C, H, W] (gathered), so a run
resumes with any number of processes. The sampler's batches all
have the same size (the incomplete tail of an epoch is dropped), so every batch fits it.
The reference code back-propagates the real and the fake loss separately; D has no batch statistics, so
one pass over [x_adv; x_f] gives the same D gradients and the same dL/dx_adv at half the launches
(tests/test_free_adversarial.py checks this against the two-pass form).
"""
from __future__ import annotations

import torch

from ..config import Config
from ..data import BatchSampler
from ..distributed import all_gather_cat
from .checkpoint import CheckpointError
from .perturbation import ascend, initial_delta, perturb
from .precision import Precision
from .strategy import Models, StandardStrategy


class FreeAdversarialStrategy(StandardStrategy):
    """n_dis D iterations of ``robust.replays`` free adversarial D steps each, then one G step."""

    def __init__(self, cfg: Config, models: Models, sampler: BatchSampler, num_classes: int,
                 precision: Precision | None = None) -> None:
        super().__init__(cfg, models, sampler, num_classes, precision)
        self.robust = cfg.robust
        # Drawn whole from the latent stream (alike on every rank), then this rank's rows.
        whole = initial_delta((sampler.batch_size, *sampler.image_shape), self.robust.epsilon,
                              self.robust.delta_init, sampler.device, self.noise)
        self.delta = whole[self.world.shard(sampler.batch_size)].clone()

    def d_step(self, step: int) -> dict[str, torch.Tensor]:
        r = self.robust
        x_real, y_real = self.real_batch()
        x_fake, y_fake, z = self.fakes(x_real.shape[0], x_real.device)  # one G forward, reused by every replay
        for _ in range(r.replays):
            x_adv = perturb(x_real, self.delta).requires_grad_(True)
            losses = self.d_update(step, x_adv, y_real, x_fake, y_fake, z)
            grad = x_adv.grad
            if self.precision.mode == "fp16":  # an overflowed scaled gradient (the scaler skips that step)
                grad = grad.nan_to_num(0.0)
            self.delta = ascend(self.delta, grad, r.step_size, r.epsilon)
        losses["d_delta_abs"] = self.delta.abs().mean()  # how much of the eps ball the perturbation uses
        return losses

    def state_dict(self) -> dict:
        """Collective under torchrun (gathers every rank's rows of delta)."""
        return {**super().state_dict(), "delta": all_gather_cat(self.delta).cpu()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        delta = state.get("delta")
        if delta is None:
            raise CheckpointError("checkpoint has no free-adversarial perturbation 'strategy.delta' to resume from")
        whole = (self.sampler.batch_size, *self.delta.shape[1:])
        if tuple(delta.shape) != whole:
            raise CheckpointError(f"checkpoint perturbation 'strategy.delta' has shape {tuple(delta.shape)}, "
                                  f"this run needs {whole}")
        rows = self.world.shard(self.sampler.batch_size)
        self.delta = delta[rows].to(self.delta.device, self.delta.dtype).clone()
