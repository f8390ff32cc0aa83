"""Mixed precision: matrix products in bfloat16, parameters, states and losses in float32.

The ``precision`` setting of Dreamer and PlaNet: ``fp32`` computes everything in float32;
``bf16`` runs the agent's ``act``
and ``update`` under ``torch.autocast(dtype=bfloat16)``; ``auto`` is ``bf16`` where the device
multiplies bfloat16 natively (CUDA with bf16 support; a CPU with AMX or AVX512-BF16) and
``fp32`` elsewhere, where emulated bf16 would be slower than float32. Networks cast their
outputs back to float32 (distribution parameters, recurrent states), so sampling, losses and
the optimiser run in float32 as in the reference implementations' mixed-precision policies.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import UserError

CHOICES = ("auto", "fp32", "bf16")


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        amx = getattr(cpu, "_is_amx_tile_supported", lambda: False)()
        avx = getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
        return bool(amx or avx)
    return False


def compute_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """A ``precision`` setting on ``device`` -> the dtype matrix products run in."""
    device = torch.device(device)
    if precision not in CHOICES:
        raise UserError(f"precision={precision!r} is unknown; choose one of {', '.join(CHOICES)}")
    if precision == "fp32" or (precision == "auto" and not fast_bf16(device)):
        return torch.float32
    return torch.bfloat16


class Precision:
    """Callable giving the agent's autocast context: ``with self.precision(): ...``."""

    def __init__(self, precision: str, device: torch.device | str, cache: bool = True):
        self.device = torch.device(device)
        self.dtype = compute_dtype(precision, self.device)
        self.cache = cache
        """Autocast's cache of cast weights; off under CUDA-graph capture (PyTorch's rule)."""

    @property
    def enabled(self) -> bool:
        return self.dtype != torch.float32

    def __call__(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=self.cache)
