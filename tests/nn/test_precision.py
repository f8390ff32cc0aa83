"""precision (Dreamer and PlaNet): bf16 autocast keeps states, distributions and losses in
float32 and computes the same first update as float32 to bf16 tolerance; bad values are refused."""

import numpy as np
import pytest
import torch

from worldmodels.agents import build_config
from worldmodels.agents.dreamer import DreamerAgent
from worldmodels.agents.planet import PlaNetAgent
from worldmodels.envs import make_env
from worldmodels.errors import UserError
from worldmodels.nn.precision import Precision, compute_dtype, fast_bf16
from worldmodels.replay import random_replay


def test_compute_dtype_choices():
    assert compute_dtype("fp32", "cpu") == torch.float32
    assert compute_dtype("bf16", "cpu") == torch.bfloat16
    auto = torch.bfloat16 if fast_bf16(torch.device("cpu")) else torch.float32
    assert compute_dtype("auto", "cpu") == auto
    assert not Precision("fp32", "cpu").enabled and Precision("bf16", "cpu").enabled
    with pytest.raises(UserError, match="precision"):
        compute_dtype("fp16", "cpu")


def test_bad_precision_from_command_line_is_refused():
    with pytest.raises(UserError, match="precision"):
        build_config("dreamerv3", ["debug"], {"precision": "half"})


def test_presets_of_mixed_precision_references():
    for name in ("dreamerv1", "dreamerv2"):
        assert build_config(name, ["debug"], {})[0].precision == "auto"
    assert build_config("dreamerv3", [], {})[0].precision == "auto"


def _batch(env_id, batch_size, length):
    env = make_env(env_id)
    return env, random_replay(env, 200).sample(batch_size, length)


@pytest.mark.parametrize(
    "agent_name,env_id", [("dreamerv1", "toy:reach"), ("dreamerv3", "toy:target")]
)
def test_bf16_update_matches_fp32_and_keeps_float32_state(agent_name, env_id):
    env, batch = _batch(env_id, 4, 8)
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        cfg, _ = build_config(agent_name, ["debug"], {"precision": precision})
        agent = DreamerAgent(cfg, env.obs_space, env.act_space)
        obs = {k: np.asarray(v)[None] for k, v in env.reset(seed=0).items()}
        state, action, _ = agent.act(agent.init_state(1), obs, "explore")
        assert all(v.dtype == torch.float32 for v in state.values()), precision
        assert action.dtype in (np.float32, np.int64)
        torch.manual_seed(1)
        results[precision] = agent.update(batch).metrics
        assert all(np.isfinite(v) for v in results[precision].values())
    assert results["bf16"]["loss/model"] != results["fp32"]["loss/model"]  # autocast is on
    for key in ("loss/model", "loss/reward", "loss/critic", "imag_return"):
        ref, low = results["fp32"][key], results["bf16"][key]
        assert low == pytest.approx(ref, rel=0.05, abs=0.02), key


def test_planet_bf16_acts_and_updates():
    env, batch = _batch("toy:reach", 4, 8)
    torch.manual_seed(0)
    cfg, _ = build_config("planet", ["debug"], {"precision": "bf16"})
    agent = PlaNetAgent(cfg, env.obs_space, env.act_space)
    obs = {k: np.asarray(v)[None] for k, v in env.reset(seed=0).items()}
    state, action, _ = agent.act(agent.init_state(1), obs, "eval")
    assert action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    assert all(v.dtype == torch.float32 for v in state.values())
    metrics = agent.update(batch).metrics
    assert all(np.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("agent_name", ["tdmpc2", "muzero"])
def test_float32_only_agents_have_no_precision_setting(agent_name):
    with pytest.raises(UserError, match="precision"):
        build_config(agent_name, ["debug"], {"precision": "bf16"})


def test_rms_norm_matches_its_formula_in_float32_and_bf16():
    """y = x / sqrt(mean(x^2) + eps) * w; a bf16 input (autocast) gives a bf16 output within
    bf16 rounding of the float32 formula, on the fused path (no dtype-mismatch warning)."""
    import warnings

    from worldmodels.nn.layers import make_norm

    torch.manual_seed(0)
    norm = make_norm("rms", 8)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
    x = torch.randn(5, 8) * 3
    want = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-3) * norm.weight
    torch.testing.assert_close(norm(x), want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = norm(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), want, rtol=2e-2, atol=2e-2)
