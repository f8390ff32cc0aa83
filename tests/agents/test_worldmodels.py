"""World Models (Ha & Schmidhuber 2018): the staged pipeline, the dream and its checklist of bugs
(alignment of rewards and ends, the autoreset transition, the cap, the temperature, the start
of a dream), resume inside the CMA-ES stage, and bad input."""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest
import torch

from worldmodels.agents import build_config, get_agent_spec
from worldmodels.checkpoint import load_checkpoint
from worldmodels.cli import main
from worldmodels.envs import make_env
from worldmodels.errors import UserError

ENV = "toy:image_target"


def _agent(**overrides):
    cfg, _ = build_config("worldmodels", ["debug"], overrides)
    env = make_env(ENV, seed=0)
    cls = get_agent_spec("worldmodels").load()[2]
    cls.prepare(cfg, env)
    torch.manual_seed(0)
    return cls(cfg, env.obs_space, env.act_space, "cpu")


def _train(run, *extra):
    argv = ["train", "worldmodels", "--env", ENV, "--preset", "debug", "--run-dir", str(run),
            "--no-progress", *extra]  # fmt: skip
    return main(argv)


def test_pipeline_runs_its_stages_and_writes_their_artefacts(tmp_path):
    run = tmp_path / "r"
    assert _train(run) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for key in ("vae/loss", "encode/frames", "mdnrnn/z_nll", "controller/fitness_mean"):
        assert any(key in r for r in rows), key
    assert (run / "encode" / "series.npz").exists()
    assert any("eval/return_mean" in r for r in rows)


def _set_done_bias(agent, bias: float, reward: float = 1.0) -> None:
    """M's done logit and reward become constants (zero weights, the given biases)."""
    head = agent.mdn.head
    with torch.no_grad():
        head.weight[-2:].zero_()
        head.bias[-2] = bias
        head.bias[-1] = reward


def _start(agent, n: int = 3, logvar: float = 0.0) -> None:
    z = agent.config.vae.z_dim
    mu = torch.randn(n, z)
    agent.initial_z = torch.stack([mu, torch.full((n, z), logvar)], 1)


def test_dream_is_capped_like_the_real_episode_and_sums_the_predicted_rewards():
    agent = _agent()
    _start(agent)
    _set_done_bias(agent, -50.0, reward=0.5)
    params = torch.randn(4, agent.c_dim)
    ret, length = agent.dream(params, 1.0, torch.Generator().manual_seed(0), max_steps=7)
    assert length.tolist() == [7] * 4
    torch.testing.assert_close(ret, torch.full((4,), 3.5))


def test_dream_ends_on_the_step_m_predicts_the_end_and_counts_its_reward():
    agent = _agent()
    _start(agent)
    _set_done_bias(agent, 50.0)
    ret, length = agent.dream(torch.randn(4, agent.c_dim), 1.0, torch.Generator().manual_seed(0))
    # the reference pays +1 for the step on which the episode ends (TakeCover's living reward)
    assert length.tolist() == [1] * 4 and ret.tolist() == [1.0] * 4


def test_sampled_dream_ends_come_at_m_s_end_probability():
    """controller.done=sample: with a constant P(end) = p every step, a dream's length is
    geometric, mean 1 / p and P(length = 1) = p; the threshold rule (p < 0.5) never ends one."""
    agent = _agent(**{"controller.done": "sample"})
    _start(agent)
    p = 0.1
    _set_done_bias(agent, math.log(p / (1 - p)))
    n = 4000
    gen = torch.Generator().manual_seed(0)
    _, length = agent.dream(torch.randn(n, agent.c_dim), 1.0, gen, max_steps=1000)
    length = length.double()
    assert abs(length.mean().item() - 1 / p) < 4 * ((1 - p) / p**2 / n) ** 0.5  # 4 std errors
    assert abs((length == 1).double().mean().item() - p) < 4 * (p * (1 - p) / n) ** 0.5
    agent.config.controller.done = "threshold"
    _, length = agent.dream(torch.randn(8, agent.c_dim), 1.0, torch.Generator().manual_seed(0),
                            max_steps=50)  # fmt: skip
    assert length.tolist() == [50] * 8


