"""make_env ids and errors: every bad input is a one-line UserError with a hint."""

import importlib.util

import numpy as np
import pytest

from worldmodels.envs import list_suites, make_env, registry
from worldmodels.errors import MissingExtraError, UserError


@pytest.mark.parametrize(
    "env_id,kwargs,hint",
    [
        ("gym:CartPol-v1", {}, "did you mean gym:CartPole-v1"),
        ("CartPole-v1", {}, "'gym:CartPole-v1'"),
        ("cartpole", {}, "e.g. 'gym:CartPole-v1'"),
        ("gym:", {}, "'suite:name'"),
        ("gmy:CartPole-v1", {}, "did you mean 'gym:CartPole-v1'"),
        ("gym:Pendulum-v0", {}, "gym:Pendulum-v1"),
        ("gym:CartPole-v1", {"obs": "rgb"}, "obs='pixels'"),
        ("gym:CartPole-v1", {"size": (0, 64)}, "(64, 64)"),
        ("gym:CartPole-v1", {"bogus_arg": 1}, "bogus_arg"),
        ("gym:CartPole-v1", {"obs": "pixels", "render_mode": "human"}, "drop the render_mode"),
        ("toy:nope", {}, "toy:target"),
    ],
)
def test_bad_input_is_one_line_user_error(env_id, kwargs, hint):
    with pytest.raises(UserError) as info:
        make_env(env_id, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and hint in msg, msg


def test_unknown_suite_lists_known():
    with pytest.raises(UserError, match="known suites: gym, toy, dmc") as info:
        make_env("foo:bar")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("dm_control") is not None, reason="dmc installed")
def test_dmc_missing_extra():
    with pytest.raises(MissingExtraError) as info:
        make_env("dmc:cartpole-swingup")
    assert "worldmodels[dmc]" in str(info.value) and "\n" not in str(info.value)
    assert info.value.extra == "dmc"


def test_missing_extra_and_not_implemented(monkeypatch):
    monkeypatch.setitem(
        registry._SUITES, "fake", registry.Suite("fake", "d", "fakextra", "no_such_module_xyz")
    )
    with pytest.raises(MissingExtraError, match=r"worldmodels\[fakextra\]"):
        make_env("fake:thing")
    monkeypatch.setitem(registry._SUITES, "fake", registry.Suite("fake", "d", "np", "numpy"))
    with pytest.raises(UserError, match="not implemented yet") as info:
        make_env("fake:thing")
    assert not isinstance(info.value, MissingExtraError)


def test_list_suites():
    suites = {s["name"]: s for s in list_suites()}
    assert {"gym", "toy", "dmc", "atari", "minatar", "crafter", "board"} <= set(suites)
    assert suites["gym"]["installed"] and suites["toy"]["installed"]
    assert suites["dmc"]["extra"] == "dmc" and suites["gym"]["extra"] is None
    for s in suites.values():
        assert set(s) == {"name", "extra", "installed", "description"}
        assert isinstance(s["installed"], bool) and s["description"]


def test_register_suite(monkeypatch):
    monkeypatch.setattr(registry, "_SUITES", dict(registry._SUITES))

    def factory(name, *, obs, seed, size, **kwargs):
        return make_env(f"toy:{name}", obs=obs, seed=seed, size=size)

    registry.register_suite("mine", "test suite", factory=factory)
    env = make_env("mine:target", seed=2)
    assert env.reset()["vector"].dtype == np.float32


@pytest.mark.parametrize(
    "suite,module", [("atari", "ale_py"), ("minatar", "minatar"), ("crafter", "crafter")]
)
def test_optional_suites_have_factories_and_report_their_package(suite, module):
    listed = {s["name"]: s for s in list_suites()}[suite]
    assert listed["extra"] == suite
    assert listed["installed"] == (importlib.util.find_spec(module) is not None)
    assert registry._SUITES[suite].factory is not None
