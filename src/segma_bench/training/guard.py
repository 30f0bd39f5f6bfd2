"""The NaN guard: a non-finite loss stops training, and nothing of that epoch is saved, so the previous
epoch's checkpoint stays intact.

Looking at a loss on the host waits for the device. On the CPU that costs nothing and every step is
checked, naming the loss terms of the step that failed. On a GPU the steps only record, on the device,
the first step whose loss was not finite; the host looks every `CHECK_EVERY["cuda"]` steps and at the
end of the epoch, before its checkpoint is written. Training may run a few steps past a NaN, but those
steps are thrown away with the rest of the epoch: the promise above holds either way."""
import torch

from segma_bench.core.errors import UserError

CHECK_EVERY = {"cpu": 1, "cuda": 100}


class NonFiniteLossError(UserError, FloatingPointError):
    pass


class NonFiniteGuard:
    def __init__(self, epoch, device, check_every=None):
        self.epoch, self.device = epoch, torch.device(device)
        self.check_every = check_every or CHECK_EVERY.get(self.device.type, 1)
        self.postfix_every = max(20, self.check_every)  # the progress bar's loss values wait for the device too
        self.first_bad_step = None if self.check_every == 1 else torch.full((), -1, device=self.device)

    def observe(self, step, terms):
        loss = terms["loss"].detach()
        if self.check_every == 1:
            if not torch.isfinite(loss):
                self._raise(step, f": { {k: v.item() for k, v in terms.items()} }")
            return
        newly_bad = ~torch.isfinite(loss) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(newly_bad, step, self.first_bad_step)  # stays on the device
        if (step + 1) % self.check_every == 0:
            self.check()

    def check(self):
        if self.first_bad_step is not None and self.first_bad_step.item() >= 0:
            self._raise(self.first_bad_step.item(), "")

    def _raise(self, step, terms_text):
        epoch = self.epoch
        raise NonFiniteLossError(
            f"non-finite loss at epoch {epoch + 1}, step {step}{terms_text}. Nothing of this epoch was saved"
            + (f"; the checkpoint of epoch {epoch} is intact" if epoch else "") + ". Try a lower "
            "learning rate (--set learning_rate=...) or stronger clipping (--set grad_clip_norm=...).")
