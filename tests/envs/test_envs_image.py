"""Frame resizing: numpy and Pillow paths agree, shapes and dtypes are right."""

import numpy as np
import pytest

from worldmodels.envs import image


def test_numpy_resize_shapes_and_constant():
    frame = np.full((400, 600, 3), 77, np.uint8)
    out = image.resize(frame, (64, 64), backend="numpy")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and (out == 77).all()
    up = image.resize(np.full((8, 8, 3), 5, np.uint8), (20, 30), backend="numpy")
    assert up.shape == (20, 30, 3) and (up == 5).all()


def test_numpy_area_average():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[:2, :2] = 200  # top-left block
    out = image.resize(frame, (2, 2), backend="numpy")
    assert out[0, 0].tolist() == [200] * 3 and out[1, 1].tolist() == [0] * 3
    half = image.resize(np.repeat(np.array([[0, 100, 200]], np.uint8), 3, 0), (3, 1), "numpy")
    assert half[:, 0, 0].tolist() == [100] * 3


def test_gray_and_alpha():
    assert image.to_rgb(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert image.to_rgb(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)


def test_backends_agree_on_smooth_image():
    pytest.importorskip("PIL")
    yy, xx = np.mgrid[0:400, 0:600]
    frame = np.stack([xx * 255 // 599, yy * 255 // 399, (xx + yy) * 255 // 998], -1)
    frame = frame.astype(np.uint8)
    a = image.resize(frame, (64, 64), backend="numpy").astype(int)
    b = image.resize(frame, (64, 64), backend="pil").astype(int)
    assert np.abs(a - b).mean() < 2.0


def test_bad_backend():
    with pytest.raises(ValueError, match="backend"):
        image.resize(np.zeros((4, 4, 3), np.uint8), (2, 2), backend="cv2")


def test_auto_without_pillow(monkeypatch):
    monkeypatch.setattr(image, "_PILImage", None)
    frame = np.random.default_rng(0).integers(0, 255, (400, 600, 3)).astype(np.uint8)
    out = image.resize(frame, (64, 64))
    np.testing.assert_array_equal(out, image.resize_numpy(frame, (64, 64)))
