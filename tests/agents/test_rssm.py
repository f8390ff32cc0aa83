"""RSSM: sequence filtering equals step-by-step filtering; is_first resets the state."""

import torch

from worldmodels.models import RSSM


def _rssm():
    torch.manual_seed(0)
    return RSSM(action_dim=3, embed_dim=5, deter=16, hidden=8, stoch=4, classes=4, blocks=2)


def test_observe_matches_obs_step_loop():
    rssm = _rssm()
    B, T = 2, 6
    embed, action = torch.randn(B, T, 5), torch.randn(B, T, 3)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[1, 3] = True
    torch.manual_seed(1)
    post, prior = rssm.observe(embed, action, is_first)
    torch.manual_seed(1)
    state = rssm.initial(B)
    for t in range(T):
        state = rssm.obs_step(state, action[:, t], embed[:, t], is_first[:, t])
        torch.testing.assert_close(state["deter"], post["deter"][:, t])
        torch.testing.assert_close(state["stoch"], post["stoch"][:, t])
    torch.testing.assert_close(prior, rssm.prior_stats(post["deter"]))


def test_is_first_forgets_the_past():
    rssm = _rssm()
    embed, action = torch.randn(1, 5), torch.randn(1, 3)
    first = torch.ones(1, dtype=torch.bool)
    a = rssm.obs_step(rssm.initial(1), action, embed, first, sample=False)
    busy = {"deter": torch.randn(1, 16), "stoch": torch.eye(4)[torch.tensor([[0, 1, 2, 3]])]}
    b = rssm.obs_step(busy, torch.randn(1, 3), embed, first, sample=False)
    torch.testing.assert_close(a["deter"], b["deter"])
    torch.testing.assert_close(a["stoch"], b["stoch"])


def test_latent_is_one_hot_with_unimix_floor():
    rssm = _rssm()
    out = rssm.img_step(rssm.initial(3), torch.randn(3, 3))
    assert torch.all(out["stoch"].sum(-1) == 1) and set(out["stoch"].unique().tolist()) <= {0, 1}
    probs = out["stats"].exp()
    assert probs.min() >= 0.01 / 4 - 1e-6
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 4))


def test_block_gru_init_uses_the_reference_fans():
    """dreamerv3 ``Initializer``: a ``(G, I, O)`` block kernel has fan_in G * I, and the
    weights are truncated normal with std 1 / sqrt(fan_in). The first block layer reads
    [deter_g, x0, x1, x2] per block: G * (deter / G + 3 * hidden); the gates read deter."""
    torch.manual_seed(0)
    deter, hidden, g = 512, 64, 8
    rssm = RSSM(action_dim=2, embed_dim=16, deter=deter, hidden=hidden, blocks=g)
    first = g * (deter // g + 3 * hidden)
    for weight, fan in [
        (rssm.dyn_deter.weight, first),
        (rssm.dyn_shared.weight, first),
        (rssm.gates.weight, deter),
    ]:
        assert abs(weight.std().item() * fan**0.5 - 1.0) < 0.03, (weight.shape, fan)
