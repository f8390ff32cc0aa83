"""Building blocks: normalised MLPs, conv encoder/decoder (DreamerV3 style, PyTorch)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def make_norm(kind: str, dim: int) -> nn.Module:
    """``rms`` | ``layer`` | ``none`` normalisation over the last dim (eps 1e-3 as DreamerV3)."""
    if kind == "rms":
        return nn.RMSNorm(dim, eps=1e-3)
    if kind == "layer":
        return nn.LayerNorm(dim, eps=1e-3)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; use rms, layer or none")


def make_act(kind: str) -> nn.Module:
    """``silu`` | ``elu`` | ``relu`` | ``tanh`` activation."""
    acts = {"silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}
    if kind not in acts:
        raise ValueError(f"unknown activation {kind!r}; use one of {sorted(acts)}")
    return acts[kind]()


def trunc_normal_init_(module: nn.Module, scale: float = 1.0) -> None:
    """Fan-in truncated normal init of Linear/Conv weights (DreamerV3 ``trunc_normal_in``)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            w = m.weight
            fan_in = (
                w[0].numel()
                if not isinstance(m, nn.ConvTranspose2d)
                else w.shape[0] * w[0, 0].numel()
            )
            std = scale * math.sqrt(1.0 / max(fan_in, 1)) / 0.87962566103423978
            nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Dense(nn.Sequential):
    """Linear -> norm -> activation (no bias when normalised)."""

    def __init__(self, inp: int, out: int, norm: str = "rms", act: str = "silu"):
        super().__init__(
            nn.Linear(inp, out, bias=norm == "none"), make_norm(norm, out), make_act(act)
        )


class MLP(nn.Module):
    """``layers`` x Dense(units); ``[..., inp] -> [..., units]`` (or ``inp`` when layers=0)."""

    def __init__(self, inp: int, units: int, layers: int, norm: str = "rms", act: str = "silu"):
        super().__init__()
        dims = [inp] + [units] * layers
        self.net = nn.Sequential(*[Dense(a, b, norm, act) for a, b in zip(dims[:-1], dims[1:])])
        self.out_dim = dims[-1]
        trunc_normal_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def image_to_float(x: Tensor) -> Tensor:
    """uint8 ``[..., H, W, C]`` -> float ``[..., C, H, W]`` in [-0.5, 0.5]."""
    return x.to(torch.float32).movedim(-1, -3) / 255.0 - 0.5


class ConvEncoder(nn.Module):
    """Strided convs (kernel 4, stride 2) down to 4x4; ``[B, H, W, C] uint8 -> [B, E]``."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        depth: int = 32,
        mults: tuple[int, ...] = (1, 2, 4, 8),
        norm: str = "rms",
        act: str = "silu",
    ):
        super().__init__()
        h, w, c = shape
        if h != w or h % (2 ** len(mults)) != 0:
            raise ValueError(
                f"image shape {shape} must be square and divisible by {2 ** len(mults)}"
            )
        layers: list[nn.Module] = []
        chans = c
        for m in mults:
            layers += [nn.Conv2d(chans, depth * m, 4, 2, 1, bias=norm == "none")]
            layers += [_ChannelNorm(norm, depth * m), make_act(act)]
            chans = depth * m
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.min_res = h // (2 ** len(mults))
        self.out_dim = chans * self.min_res**2
        trunc_normal_init_(self)

    def forward(self, image: Tensor) -> Tensor:
        lead = image.shape[:-3]
        x = image_to_float(image.reshape(-1, *image.shape[-3:]))
        return self.net(x).reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """Linear to 4x4, transposed convs to the image; ``[B, F] -> [B, H, W, C]`` in [-0.5, 0.5]."""

    def __init__(
        self,
        inp: int,
        shape: tuple[int, int, int],
        depth: int = 32,
        mults: tuple[int, ...] = (1, 2, 4, 8),
        norm: str = "rms",
        act: str = "silu",
    ):
        super().__init__()
        h, w, c = shape
        self.shape = shape
        self.min_res = h // (2 ** len(mults))
        chans = [depth * m for m in reversed(mults)]
        self.first = nn.Linear(inp, chans[0] * self.min_res**2)
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=norm == "none")]
            layers += [_ChannelNorm(norm, b), make_act(act)]
        layers += [nn.ConvTranspose2d(chans[-1], c, 4, 2, 1)]
        self.net = nn.Sequential(*layers)
        self.chans0 = chans[0]
        trunc_normal_init_(self)

    def forward(self, feat: Tensor) -> Tensor:
        lead = feat.shape[:-1]
        x = self.first(feat.reshape(-1, feat.shape[-1]))
        x = x.reshape(-1, self.chans0, self.min_res, self.min_res)
        x = self.net(x)
        return x.movedim(-3, -1).reshape(*lead, *self.shape)


class _ChannelNorm(nn.Module):
    """Normalise conv features over channels (DreamerV3 norms channels-last)."""

    def __init__(self, kind: str, chans: int):
        super().__init__()
        self.norm = make_norm(kind, chans)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)
