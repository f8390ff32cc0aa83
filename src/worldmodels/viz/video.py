"""Open-loop videos: grids of truth | model | error frames, written as MP4 and GIF bytes.

The encoders (``imageio`` with ``imageio-ffmpeg`` for MP4, Pillow for GIF) are the ``viz``
extra and are imported only when a video is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import MissingExtraError

CONTEXT = np.array([60, 180, 75], np.uint8)
"""Frame and timeline colour of the observed (context) steps: green."""
IMAGINED = np.array([230, 25, 75], np.uint8)
"""Frame and timeline colour of the imagined steps: red."""
FUTURE = np.array([40, 40, 40], np.uint8)
"""Timeline cells of the steps still to come: dark grey."""


def to_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 ``[..., H, W, C]`` -> ``[..., H, W, 3]``: 3 channels as they are, 1 repeated, any
    other count (stacked frames, object planes) as the maximum over channels in grey."""
    images = np.asarray(images, np.uint8)
    c = images.shape[-1]
    if c == 3:
        return images
    gray = images if c == 1 else images.max(-1, keepdims=True)
    return np.repeat(gray, 3, -1)


def grid_frames(
    rows: Sequence[np.ndarray], context: int, pad: int = 2, cell: int = 4
) -> np.ndarray:
    """One video frame per time step from ``rows`` (e.g. truth, model, error), each uint8
    ``[S, T, H, W, C]`` for S sequences: frames uint8 ``[T, R * (H + 2 pad) + strip,
    S * (W + 2 pad), 3]``. Row r, column s holds ``rows[r][s, t]`` framed by ``pad`` pixels of
    :data:`CONTEXT` colour for ``t < context`` and :data:`IMAGINED` after. Beneath, a timeline
    strip: one ``cell`` x ``cell`` square per step (wrapped onto more lines when needed), the
    steps up to t in their phase colour and the rest :data:`FUTURE`, so no two frames are
    alike."""
    tiles = np.stack([to_rgb(r) for r in rows])  # [R, S, T, H, W, 3]
    R, S, T, H, W, _ = tiles.shape
    th, tw = H + 2 * pad, W + 2 * pad
    width = S * tw
    per_line = max(1, width // cell)
    strip = -(-T // per_line) * cell
    frames = np.zeros((T, R * th + strip, width, 3), np.uint8)
    phase = np.where(np.arange(T)[:, None] < context, CONTEXT, IMAGINED)  # [T, 3]
    for r in range(R):
        for s in range(S):
            y, x = r * th, s * tw
            frames[:, y : y + th, x : x + tw] = phase[:, None, None]
            frames[:, y + pad : y + pad + H, x + pad : x + pad + W] = tiles[r, s]
    timeline = np.zeros((strip, width, 3), np.uint8)
    for t in range(T):
        y, x = (t // per_line) * cell, (t % per_line) * cell
        timeline[y : y + cell, x : x + cell] = FUTURE
    for t in range(T):
        y, x = (t // per_line) * cell, (t % per_line) * cell
        timeline[y : y + cell, x : x + cell] = phase[t]
        frames[t, R * th :] = timeline
    return frames


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad ``[T, H, W, 3]`` with black to even H and W (H.264 in yuv420p needs them)."""
    _, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))


def mp4_bytes(frames: np.ndarray, fps: float = 10.0) -> bytes:
    """H.264 MP4 of uint8 frames ``[T, H, W, 3]`` (odd sizes padded by one black pixel)."""
    try:
        import imageio.v3 as iio
        import imageio_ffmpeg  # noqa: F401 (the MP4 encoder imageio uses)
    except ImportError as e:
        raise MissingExtraError("writing MP4 video", "viz", e.name or "imageio-ffmpeg") from None
    return iio.imwrite("<bytes>", _even(frames), extension=".mp4", fps=fps, macro_block_size=1)


def gif_bytes(frames: np.ndarray, fps: float = 10.0) -> bytes:
    """Looping GIF of uint8 frames ``[T, H, W, 3]``."""
    try:
        import imageio.v3 as iio
        import PIL  # noqa: F401 (the GIF encoder imageio uses)
    except ImportError as e:
        raise MissingExtraError("writing GIF video", "viz", e.name or "imageio") from None
    return iio.imwrite("<bytes>", frames, extension=".gif", duration=1000.0 / fps, loop=0)