def test_dream_is_deterministic_for_a_seed_and_respects_the_temperature():
    agent = _agent(**{"controller.max_steps": 12})
    _start(agent, n=1, logvar=-40.0)  # one start, sigma ~ 0
    params = torch.randn(2, agent.c_dim)
    z_seen: dict[tuple[float, int], list[torch.Tensor]] = {}
    from worldmodels.agents.worldmodels import agent as mod

    real_sample = mod.sample_z

    for tau in (1e-6, 1.0):
        for seed in (0, 1):
            zs = []

            def spy(out, temperature, generator, zs=zs, tau=tau, **kw):
                assert temperature == tau
                z = real_sample(out, temperature, generator, **kw)
                zs.append(z)
                return z

            mod.sample_z = spy
            try:
                _set_done_bias(agent, -50.0)
                agent.dream(params, tau, torch.Generator().manual_seed(seed))
            finally:
                mod.sample_z = real_sample
            z_seen[(tau, seed)] = zs
    pairs = list(zip(z_seen[(1e-6, 0)], z_seen[(1e-6, 1)]))
    # 11 draws in a 12-step dream (none after its last step); a near-zero temperature leaves
    # (almost) nothing to chance
    assert len(pairs) == 11
    assert all(torch.allclose(a, b, atol=1e-2) for a, b in pairs)
    assert not torch.equal(z_seen[(1.0, 0)][-1], z_seen[(1.0, 1)][-1])
    again = []
    mod.sample_z = lambda out, t, g, **kw: again.append(real_sample(out, t, g, **kw)) or again[-1]
    try:
        agent.dream(params, 1.0, torch.Generator().manual_seed(0))
    finally:
        mod.sample_z = real_sample
    assert all(torch.equal(a, b) for a, b in zip(again, z_seen[(1.0, 0)]))


