"""Learning-rate schedulers. Each computes the rate for step t in closed form from the
optimiser's rate at construction (``base_lr``) and writes it to ``optimizer.lr``.

Use: build the scheduler after the optimiser, call ``optimizer.step()`` for each batch (or
epoch) and then ``scheduler.step()``.
"""
import math


class LRScheduler:
    """Base class: ``get_lr()`` is the rate for the current step count ``last_step``."""

    def __init__(self, optimizer):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} has no 'lr' attribute")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_step = 0
        optimizer.lr = self.get_lr()

    def lr_at(self, step):
        """The learning rate after ``step`` calls to :meth:`step`."""
        raise NotImplementedError()

    def get_lr(self):
        """The learning rate for the current step."""
        return self.lr_at(self.last_step)

    def step(self):
        """Advance one step and set ``optimizer.lr``; returns the new rate."""
        self.last_step += 1
        self.optimizer.lr = self.get_lr()
        return self.optimizer.lr


class StepLR(LRScheduler):
    """``base_lr * gamma ** (t // step_size)``: decay by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, step):
        return self.base_lr * self.gamma ** (step // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2`` for t <= T_max, then ``eta_min``."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, step):
        t = min(step, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearWarmup(LRScheduler):
    """Rise linearly from ``start_factor * base_lr`` at step 0 to ``base_lr`` at ``warmup_steps``, then hold.

    ``lr = base_lr * (start_factor + (1 - start_factor) * min(t, warmup_steps) / warmup_steps)``.
    """

    def __init__(self, optimizer, warmup_steps, start_factor=0.1):
        if warmup_steps < 1:
            raise ValueError(f"LinearWarmup: warmup_steps must be >= 1, got {warmup_steps}")
        if not 0.0 <= start_factor <= 1.0:
            raise ValueError(f"LinearWarmup: start_factor must be in [0, 1], got {start_factor}")
        self.warmup_steps, self.start_factor = warmup_steps, start_factor
        super().__init__(optimizer)

    def lr_at(self, step):
        fraction = min(step, self.warmup_steps) / self.warmup_steps
        return self.base_lr * (self.start_factor + (1 - self.start_factor) * fraction)
