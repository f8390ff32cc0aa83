"""nn/graphs.py and the CUDA-graph rules of the Dreamer update step.

The capture itself needs a GPU (tested there by `benchmarks`); here: the CPU path is the plain
step, the update step reads nothing back to the host (a captured step must not), the Python
schedule that stays outside it (the hard critic copy) keeps its period, and bad settings fail
with one line."""

import contextlib
import sys

import numpy as np
import pytest
import torch

from worldmodels.agents import build_config
from worldmodels.agents.dreamer import DreamerAgent
from worldmodels.envs import make_env
from worldmodels.errors import UserError
from worldmodels.nn.graphs import GraphedStep
from worldmodels.replay import random_replay


def test_graphed_step_runs_cpu_tensors_eagerly_every_call():
    calls = []

    def fn(inputs):
        calls.append(1)
        return {"y": inputs["x"] * 2}

    step = GraphedStep(fn, enabled=True, warmup=1)
    for i in range(4):
        out = step({"x": torch.full((3,), float(i))})
        assert torch.equal(out["y"], torch.full((3,), 2.0 * i))
    assert len(calls) == 4 and not step.captured


class HostRead(AssertionError):
    pass


@contextlib.contextmanager
def no_host_reads():
    """Make every Python-level read of a tensor's value back to the host raise. Reads by
    torch.optim are let through: on CPU Adam reads its step count, which ``capturable=True``
    (CUDA only, set by the agent under run.cuda_graphs) keeps on the device."""
    names = ["item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__"]
    saved = {n: getattr(torch.Tensor, n) for n in names}

    def guard(name):
        def read(*args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            if "torch/optim/" in caller:
                return saved[name](*args, **kwargs)
            raise HostRead(f"the update step called Tensor.{name} (a read back to the host)")

        return read

    try:
        for n in names:
            setattr(torch.Tensor, n, guard(n))
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


@pytest.mark.parametrize(
    "agent,env_id",
    [("dreamerv1", "toy:reach"), ("dreamerv2", "toy:target"), ("dreamerv3", "toy:target")],
)
def test_update_and_act_steps_read_nothing_back_to_the_host(agent, env_id):
    env = make_env(env_id)
    cfg, _ = build_config(agent, ["debug"])
    dreamer = DreamerAgent(cfg, env.obs_space, env.act_space)
    batch = random_replay(env, 100, np.random.default_rng(0)).sample(4, 8)
    data = {k: torch.as_tensor(v) for k, v in batch.items()}
    data["action"] = dreamer._action_tensor(data["action"])
    with no_host_reads():
        metrics = dreamer._update_tensors(data)
    assert metrics and all(isinstance(v, torch.Tensor) for v in metrics.values())
    state = dreamer.init_state(2)
    obs = {k: torch.as_tensor(np.stack([v, v])) for k, v in env.reset(seed=0).items()}
    inputs = {f"obs/{k}": obs[k] for k in env.obs_space}
    inputs["is_first"] = obs["is_first"].bool()
    inputs.update({f"state/{k}": state[k] for k in ("deter", "stoch", "action")})
    for mode in ("explore", "eval"):
        with no_host_reads():
            out = dreamer._act_tensors(inputs, mode)
        assert out["action"].shape == (2, dreamer.act_dim)
    with pytest.raises(HostRead), no_host_reads():  # the guard itself works
        float(metrics["loss/model"])


def test_hard_critic_copy_every_n_updates():
    env = make_env("toy:target")
    over = {"behavior.slow_critic_every": 3}
    cfg, _ = build_config("dreamerv2", ["debug"], over)
    assert cfg.behavior.critic_target == "hard"
    agent = DreamerAgent(cfg, env.obs_space, env.act_space)
    rb = random_replay(env, 100, np.random.default_rng(0))

    def same():
        pairs = zip(agent.slow_critic.parameters(), agent.critic.parameters())
        return all(torch.equal(a, b) for a, b in pairs)

    copied = []
    for _ in range(6):
        agent.update(rb.sample(4, 8))
        copied.append(same())
    assert copied == [False, False, True, False, False, True]


def test_cuda_graphs_refuse_laprop():
    env = make_env("toy:target")
    over = {"run.cuda_graphs": True, "optim.optimizer": "laprop"}
    cfg, _ = build_config("dreamerv3", ["debug"], over)
    with pytest.raises(UserError, match="run.cuda_graphs needs optim.optimizer=adam"):
        DreamerAgent(cfg, env.obs_space, env.act_space)


def test_planet_update_and_act_steps_read_nothing_back_to_the_host():
    from worldmodels.agents.planet import PlaNetAgent

    env = make_env("toy:reach")
    cfg, _ = build_config("planet", ["debug"])
    agent = PlaNetAgent(cfg, env.obs_space, env.act_space)
    batch = random_replay(env, 100, np.random.default_rng(0)).sample(4, 8)
    with no_host_reads():
        metrics = agent._update_tensors({k: torch.as_tensor(v) for k, v in batch.items()})
    assert "loss/overshooting" in metrics
    state = agent.init_state(2)
    obs = {k: torch.as_tensor(np.stack([v, v])) for k, v in env.reset(seed=0).items()}
    inputs = {f"obs/{k}": obs[k] for k in env.obs_space}
    inputs["is_first"] = obs["is_first"].bool()
    inputs.update({f"state/{k}": state[k] for k in ("deter", "stoch", "action", "plan")})
    with no_host_reads():
        out = agent._act_tensors(inputs, "explore")
    H = cfg.planner.horizon
    assert out["plan"].shape == (2, H, 1) and torch.all(out["plan"][:, -1] == 0)


def test_planet_warm_start_is_the_last_plan_shifted_and_resets_per_episode():
    """The plan carried in the acting state is the last CEM mean shifted by one step; a new
    episode in one env zeroes only that env's warm start (PlaNet's start from mean 0)."""
    from worldmodels.agents.planet import PlaNetAgent

    env = make_env("toy:reach")
    cfg, _ = build_config("planet", ["debug"])
    agent = PlaNetAgent(cfg, env.obs_space, env.act_space)
    seen = []
    real_plan = agent.cem.plan

    def spy(*args, **kwargs):
        seen.append(kwargs["init_mean"].clone())
        result = real_plan(*args, **kwargs)
        seen.append(result.mean.clone())
        return result

    agent.cem.plan = spy
    state = agent.init_state(2)
    obs = {k: np.stack([v, v]) for k, v in env.reset(seed=0).items()}
    state, _, _ = agent.act(state, obs, "eval")
    assert torch.equal(seen[0], torch.zeros_like(seen[0]))
    obs["is_first"] = np.array([False, True])
    state, _, _ = agent.act(state, obs, "eval")
    init, last_mean = seen[2], seen[1]
    assert torch.equal(init[0, :-1], last_mean[0, 1:]) and torch.all(init[0, -1] == 0)
    assert torch.all(init[1] == 0)


@pytest.mark.parametrize("env_id", ["toy:reach", "toy:target"])
@pytest.mark.parametrize("capturable", [False, True])
def test_tdmpc2_update_and_act_steps_read_nothing_back_to_the_host(env_id, capturable):
    from worldmodels.agents.tdmpc2 import TDMPC2Agent

    env = make_env(env_id)
    cfg, _ = build_config("tdmpc2", ["debug"])
    agent = TDMPC2Agent(cfg, env.obs_space, env.act_space)
    agent.model.capturable = agent.planner.capturable = capturable  # the CUDA-graph draws
    batch = random_replay(env, 100, np.random.default_rng(0)).sample(8, 4)
    data = {k: torch.as_tensor(v) for k, v in batch.items()}
    data["action"] = agent._action_tensor(data["action"])
    with no_host_reads():
        metrics = agent._update_tensors(data)
    assert {"loss/consistency", "loss/pi", "q_scale"} <= metrics.keys()
    obs = {k: torch.as_tensor(np.stack([v, v])) for k, v in env.reset(seed=0).items()}
    inputs = {f"obs/{k}": obs[k] for k in env.obs_space}
    inputs["is_first"] = obs["is_first"].bool()
    inputs["plan"] = agent.init_state(2)["plan"]
    for mode in ("explore", "eval"):
        with no_host_reads():
            out = agent._act_tensors(inputs, mode)
        assert out["plan"].shape == inputs["plan"].shape


def test_capturable_elite_draw_has_the_weights_distribution():
    """MPPI's inverse-CDF elite draw (used under CUDA graphs instead of multinomial)."""
    from worldmodels.planners.mppi import _pick

    weights = torch.tensor([[0.1, 0.6, 0.3]]).expand(40_000, 3)
    torch.manual_seed(0)
    picks = _pick(weights, "explore", "sample", None, capturable=True)
    freq = torch.bincount(picks, minlength=3).float() / picks.numel()
    assert torch.allclose(freq, torch.tensor([0.1, 0.6, 0.3]), atol=0.01), freq


def test_capturable_q_pair_is_two_distinct_members_uniformly():
    """Q's random pair of members under capturable (argsort of uniform draws, not randperm)."""
    from worldmodels.envs.base import Spec
    from worldmodels.models.tdmpc2 import TDMPC2Model, TDMPC2ModelConfig

    model = TDMPC2Model(TDMPC2ModelConfig(num_q=5), {"vector": Spec((3,), np.float32)}, 1, False)
    model.capturable = True
    pairs = []
    forward = model.Qs.forward

    def spy(x, members=None, detach=False):
        pairs.append(members.clone())
        return forward(x, members=members, detach=detach)

    model.Qs.forward = spy
    z, a = torch.zeros(4, model.cfg.latent_dim), torch.zeros(4, 1)
    torch.manual_seed(0)
    for _ in range(2000):
        assert model.Q(z, a, "min").shape == (4,)
    pairs = torch.stack(pairs)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    seen = torch.bincount(pairs.reshape(-1), minlength=5).float()
    assert torch.allclose(seen / seen.sum(), torch.full((5,), 0.2), atol=0.02), seen


class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph on CPU: replay re-runs the captured step into the
    static outputs (a real replay re-runs its kernels into the same memory)."""

    step = None

    def replay(self):
        fresh = self.step.fn(self.step.static_in)
        for k, v in fresh.items():
            self.step.static_out[k].copy_(v)


CAPTURING = {"on": False}


@contextlib.contextmanager
def _fake_capture(graph):
    CAPTURING["on"] = True
    try:
        yield
    finally:
        CAPTURING["on"] = False


class _FakeStream:
    def wait_stream(self, other):
        pass


@pytest.fixture
def fake_cuda(monkeypatch):
    """GraphedStep's CUDA calls on CPU tensors: capture runs the step once, replay re-runs it."""
    monkeypatch.setattr(GraphedStep, "_usable", lambda self, inputs: self.enabled)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", _fake_capture)
    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())