def test_dream_starts_from_recorded_first_frames_with_empty_memory():
    agent = _agent(**{"controller.max_steps": 1})
    z = agent.config.vae.z_dim
    agent.initial_z = torch.stack([torch.full((1, z), 3.0), torch.full((1, z), -40.0)], 1)
    seen = {}
    real_step = agent.mdn.step

    def spy(zt, a, restart, state):
        seen.update(z=zt.clone(), restart=restart.clone(), h=state[0].clone(), c=state[1].clone())
        return real_step(zt, a, restart, state)

    agent.mdn.step = spy
    agent.dream(torch.zeros(2, agent.c_dim), 1.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(seen["z"], torch.full((2, z), 3.0), atol=1e-6, rtol=0)
    assert seen["restart"].tolist() == [1.0, 1.0]
    assert not seen["h"].any() and not seen["c"].any()


def test_m_trains_on_aligned_targets_and_never_across_an_autoreset():
    """Input step t is scored on z_{t+1}, the end flag of t+1 and the reward of t+1; the step
    from an episode's last frame to the next episode's first is masked out."""
    agent = _agent()
    Z = agent.config.vae.z_dim
    # one stream, two episodes: frames 0..3 (ends by termination at 3), then 4..6
    T = 7
    is_first = np.array([1, 0, 0, 0, 1, 0, 0], bool)
    is_last = np.array([0, 0, 0, 1, 0, 0, 0], bool)
    is_term = np.array([0, 0, 0, 1, 0, 0, 0], bool)
    reward = np.arange(T, dtype=np.float32)
    win = {
        "mu": torch.zeros(1, T, Z),
        "logvar": torch.full((1, T, Z), -40.0),
        "action": torch.zeros(1, T, dtype=torch.long),
        "reward": torch.as_tensor(reward)[None],
        "is_first": torch.as_tensor(is_first)[None],
        "is_last": torch.as_tensor(is_last)[None],
        "is_terminal": torch.as_tensor(is_term)[None],
    }
    from worldmodels.agents.worldmodels import agent as mod

    captured = {}
    real_done = mod.done_loss

    def spy(logit, target, factor):
        captured["target"] = target.clone()
        return real_done(logit, target, factor)

    mod.done_loss = spy
    try:
        _set_done_bias(agent, 0.0, reward=0.0)
        losses, _ = agent._mdn_forward(win, agent.mdn.initial(1), np.random.default_rng(0))
    finally:
        mod.done_loss = real_done
    # done target of input t is the end flag of frame t + 1: only input 2 -> frame 3
    assert captured["target"][0].tolist() == [0, 0, 1, 0, 0, 0]
    # reward: zero prediction, targets r_{t+1} = 1..6, input 3 (last -> first) masked
    expect = np.mean([r**2 for t, r in enumerate(reward[1:]) if t != 3])
    assert float(losses["reward"].detach()) == pytest.approx(expect, rel=1e-5)


def test_vae_max_updates_caps_the_v_stage_across_epochs_and_a_resume(tmp_path):
    """vae.max_updates: V stops after that many batches although epochs remain, also when the
    stage is resumed mid-way."""
    agent = _agent(**{"vae.epochs": 5, "vae.batch_size": 4, "vae.max_updates": 7})
    frames = np.zeros((10, *agent.obs_space[agent.key].shape), np.uint8)  # 3 batches an epoch

    class Replay:
        @staticmethod
        def segments():
            return [[{agent.key: frames}]]

    class Context:
        replay, run_dir = Replay(), tmp_path

        def __init__(self, stop_after=None):
            self.asked, self.stop_after = 0, stop_after

        def should_stop(self):
            self.asked += 1
            return self.stop_after is not None and self.asked > self.stop_after

        def log(self, row):
            pass

        def save(self):
            pass

    steps = []
    real_step = agent.vae_opt.step
    agent.vae_opt.step = lambda *a, **k: (steps.append(1), real_step(*a, **k))
    assert agent._fit_vae(Context(stop_after=4)) == {}  # stopped after 4 batches
    assert len(steps) == 4 and agent.progress["vae"] == {"epoch": 1, "batch": 1}
    agent._fit_vae(Context())  # resumed: 3 more batches, then the cap ends the stage
    assert len(steps) == 7 and agent.progress["vae"]["epoch"] == 5


def test_threshold_controller_reads_left_none_right_off_one_tanh_output():
    agent = _agent(**{"controller.inputs": "zh", "controller.threshold_actions": (0, 2, 1)})
    # toy:image_target has 4 actions: threshold needs 3, so prepare refuses it
    cfg, _ = build_config("worldmodels", ["debug"], {"controller.discrete": "threshold"})
    with pytest.raises(UserError, match="argmax"):
        get_agent_spec("worldmodels").load()[2].prepare(cfg, make_env(ENV, seed=0))
    agent.threshold, agent.c_out = True, 1
    x = torch.zeros(3, agent.c_in)
    x[:, 0] = torch.tensor([-1.0, 0.0, 1.0])
    w = torch.zeros(3, agent.c_in)
    w[:, 0] = 1.0  # tanh(-1) < -1/3 -> left; tanh(0) -> none; tanh(1) > 1/3 -> right
    # as doom:take_cover's (none, right, left): none 0, left 2, right 1
    assert agent.controller_actions(w, x).tolist() == [2, 0, 1]


def test_a_run_stopped_in_the_cma_es_stage_resumes_at_its_generation(tmp_path, monkeypatch):
    from worldmodels.planners import cmaes

    gens = ["--set", "controller.generations=4", "--set", "controller.eval_every=0"]
    assert _train(tmp_path / "whole", *gens) == 0
    whole, _ = load_checkpoint(tmp_path / "whole" / "checkpoints")

    real_tell = cmaes.CMAES.tell

    def tell_then_stop(self, solutions, fitness):
        real_tell(self, solutions, fitness)
        if self.generation == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cmaes.CMAES, "tell", tell_then_stop)
    run = tmp_path / "cut"
    assert _train(run, *gens) == 130
    monkeypatch.setattr(cmaes.CMAES, "tell", real_tell)
    state, _ = load_checkpoint(run / "checkpoints")
    assert state["agent"]["progress"]["controller"]["es"]["generation"] == 2
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    cut, _ = load_checkpoint(run / "checkpoints")
    torch.testing.assert_close(cut["agent"]["controller"], whole["agent"]["controller"])


