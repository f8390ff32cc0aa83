"""PlaNet: builds, plans and updates at debug size; latent overshooting's KL terms against a slow
hand-rolled computation; discrete action spaces are refused with one line."""

import numpy as np
import pytest
import torch

from worldmodels.agents import build_config
from worldmodels.agents.planet import PlaNetAgent
from worldmodels.envs import make_env
from worldmodels.errors import UserError
from worldmodels.models import RSSM, overshooting_kl
from worldmodels.replay import random_replay


def test_planet_builds_plans_updates():
    torch.manual_seed(0)
    env = make_env("toy:reach")
    cfg, _ = build_config("planet", ["debug"])
    agent = PlaNetAgent(cfg, env.obs_space, env.act_space)
    obs = {k: np.stack([v, v]) for k, v in env.reset(seed=0).items()}
    state = agent.init_state(2)
    state, action, _ = agent.act(state, obs, "explore")
    assert action.shape == (2, env.act_space.n) and np.all(np.abs(action) <= 1)
    _, greedy, _ = agent.act(state, obs, "eval")
    metrics = agent.update(random_replay(env, 100).sample(4, 8)).metrics
    assert np.isfinite(metrics["loss/overshooting"]) and metrics["loss/overshooting"] >= 3.0
    loaded = PlaNetAgent(cfg, env.obs_space, env.act_space)
    loaded.load_state_dict(agent.state_dict())
    for a, b in zip(agent.wm.parameters(), loaded.wm.parameters()):
        assert torch.equal(a, b)


def test_cem_objective_is_the_discounted_predicted_return():
    """PlaNet's CEM scores a candidate by sum_t 0.99^t r_t along prior samples
    (planet/control/planning.py); rolled here one candidate at a time with the same noise."""
    env = make_env("toy:reach")
    cfg, _ = build_config("planet", ["debug"], {"planner.discount": 0.9})
    agent = PlaNetAgent(cfg, env.obs_space, env.act_space)
    with torch.no_grad():  # a reward head that is not ~0 at init
        agent.wm.reward.out.weight.normal_()
        agent.wm.reward.out.bias.fill_(0.5)
    rssm, H = agent.wm.rssm, cfg.planner.horizon
    start = {k: v[:1] for k, v in rssm.initial(1).items() if k in ("deter", "stoch")}
    actions = torch.rand(1, 3, H, env.act_space.n) * 2 - 1  # [B, P, H, A]
    torch.manual_seed(5)
    got = agent._objective(start)(actions)
    torch.manual_seed(5)
    state = {k: v.repeat(3, *([1] * (v.dim() - 1))) for k, v in start.items()}
    want = torch.zeros(3)
    for t in range(H):
        state = rssm.img_step(state, actions[0, :, t])
        want += 0.9**t * agent.wm.reward(rssm.feat(state)).pred()
    torch.testing.assert_close(got, want[None])
    assert cfg.planner.discount == 0.9 and build_config("planet")[0].planner.discount == 0.99


def test_vector_observation_loss_is_weighted_by_vector_scale():
    """The model loss counts the vector observations' 0.5 x squared error loss.vector_scale
    times (10 in the preset, like the reward); the same batch, parameters and posterior samples
    at scale 1 give a tenth of it, and 0.5 x the squared error of the decoded posterior."""
    env = make_env("gym:Pendulum-v1")
    batch = random_replay(env, 64).sample(2, 8)
    out = {}
    for scale in (1.0, 10.0):
        torch.manual_seed(3)
        cfg, _ = build_config("planet", ["debug"], {"loss.vector_scale": scale})
        agent = PlaNetAgent(cfg, env.obs_space, env.act_space)
        data = {k: torch.as_tensor(v) for k, v in batch.items()}
        torch.manual_seed(4)
        with torch.no_grad():
            post, _, _, _ = agent.wm.sequence_losses(data, data["action"].float())
            pred = agent.wm.vec_dec(agent.wm.rssm.feat(post)).pred()
        want = 0.5 * ((pred - data["vector"].float()) ** 2).sum(-1).mean()
        torch.manual_seed(4)
        out[scale] = agent._update_tensors(data)["loss/recon_vector"]
        torch.testing.assert_close(out[scale], scale * want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[10.0], 10 * out[1.0], rtol=1e-5, atol=1e-6)
    assert build_config("planet")[0].loss.vector_scale == 10.0


def test_planet_preset_sizes_follow_the_reference():
    """planet/models/rssm.py: one 200-unit hidden layer before the prior's mean and std;
    networks/basic.py: 2 x 100 relu heads. Other presets keep head width = units."""
    env = make_env("gym:Pendulum-v1")
    cfg, _ = build_config("planet")
    wm = PlaNetAgent(cfg, env.obs_space, env.act_space).wm
    linears = [m for m in wm.rssm.prior_net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(200, 200), (200, 60)]
    assert wm.reward.out.in_features == 100 and wm.vec_dec.out.in_features == 100
    assert wm.vec_enc.out_dim == 200
    v1, _ = build_config("dreamerv1")
    assert v1.model.head_units == 0 and v1.model.img_layers == 2


