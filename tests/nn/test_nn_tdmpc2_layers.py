"""SimNorm, the batched Q ensemble and the random-shift augmentation against per-piece loops."""

import pytest
import torch
import torch.nn.functional as F

from worldmodels.nn.layers import EnsembleMLP, SimNorm, mish, normed_mlp, random_shift


def test_simnorm_rows_sum_to_one_per_group():
    x = torch.randn(4, 7, 64) * 5
    y = SimNorm(8)(x)
    groups = y.reshape(4, 7, 8, 8)
    assert (groups >= 0).all()
    torch.testing.assert_close(groups.sum(-1), torch.ones(4, 7, 8))
    for g in range(8):  # each group is its own softmax, independent of the others
        expected = torch.softmax(x[..., 8 * g : 8 * (g + 1)], -1)
        torch.testing.assert_close(y[..., 8 * g : 8 * (g + 1)], expected)
    with pytest.raises(ValueError, match="multiple of 8"):
        SimNorm(8)(torch.randn(2, 12))


EXTREMES = [-1e4, -100.0, -30.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 19.9, 20.1, 50.0, 1e4]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mish_equals_torch_mish_and_its_gradient(dtype):
    """The single-exp form n / (n + 2) and its closed-form backward against F.mish (torch's
    own kernel and autograd), on a wide range and at the extremes; no inf or NaN."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(4096, dtype=dtype) * 6, torch.tensor(EXTREMES, dtype=dtype)])
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 0}
    with torch.no_grad():
        torch.testing.assert_close(mish(x), F.mish(x), **tol)
    ours, ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y = mish(ours)
    torch.testing.assert_close(y, F.mish(ref), **tol)
    w = torch.randn_like(x)
    (y * w).sum().backward()
    (F.mish(ref) * w).sum().backward()
    assert torch.isfinite(ours.grad).all()
    torch.testing.assert_close(ours.grad, ref.grad, **tol)
    if dtype == torch.float64:
        small = (torch.randn(32, dtype=dtype) * 4).requires_grad_(True)
        assert torch.autograd.gradcheck(mish, (small,))


def _member(ens: EnsembleMLP, i: int, x: torch.Tensor) -> torch.Tensor:
    """Member i computed alone with F.linear / F.layer_norm / mish."""
    h = x
    for k in range(len(ens.weight)):
        h = F.linear(h, ens.weight[k][i].T, ens.bias[k][i, 0])
        if k < len(ens.hidden):
            h = F.layer_norm(h, h.shape[-1:], ens.norm_weight[k][i, 0], ens.norm_bias[k][i, 0])
            h = h * torch.tanh(F.softplus(h))
    return h


def test_ensemble_matches_independent_members():
    torch.manual_seed(0)
    ens = EnsembleMLP(3, 5, [16, 16], 4, dropout=0.5).eval()  # eval: no dropout
    with torch.no_grad():  # non-trivial norm and output parameters
        for p in ens.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 6, 5)
    out = ens(x)
    assert out.shape == (3, 2, 6, 4)
    for i in range(3):
        torch.testing.assert_close(out[i], _member(ens, i, x), rtol=1e-5, atol=1e-5)
    pair = torch.tensor([2, 0])
    torch.testing.assert_close(ens(x, members=pair), out[pair])


def test_ensemble_detach_sends_gradient_to_inputs_only():
    ens = EnsembleMLP(2, 3, [8], 2)
    x = torch.randn(4, 3, requires_grad=True)
    ens(x, detach=True).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in ens.parameters())
    ens(x).sum().backward()
    assert all(p.grad is not None for p in ens.parameters())


def test_normed_mlp_zero_output_and_simnorm_head():
    head = normed_mlp(5, [8, 8], 11, zero_out=True)
    assert torch.equal(head(torch.randn(3, 5)), torch.zeros(3, 11))
    enc = normed_mlp(5, [8], 16, SimNorm(8))
    torch.testing.assert_close(enc(torch.randn(3, 5)).reshape(3, 2, 8).sum(-1), torch.ones(3, 2))


def test_random_shift_is_a_crop_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 10, 10, generator=g)
    assert torch.equal(random_shift(images, 0), images)
    out = random_shift(images, 2, generator=g)
    padded = F.pad(images, (2, 2, 2, 2), mode="replicate")
    crops = [[padded[:, :, dy : dy + 10, dx : dx + 10] for dx in range(5)] for dy in range(5)]
    for n in range(6):
        assert any(torch.equal(out[n], row[dx][n]) for row in crops for dx in range(5))
    assert not all(torch.equal(out[n], images[n]) for n in range(6))
