"""Resizing rgb frames to the agent's image size.

``resize(img, (H, W))`` uses Pillow when it is importable and a pure-numpy fallback otherwise.
The numpy path is separable: one weight matrix per axis, area averaging when shrinking and
linear interpolation when growing, so a 600x400 CartPole frame becomes 64x64 in a few ms.
"""

from __future__ import annotations

import functools

import numpy as np

try:  # Pillow is optional
    from PIL import Image as _PILImage
except ImportError:  # pragma: no cover - depends on the environment
    _PILImage = None


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Return ``img`` as uint8 ``(H, W, 3)``: gray is repeated, an alpha channel dropped."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.size and img.max() <= 1.0:
            img = img * 255.0
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"expected an image of shape (H, W[, C]), got {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] >= 4:
        img = img[:, :, :3]
    elif img.shape[2] != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {img.shape[2]}")
    return img


@functools.lru_cache(maxsize=64)
def _weights(n_in: int, n_out: int) -> np.ndarray:
    """Matrix ``(n_out, n_in)`` mapping an axis of length n_in to n_out (rows sum to 1)."""
    w = np.zeros((n_out, n_in), dtype=np.float32)
    if n_out <= n_in:
        # Area: output pixel j covers input interval [j*s, (j+1)*s) with s = n_in/n_out.
        s = n_in / n_out
        for j in range(n_out):
            lo, hi = j * s, (j + 1) * s
            i0, i1 = int(np.floor(lo)), min(int(np.ceil(hi)), n_in)
            for i in range(i0, i1):
                w[j, i] = min(hi, i + 1) - max(lo, i)
    else:
        # Linear interpolation between input pixel centres (edges clamped).
        pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        frac = pos - i0
        w[np.arange(n_out), i0] += 1.0 - frac
        w[np.arange(n_out), i1] += frac
    w /= w.sum(axis=1, keepdims=True)
    w.setflags(write=False)
    return w


def resize_numpy(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 ``(H, W, C)`` to ``(size[0], size[1], C)`` with numpy only."""
    h, w = int(size[0]), int(size[1])
    if img.shape[:2] == (h, w):
        return np.ascontiguousarray(img)
    wh = _weights(img.shape[0], h)
    ww = _weights(img.shape[1], w)
    x = img.astype(np.float32)
    x = np.tensordot(wh, x, axes=(1, 0))  # (h, W, C)
    x = np.tensordot(ww, x, axes=(1, 1)).transpose(1, 0, 2)  # (h, w, C)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def resize_pil(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 ``(H, W, 3)`` with Pillow (bilinear, antialiased when shrinking)."""
    if _PILImage is None:
        raise ImportError("Pillow is not installed")
    h, w = int(size[0]), int(size[1])
    if img.shape[:2] == (h, w):
        return np.ascontiguousarray(img)
    out = _PILImage.fromarray(img).resize((w, h), _PILImage.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def resize(img: np.ndarray, size: tuple[int, int], backend: str = "auto") -> np.ndarray:
    """Resize an rgb frame to uint8 ``(size[0], size[1], 3)``; ``size`` is ``(height, width)``.

    ``backend``: ``'auto'`` (Pillow if importable, else numpy), ``'pil'`` or ``'numpy'``.
    """
    img = to_rgb(img)
    if backend == "auto":
        backend = "pil" if _PILImage is not None else "numpy"
    if backend == "pil":
        return resize_pil(img, size)
    if backend == "numpy":
        return resize_numpy(img, size)
    raise ValueError(f"unknown resize backend {backend!r}; use 'auto', 'pil' or 'numpy'")
