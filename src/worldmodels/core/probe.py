"""The latent probe of decoder-free agents (TD-MPC2, MuZero): how far the model's open-loop
latent drifts from the encoder's latent of the true observation (``Reporter``'s
``latent/distance``). It is a probe of the latent dynamics, not a prediction of observations."""

from __future__ import annotations

import numpy as np


def latent_distance(rolled: np.ndarray, encoded: np.ndarray, context: int) -> np.ndarray:
    """Normalised distance ``[B, T]`` between open-loop latents ``rolled`` and the encoder's
    latents ``encoded`` (both ``[B, T, ...]``; ``rolled`` equals ``encoded`` up to ``context``):

        d[b, t] = mean_i (rolled[b, t, i] - encoded[b, t, i])^2 / mean_{b, t, i} encoded^2

    i.e. the mean squared difference over the latent's elements divided by the mean squared
    element of the encoded latents over the whole batch (0 = on the encoder's latent, 1 = off
    by as much as a latent is large). Zero over the ``context`` steps."""
    rolled = np.asarray(rolled, np.float64)
    encoded = np.asarray(encoded, np.float64)
    B, T = encoded.shape[:2]
    diff = (rolled - encoded).reshape(B, T, -1)
    scale = max(float(np.mean(encoded**2)), 1e-12)
    dist = np.mean(diff**2, -1) / scale
    dist[:, :context] = 0.0
    return dist.astype(np.float32)