def test_bad_input_gets_one_line_and_exit_2(tmp_path, capsys):
    rc = main(["train", "worldmodels", "--env", "toy:target", "--obs", "vector", "--preset",
               "debug", "--run-dir", str(tmp_path / "v"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "pixels" in err[-1] and "fix:" in err[-1]
    agent = _agent()

    class Context:
        run_dir = tmp_path / "empty"

        @staticmethod
        def should_stop():
            return False

    with pytest.raises(UserError, match="encode stage first"):
        agent._fit_mdnrnn(Context())
    with pytest.raises(UserError, match="mdnrnn stage"):
        agent._evolve(Context())


def test_a_run_killed_in_the_cma_es_stage_resumes_from_its_last_generation(tmp_path, monkeypatch):
    """SIGKILL (no chance to save) once a CMA-ES generation is checkpointed: the resumed run
    starts from that generation, not from the stage's start, and finishes."""
    import subprocess
    import sys
    import time

    run = tmp_path / "k"
    cmd = [sys.executable, "-m", "worldmodels.cli", "train", "worldmodels", "--env", ENV,
           "--preset", "debug", "--set", "controller.generations=40", "--set",
           "controller.eval_every=0", "--run-dir", str(run), "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gen = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                state, _ = load_checkpoint(run / "checkpoints")
            except (UserError, OSError, ValueError):
                continue
            es = state["agent"]["progress"].get("controller", {}).get("es")
            gen = 0 if es is None else int(es["generation"])
            if gen >= 3:
                break
    finally:
        proc.kill()
        proc.wait()
    assert gen >= 3, "no CMA-ES generation was checkpointed in time"
    from worldmodels.planners import cmaes

    first: list[int] = []
    real_ask = cmaes.CMAES.ask

    def ask(self):
        first.append(self.generation)
        return real_ask(self)

    monkeypatch.setattr(cmaes.CMAES, "ask", ask)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert first[0] >= gen and len(first) == 40 - first[0]
    state, _ = load_checkpoint(run / "checkpoints")
    assert "controller" in state["agent"]["done"]


def test_a_crash_after_the_data_stage_keeps_every_collected_step_on_disk(tmp_path, monkeypatch):
    """The checkpoint written when the data stage ends counts N env steps; a process that dies
    right after it (no flush on the way out) must leave those N steps in the replay's files,
    the last partial chunk included, or the resumed run trains V and M on fewer episodes than
    it counted."""
    from worldmodels.agents.worldmodels.agent import WorldModelsAgent
    from worldmodels.replay.buffer import ReplayBuffer

    def crash(self, context):
        raise MemoryError("killed")

    monkeypatch.setattr(WorldModelsAgent, "_fit_vae", crash)
    run = tmp_path / "c"
    with pytest.raises(MemoryError):
        _train(run)
    state, _ = load_checkpoint(run / "checkpoints")
    on_disk = ReplayBuffer(10**6, directory=run / "replay")
    assert state["counters"]["env_steps"] > 0
    assert len(on_disk) == state["counters"]["env_steps"]


def _episodes(agent, lengths, seed=0):
    """Encoded episodes as ``split_episodes`` gives them: (mu, logvar), actions, first flags."""
    rng = np.random.default_rng(seed)
    z = agent.config.vae.z_dim
    out = []
    for n in lengths:
        first = np.zeros(n, bool)
        first[0] = True
        out.append({
            "mu": rng.standard_normal((n, z)).astype(np.float32),
            "logvar": np.full((n, z), -40.0, np.float32),
            "action": rng.integers(agent.n_act, size=n),
            "is_first": first,
        })  # fmt: skip
    return out


def test_mid_start_memory_is_m_run_over_the_real_episode_up_to_the_start():
    """controller.mid_starts: each pooled start's memory equals M's sequence pass (its own
    nn.LSTM call, not the stepped loop) over V's means and the actions before the frame."""
    agent = _agent(**{"controller.max_steps": 100})
    episodes = _episodes(agent, [7, 5, 9])
    agent.build_mid_pool(episodes)
    pool = agent.mid_pool
    # steps 1 .. len - 2 of every episode: 5 + 3 + 7 frames, all kept (fewer than the pool size)
    assert sorted(pool["t"].tolist()) == sorted([*range(1, 6), *range(1, 4), *range(1, 8)])
    for k in range(len(pool["t"])):
        t = int(pool["t"][k])
        # find the episode by its recorded (mu, logvar) at t
        e = next(e for e in episodes if len(e["mu"]) > t + 1
                 and np.allclose(e["mu"][t], pool["z"][k, 0].numpy()))  # fmt: skip
        mu = torch.as_tensor(e["mu"][:t])[None]
        act = agent._onehot(torch.as_tensor(e["action"][:t]))[None]
        restart = torch.zeros(1, t)
        restart[0, 0] = 1.0
        with torch.no_grad():
            _, (h, c) = agent.mdn(mu, act, restart)
        torch.testing.assert_close(pool["h"][k], h[0])
        torch.testing.assert_close(pool["c"][k], c[0])
        torch.testing.assert_close(pool["z"][k, 1], torch.as_tensor(e["logvar"][t]))


def test_mid_start_dreams_begin_from_the_pool_and_end_where_the_episode_would():
    agent = _agent(**{"controller.max_steps": 10, "controller.mid_starts": 1.0})
    _start(agent)
    _set_done_bias(agent, -50.0)
    agent.build_mid_pool(_episodes(agent, [4]))  # starts at t = 1 or 2
    seen = {}
    real_step = agent.mdn.step

    def spy(zt, a, restart, state):
        if not seen:
            seen.update(restart=restart.clone(), h=state[0].clone())
        return real_step(zt, a, restart, state)

    agent.mdn.step = spy
    _, length = agent.dream(torch.zeros(64, agent.c_dim), 1.0, torch.Generator().manual_seed(0))
    assert set(length.tolist()) == {9, 8}  # the 10-step cap less the steps already played
    assert not seen["restart"].any()
    pool_h = agent.mid_pool["h"]
    assert all(any(torch.equal(h, p) for p in pool_h) for h in seen["h"])


def test_mid_starts_take_their_fraction_of_the_dreams_and_need_their_pool():
    agent = _agent(**{"controller.max_steps": 2, "controller.mid_starts": 0.25})
    _start(agent)
    with pytest.raises(UserError, match="mid_starts"):
        agent.dream(torch.zeros(2, agent.c_dim), 1.0, torch.Generator().manual_seed(0))
    agent.build_mid_pool(_episodes(agent, [6, 6]))
    seen = {}
    real_step = agent.mdn.step

    def spy(zt, a, restart, state):
        seen.setdefault("r", restart.clone())  # the dream's first step
        return real_step(zt, a, restart, state)

    agent.mdn.step = spy
    n, p = 4000, 0.25
    agent.dream(torch.zeros(n, agent.c_dim), 1.0, torch.Generator().manual_seed(0))
    frac = 1.0 - seen["r"].mean().item()  # first-frame starts are marked restart
    assert abs(frac - p) < 4 * (p * (1 - p) / n) ** 0.5


def test_common_dreams_score_every_candidate_on_the_same_dreams():
    """controller.common_dreams: candidates of one generation share their dreams' random
    numbers, so equal candidates score equally and a candidate's rollouts still differ."""
    agent = _agent(**{"controller.max_steps": 30, "controller.done": "sample"})
    _start(agent, n=5)
    _set_done_bias(agent, math.log(0.1 / 0.9))
    agent.mdn.head.bias.data[-1] = 1.0
    w = np.random.default_rng(0).standard_normal(agent.c_dim)
    same = np.stack([w, w, w])
    for common, equal in ((True, True), (False, False)):
        agent.config.controller.common_dreams = common
        fit = agent.dream_fitness(same, 4, 1.15, seed=3)
        assert (len(set(fit.tolist())) == 1) == equal, fit
    agent.config.controller.common_dreams = True
    gen = torch.Generator().manual_seed(0)
    params = torch.as_tensor(same, dtype=torch.float32).repeat_interleave(4, 0)
    ret, length = agent.dream(params, 1.15, gen, repeat=3)
    assert torch.equal(ret.view(3, 4)[0], ret.view(3, 4)[2])
    assert len(set(length.view(3, 4)[0].tolist())) > 1  # the 4 dreams of one candidate differ