def test_planet_refuses_discrete_actions():
    env = make_env("toy:target")
    cfg, _ = build_config("planet", ["debug"])
    with pytest.raises(UserError, match="continuous"):
        PlaNetAgent(cfg, env.obs_space, env.act_space)


def test_overshooting_kl_matches_slow_reference():
    """Each d-step KL: roll the prior from every posterior state with the replayed actions,
    one (t, d) pair at a time, skip pairs crossing an episode start, average per d."""
    torch.manual_seed(0)
    rssm = RSSM(2, 3, deter=8, hidden=4, stoch=3, latent="gaussian", core="gru", norm="none")
    B, T, D = 2, 6, 4
    prev_action, embed = torch.randn(B, T, 2), torch.randn(B, T, 3)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[1, 3] = True
    post, _ = rssm.observe(embed, prev_action, is_first)
    # The prior's mean does not depend on noise, but the rolled stoch samples do: make the
    # rollout deterministic for the comparison by giving the prior a tiny std.
    rssm.min_std = 1e-6
    with torch.no_grad():
        rssm.prior_net[-1].weight[3:].zero_()
        rssm.prior_net[-1].bias.data[3:] = -30.0  # softplus(-30) ~ 0
    # one (t, d) pair at a time: the d-step KLs by distance
    pairs = {}
    for d in range(2, D + 1):
        pairs[d] = []
        for b in range(B):
            for t in range(T - d):
                if is_first[b, t + 1 : t + d + 1].any():
                    continue
                state = {"deter": post["deter"][b : b + 1, t], "stoch": post["stoch"][b : b + 1, t]}
                for k in range(1, d + 1):
                    state = rssm.img_step(state, prev_action[b : b + 1, t + k])
                pairs[d].append(rssm.kl(post["stats"][b : b + 1, t + d], state["stats"])[0])
    got = overshooting_kl(rssm, post, prev_action, is_first, D, free_nats=0.0)
    want = torch.stack([torch.stack(kls).mean() for kls in pairs.values()]).mean()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # PlaNet's code clamps each pair's KL at the free nats before the mean (per_step=True)
    free = float(torch.cat([torch.stack(kls) for kls in pairs.values()]).median())
    got = overshooting_kl(rssm, post, prev_action, is_first, D, free_nats=free, per_step=True)
    want = torch.stack([torch.stack(kls).clamp(min=free).mean() for kls in pairs.values()]).mean()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_planet_run_dir_from_before_the_new_fields_loads_as_trained(tmp_path, capsys):
    """A config.json written before model.free_per_step, model.head_units, model.img_layers,
    planner.discount, model.image_decoder and loss.vector_scale existed was trained with the old
    values (batch-mean free nats, heads as wide as model.units, two prior layers, undiscounted
    CEM, plain squared error on pixels, vector weight 1): PlaNetConfig.ABSENT_MEANS
    restores them, so the old checkpoint fits. A config that does not fit its checkpoint is
    refused with one line, not a size-mismatch traceback."""
    import json

    from worldmodels.cli import main
    from worldmodels.train.run import load_agent, load_run

    run = tmp_path / "old"
    legacy = ["model.head_units=0", "model.img_layers=2", "planner.discount=1.0"]
    args = ["train", "planet", "--env", "toy:reach", "--preset", "debug", "--steps", "120"]
    args += ["--run-dir", str(run), "--no-progress", "--set", "run.eval_every=0"]
    for item in legacy + ["model.free_per_step=false"]:
        args += ["--set", item]
    assert main(args) == 0
    path = run / "config.json"
    data = json.loads(path.read_text())
    for key in ["free_per_step", "head_units", "image_decoder"]:
        del data["config"]["model"][key]
    del data["config"]["model"]["img_layers"], data["config"]["planner"]["discount"]
    del data["config"]["loss"]["vector_scale"]
    path.write_text(json.dumps(data))
    cfg = load_run(run).config
    assert (cfg.model.free_per_step, cfg.model.head_units, cfg.model.img_layers) == (None, 0, 2)
    assert (cfg.planner.discount, cfg.model.image_decoder) == (1.0, "mse")
    assert cfg.loss.vector_scale == 1.0
    load_agent(run, device="cpu")  # the checkpoint fits the restored sizes
    # today's defaults for these keys would not fit this checkpoint
    assert build_config("planet", ["debug"])[0].model.img_layers == 1
    data["config"]["model"]["img_layers"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="does not fit the networks its config.json describes"):
        load_agent(run, device="cpu")
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fix:" in err[0], err
