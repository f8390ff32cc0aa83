"""Open-loop video grids and their MP4/GIF encoding."""

import numpy as np
import pytest

from worldmodels.viz.video import CONTEXT, FUTURE, IMAGINED, gif_bytes, grid_frames, mp4_bytes

iio = pytest.importorskip("imageio.v3")


def test_grid_frames_by_hand():
    """3 rows x 2 sequences of 1x1 gray tiles, 2 steps, context 1, pad 1, 2-pixel timeline."""
    rows = [np.full((2, 2, 1, 1, 1), 10 * (r + 1), np.uint8) for r in range(3)]  # [S, T, ...]
    for r in rows:
        r[1] += 5  # sequence 1 differs from sequence 0
    frames = grid_frames(rows, context=1, pad=1, cell=2)
    assert frames.shape == (2, 3 * 3 + 2, 2 * 3, 3)  # 3 rows of 3 px, timeline of one line
    for t, colour in enumerate([CONTEXT, IMAGINED]):
        f = frames[t]
        for r in range(3):
            for s in range(2):
                tile = f[3 * r : 3 * r + 3, 3 * s : 3 * s + 3]
                expected = np.broadcast_to(colour, (3, 3, 3)).copy()
                expected[1, 1] = 10 * (r + 1) + 5 * s
                np.testing.assert_array_equal(tile, expected)
        timeline = f[9:]
        np.testing.assert_array_equal(timeline[:, 0:2], np.broadcast_to(CONTEXT, (2, 2, 3)))
        second = IMAGINED if t == 1 else FUTURE
        np.testing.assert_array_equal(timeline[:, 2:4], np.broadcast_to(second, (2, 2, 3)))
        assert not timeline[:, 4:].any()


def test_grid_wraps_the_timeline_and_converts_channels():
    """More steps than timeline cells on a line wrap onto a second line; 2 channels show their
    maximum in gray; no two frames are alike even when the images do not change."""
    rows = [np.zeros((1, 5, 2, 2, 2), np.uint8)] * 3
    rows[0] = rows[0].copy()
    rows[0][..., 1] = 7
    frames = grid_frames(rows, context=2, pad=0, cell=1)
    assert frames.shape == (5, 3 * 2 + 3, 2, 3)  # 2 cells a line: 3 lines for 5 steps
    assert (frames[:, :2, :2] == 7).all()
    assert all(not np.array_equal(frames[t], frames[t + 1]) for t in range(4))


def test_mp4_and_gif_round_trip():
    frames = np.random.default_rng(0).integers(0, 255, (6, 11, 8, 3), dtype=np.uint8)
    mp4 = mp4_bytes(frames, fps=5)
    video = iio.imread(mp4, extension=".mp4", index=None)
    assert video.shape == (6, 12, 8, 3)  # odd height padded to even
    assert iio.immeta(mp4, extension=".mp4")["duration"] > 0
    gif = gif_bytes(frames, fps=5)
    anim = iio.imread(gif, extension=".gif", index=None)
    assert anim.shape == (6, 11, 8, 3)
    assert iio.immeta(gif, extension=".gif")["duration"] == 200
