"""Environments behind one interface: ``make_env('suite:name')`` returns an :class:`Env`.

See ``worldmodels.envs.base`` for the step-dict contract and ``docs/conventions.md`` for how
steps line up with actions in replay.
"""

from worldmodels.envs.base import ActionSpace, Env, Spec, make_step
from worldmodels.envs.crafter_env import crafter_score, crafter_success_rates
from worldmodels.envs.registry import list_suites, make_env, register_suite
from worldmodels.envs.vector import VectorEnv, make_vector_env

__all__ = [
    "ActionSpace",
    "Env",
    "Spec",
    "VectorEnv",
    "crafter_score",
    "crafter_success_rates",
    "list_suites",
    "make_env",
    "make_step",
    "make_vector_env",
    "register_suite",
]