def test_graphed_step_warms_up_captures_then_replays_with_fresh_inputs(fake_cuda):
    calls = []

    def fn(inputs):
        calls.append(inputs["x"].clone())
        return {"y": inputs["x"] * 2 + 1}

    step = GraphedStep(fn, enabled=True, warmup=2)
    _FakeGraph.step = step
    outs = []
    for i in range(5):
        outs.append(step({"x": torch.full((3,), float(i))}))
        assert step.captured == (i >= 2)
    for i, out in enumerate(outs):  # every call's own result, not the last one's (no aliasing)
        assert torch.equal(out["y"], torch.full((3,), 2.0 * i + 1))
    assert outs[3]["y"].data_ptr() != step.static_out["y"].data_ptr()
    # warm-up x2, the capture pass, then one replay per call from the capture on
    assert [float(c[0]) for c in calls] == [0, 1, 2, 2, 3, 4]
    other = step({"x": torch.zeros(4)})  # another shape: eager, the graph is kept
    assert torch.equal(other["y"], torch.ones(4)) and step.captured


def test_graphed_step_stops_with_one_line_when_capture_fails(fake_cuda):
    def fn(inputs):
        if CAPTURING["on"]:  # e.g. a host read inside the step
            raise RuntimeError("operation not permitted when stream is capturing")
        return {"y": inputs["x"] + 1}

    step = GraphedStep(fn, enabled=True, warmup=1)
    step({"x": torch.zeros(2)})
    with pytest.raises(
        UserError, match="CUDA graph capture failed .*fix: set run.cuda_graphs=false"
    ):
        step({"x": torch.ones(2)})
    assert not step.captured


