"""The "V" model of World Models (Ha & Schmidhuber 2018, Sec. 2.1 and Appendix A.1): a
convolutional VAE that compresses each 64x64 frame into a latent vector z.

Architecture and loss follow the reference `ConvVAE` (hardmaru/WorldModelsExperiments,
``doomrnn/doomrnn.py``):

    encoder   4 convs (kernel 4, stride 2, no padding; depth*(1, 2, 4, 8) channels; ReLU)
              64 -> 31 -> 14 -> 6 -> 2, flatten 2*2*8*depth -> Linear mu, Linear logvar
    decoder   Linear z -> 32*depth as a 1x1 map, 4 transposed convs
              (5/2, 5/2, 6/2 with ReLU; 6/2 with sigmoid): 1 -> 5 -> 13 -> 30 -> 64
    loss      sum of squared pixel errors + KL(q(z|x) || N(0, I)) floored at
              kl_tolerance * z_dim ("free bits"), both averaged over the batch

Frames enter as float ``[..., C, 64, 64]`` in [0, 1]; `frames_to_input` and `output_to_frames`
convert from and to the environments' uint8 ``[..., 64, 64, C]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

SIZE = 64
"""Frame height and width the architecture is built for."""


def frames_to_input(
    frames: np.ndarray | Tensor, device: torch.device | str | None = None
) -> Tensor:
    """uint8 ``[..., 64, 64, C]`` (numpy or torch) -> float32 ``[..., C, 64, 64]`` in [0, 1] on
    ``device`` (the uint8 frames are moved, a quarter of the bytes of the floats)."""
    x = torch.as_tensor(frames, device=device)
    return x.to(torch.float32).movedim(-1, -3) / 255.0


def output_to_frames(x: Tensor) -> Tensor:
    """float ``[..., C, 64, 64]`` in [0, 1] (e.g. `ConvVAE.decode`) -> uint8 ``[..., 64, 64, C]``;
    values outside [0, 1] are clipped."""
    return (x.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).movedim(-3, -1)


class ConvVAE(nn.Module):
    """Convolutional VAE of World Models (reference ``ConvVAE``); see the module docstring."""

    def __init__(self, z_dim: int = 64, channels: int = 3, depth: int = 32):
        super().__init__()
        self.z_dim, self.channels, self.depth = z_dim, channels, depth
        d = depth
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, d, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(d, 2 * d, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(2 * d, 4 * d, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(4 * d, 8 * d, 4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        flat = 8 * d * 2 * 2
        self.mu = nn.Linear(flat, z_dim)
        self.logvar = nn.Linear(flat, z_dim)
        self.fc = nn.Linear(z_dim, 32 * d)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32 * d, 4 * d, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(4 * d, 2 * d, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * d, d, 6, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(d, channels, 6, stride=2),
            nn.Sigmoid(),
        )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """float ``[..., C, 64, 64]`` in [0, 1] -> (mu, logvar), each ``[..., z_dim]``."""
        lead = x.shape[:-3]
        h = self.encoder(x.reshape(-1, *x.shape[-3:]))
        return self.mu(h).reshape(*lead, self.z_dim), self.logvar(h).reshape(*lead, self.z_dim)

    def decode(self, z: Tensor) -> Tensor:
        """``[..., z_dim]`` -> float ``[..., C, 64, 64]`` in (0, 1) (sigmoid output)."""
        lead = z.shape[:-1]
        h = self.fc(z.reshape(-1, self.z_dim)).reshape(-1, 32 * self.depth, 1, 1)
        return self.decoder(h).reshape(*lead, self.channels, SIZE, SIZE)

    @staticmethod
    def sample(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised z = mu + exp(logvar / 2) * eps, eps ~ N(0, I); same shape as mu."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``[..., C, 64, 64]`` -> (x_hat ``[..., C, 64, 64]``, mu, logvar, z ``[..., z_dim]``),
        decoding a reparameterised sample z of q(z|x)."""
        mu, logvar = self.encode(x)
        z = self.sample(mu, logvar)
        return self.decode(z), mu, logvar, z


def vae_loss(
    x: Tensor, x_hat: Tensor, mu: Tensor, logvar: Tensor, kl_tolerance: float = 0.5
) -> tuple[Tensor, dict[str, Tensor]]:
    """Reference ConvVAE loss; ``x, x_hat [B, C, H, W]``, ``mu, logvar [B, Z]``.

    recon = mean_B sum_{C,H,W} (x - x_hat)^2
    kl    = mean_B max(-0.5 * sum_Z (1 + logvar - mu^2 - exp(logvar)), kl_tolerance * Z)
    loss  = recon + kl

    Returns ``(loss, {"recon": recon, "kl": kl})``, all scalars; the floor means the KL gets no
    gradient for samples whose KL is under ``kl_tolerance`` nats per latent dimension.
    """
    recon = (x - x_hat).square().sum(dim=(-3, -2, -1)).mean()
    kl = -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).sum(dim=-1)
    kl = kl.clamp(min=kl_tolerance * mu.shape[-1]).mean()
    return recon + kl, {"recon": recon, "kl": kl}
