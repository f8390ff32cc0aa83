"""worldmodels: world-model reinforcement-learning agents in one PyTorch library.

agent = worldmodels.make_agent("dreamerv3", env="gym:CartPole-v1")
agent = worldmodels.Agent.load("runs/<run>")
step = agent.act(agent.init_state(1), obs, mode="eval")  # step.state, step.action, step.extras
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"


def make_agent(
    agent: str,
    env: str,
    *,
    presets: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    obs: str = "vector",
    device: str = "auto",
):
    """Build a fresh agent for ``env`` (``suite:name``) from its name, presets and overrides."""
    from .agents import build_config, get_agent_spec
    from .envs import make_env
    from .train.run import env_kwargs, resolve_device

    cfg, _ = build_config(agent, presets, {"run.obs": obs, **(overrides or {})})
    probe = make_env(env, obs=cfg.run.obs, **env_kwargs(cfg.run))
    try:
        _, _, cls = get_agent_spec(agent).load()
        cls.prepare(cfg, probe)
        return cls(cfg, probe.obs_space, probe.act_space, resolve_device(device))
    finally:
        probe.close()


class Agent:
    """Entry points shared by every agent class (the contract is ``worldmodels.core.Agent``)."""

    @staticmethod
    def load(run_dir: str, device: str = "auto"):
        """The latest checkpointed agent of a run directory."""
        from .train.run import load_agent

        return load_agent(run_dir, device)


__all__ = ["Agent", "__version__", "make_agent"]