def test_cuda_graphs_benchmark_script_runs_and_agrees_on_cpu():
    """benchmarks/cuda_graphs.py at debug size: on CPU the graphs are inactive, so the eager and
    the `run.cuda_graphs=true` copies (same weights, seeds and batches) must agree exactly."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, str(root / "benchmarks" / "cuda_graphs.py"), "--debug"]
    cmd += ["--updates", "6", "--acts", "2", "--device", "cpu", "--tol", "0"]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.split(":")[1].split() == [
        "dreamer",
        "dreamerv1",
        "dreamerv2",
        "planet",
        "tdmpc2",
    ], last


@pytest.mark.parametrize("agent_name,env_id", [("dreamerv1", "toy:reach"), ("tdmpc2", "toy:reach")])
def test_loaded_optimisers_follow_this_runs_capturable_setting(agent_name, env_id):
    """A checkpoint saved with capturable Adam (a CUDA-graph run) resumes on CPU: the loaded
    flag is this run's, so Adam steps (a capturable CPU Adam would refuse to)."""
    from worldmodels.agents import get_agent_spec

    env = make_env(env_id)
    cfg, _ = build_config(agent_name, ["debug"])
    cls = get_agent_spec(agent_name).load()[2]
    agent = cls(cfg, env.obs_space, env.act_space)
    batch = random_replay(env, 100, np.random.default_rng(0)).sample(4, 4)
    agent.update(batch)
    saved = agent.state_dict()
    opt_keys = list(agent.optimizers())
    for k in opt_keys:  # as a graphed run on a GPU would have saved it
        for group in saved[k]["param_groups"]:
            group["capturable"] = True
    fresh = cls(cfg, env.obs_space, env.act_space)
    fresh.load_state_dict(saved)
    for k in opt_keys:
        opt = fresh.optimizers()[k]
        assert all(not g["capturable"] for g in opt.param_groups)
        steps = [s["step"] for s in opt.state.values()]
        assert steps and all(t.device.type == "cpu" and float(t) == 1.0 for t in steps)
    assert all(np.isfinite(v) for v in fresh.update(batch).values())


@pytest.mark.parametrize(
    "agent_name,env_id",
    [("dreamerv1", "toy:reach"), ("tdmpc2", "toy:reach"), ("planet", "toy:reach")],
)
def test_update_step_never_writes_the_previous_steps_gradient_buffers(agent_name, env_id):
    """Each update step starts from no gradients: a CUDA graph that wrote into a buffer freed
    during its capture would write into dead memory on every replay (dynamics gradients reach
    Dreamer's critic through the actor loss; TD-MPC2's model clip spans the policy too)."""
    from worldmodels.agents import get_agent_spec

    env = make_env(env_id)
    cfg, _ = build_config(agent_name, ["debug"])
    agent = get_agent_spec(agent_name).load()[2](cfg, env.obs_space, env.act_space)
    rb = random_replay(env, 100, np.random.default_rng(0))
    agent.update(rb.sample(4, 4))
    params = [
        p for opt in agent.optimizers().values() for g in opt.param_groups for p in g["params"]
    ]
    old = [(p.grad, p.grad.clone()) for p in params if p.grad is not None]
    assert old
    agent.update(rb.sample(4, 4))
    assert all(torch.equal(buf, snap) for buf, snap in old)
