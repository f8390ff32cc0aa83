"""World Models' ConvVAE: shapes, the KL floor and reconstruction term against hand-computed
values, gradients, and a short fit."""

import math

import numpy as np
import torch

from worldmodels.models.vae import ConvVAE, frames_to_input, output_to_frames, vae_loss


def test_shapes_and_layer_sizes():
    torch.manual_seed(0)
    vae = ConvVAE(z_dim=16, channels=3, depth=32)
    x = torch.rand(2, 3, 64, 64)
    x_hat, mu, logvar, z = vae(x)
    assert x_hat.shape == (2, 3, 64, 64)
    assert mu.shape == logvar.shape == z.shape == (2, 16)
    assert vae.mu.in_features == 2 * 2 * 256
    assert vae.fc.out_features == 1024
    assert [m.out_channels for m in vae.encoder if isinstance(m, torch.nn.Conv2d)] == [
        32,
        64,
        128,
        256,
    ]
    h = vae.fc(z).reshape(2, 1024, 1, 1)
    sizes = []
    for m in vae.decoder:
        h = m(h)
        if isinstance(m, torch.nn.ConvTranspose2d):
            sizes.append(h.shape[-1])
    assert sizes == [5, 13, 30, 64]
    assert x_hat.min() >= 0 and x_hat.max() <= 1
    # leading dims are flattened and restored; one channel works
    gray = ConvVAE(z_dim=8, channels=1, depth=8)
    mu, logvar = gray.encode(torch.rand(2, 3, 1, 64, 64))
    assert mu.shape == (2, 3, 8)
    assert gray.decode(mu).shape == (2, 3, 1, 64, 64)


def test_kl_closed_form_and_floor():
    x = torch.zeros(2, 3, 64, 64)
    Z = 4
    # mu = 1, logvar = 0 -> 0.5 nats per dim; mu = 0, var = 2 -> 0.5 * (1 - ln 2) per dim
    mu = torch.tensor([[1.0] * Z, [0.0] * Z])
    logvar = torch.tensor([[0.0] * Z, [math.log(2.0)] * Z])
    expected = [0.5 * Z, 0.5 * (1.0 - math.log(2.0)) * Z]
    _, parts = vae_loss(x, x, mu, logvar, kl_tolerance=0.0)
    assert math.isclose(parts["kl"].item(), sum(expected) / 2, rel_tol=1e-6)
    assert parts["recon"].item() == 0.0
    # floor 0.5 * Z = 2.0: the first sample sits at it, the second is raised to it
    loss, parts = vae_loss(x, x, mu, logvar, kl_tolerance=0.5)
    assert math.isclose(parts["kl"].item(), 2.0, rel_tol=1e-6)
    assert loss.item() == parts["kl"].item()
    # a KL far below the floor returns exactly the floor
    _, parts = vae_loss(x, x, torch.zeros(3, Z), torch.zeros(3, Z) + 1e-3, kl_tolerance=0.5)
    assert parts["kl"].item() == 0.5 * Z
    # above the floor: mu = 2 -> 2 nats per dim
    _, parts = vae_loss(x, x, torch.full((1, Z), 2.0), torch.zeros(1, Z), kl_tolerance=0.5)
    assert math.isclose(parts["kl"].item(), 2.0 * Z, rel_tol=1e-6)


def test_recon_is_hand_sum():
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 64, 64))
    y = rng.random((3, 2, 64, 64))
    per_sample = [
        sum(float((a - b) ** 2) for a, b in zip(x[i].ravel(), y[i].ravel())) for i in range(3)
    ]
    mu, logvar = torch.full((3, 5), 3.0), torch.zeros(3, 5)
    loss, parts = vae_loss(torch.tensor(x), torch.tensor(y), mu, logvar)
    assert math.isclose(parts["recon"].item(), sum(per_sample) / 3, rel_tol=1e-9)
    assert math.isclose(loss.item(), sum(per_sample) / 3 + 4.5 * 5, rel_tol=1e-9)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    vae = ConvVAE(z_dim=8, depth=8)
    x = torch.rand(2, 3, 64, 64)
    x_hat, mu, logvar, _ = vae(x)
    loss, _ = vae_loss(x, x_hat, mu, logvar, kl_tolerance=0.0)
    loss.backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_frame_conversion_round_trip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 5, 64, 64, 3), dtype=np.uint8)
    x = frames_to_input(frames)
    assert x.shape == (2, 5, 3, 64, 64) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert math.isclose(x[1, 2, 0, 3, 4].item(), frames[1, 2, 3, 4, 0] / 255.0, rel_tol=1e-6)
    back = output_to_frames(x)
    assert back.dtype == torch.uint8 and back.shape == frames.shape
    np.testing.assert_array_equal(back.numpy(), frames)
    np.testing.assert_array_equal(frames_to_input(torch.from_numpy(frames)).numpy(), x.numpy())
    clipped = output_to_frames(
        torch.tensor([-0.5, 0.5, 2.0]).reshape(1, 3, 1, 1).expand(1, 3, 64, 64)
    )
    assert clipped[0, 0, 0].tolist() == [0, 128, 255]


def test_short_fit_lowers_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # 8 frames of one black/white block pattern, each with one block flipped: far from the
    # untrained decoder's grey output, and learnable in a few steps
    blocks = np.repeat(rng.integers(0, 2, size=(1, 8, 8, 3), dtype=np.uint8) * 255, 8, axis=0)
    blocks[np.arange(8), rng.integers(0, 8, 8), rng.integers(0, 8, 8)] ^= 255
    frames = blocks.repeat(8, axis=1).repeat(8, axis=2)
    x = frames_to_input(frames)
    vae = ConvVAE(z_dim=8, depth=8)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        x_hat, mu, logvar, _ = vae(x)
        loss, _ = vae_loss(x, x_hat, mu, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
