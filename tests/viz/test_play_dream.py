"""``worldmodels play-dream``: the key map, the session's step logic (human and agent, the
horizon counter, reset, the real env in step with the dream) without a browser, for Dreamer and
for World Models (V's decoding of M's samples, C in agent mode); the server's HTTP answers; the
page in headless Chromium driven by key presses (frames change, the human / agent and real-env
toggles, reset, zero console errors); bad input is one line and exit code 2."""

from __future__ import annotations

import io
import json
import socket
import sys
import urllib.error
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from worldmodels.agents import build_config, get_agent_spec
from worldmodels.cli import main
from worldmodels.core import Playable
from worldmodels.envs import make_env
from worldmodels.envs.base import ActionSpace
from worldmodels.envs.crafter_env import ACTIONS as CRAFTER
from worldmodels.errors import UserError
from worldmodels.models.mdnrnn import sample_z
from worldmodels.models.vae import frames_to_input, output_to_frames
from worldmodels.train.run import load_agent, new_run, run_env
from worldmodels.viz.play_dream import (
    DreamServer,
    DreamSession,
    data_uri,
    displayable,
    make_keymap,
    png_bytes,
    time_frames,
)

pytest.importorskip("websockets.asyncio.server")

PONG = ("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE")


# Keys


def test_keymap_without_names_uses_indices_and_repeats_the_last_action():
    km = make_keymap(ActionSpace(True, 4))
    assert km.keys == {
        "ArrowLeft": 0,
        "ArrowRight": 1,
        "ArrowUp": 2,
        "ArrowDown": 3,
        "Digit1": 0,
        "Digit2": 1,
        "Digit3": 2,
        "Digit4": 3,
    }
    assert km.noop is None
    assert km.human_action([], last=2) == 2  # no key: the last action again
    assert km.human_action(["Digit1", "ArrowDown"], last=2) == 3  # the latest press wins
    rows = km.rows()
    assert rows[0] == {"keys": ["←", "1"], "action": "0"}
    assert rows[-1]["keys"] == [] and "last action" in rows[-1]["action"]
    two = make_keymap(ActionSpace(True, 2))  # CartPole: left pushes left
    assert {k: v for k, v in two.keys.items() if k.startswith("Arrow")} == {
        "ArrowLeft": 0,
        "ArrowRight": 1,
    }


def test_keymap_with_names_maps_arrows_by_name_and_has_a_noop():
    km = make_keymap(ActionSpace(True, 6), PONG)
    assert km.keys["ArrowLeft"] == 3 and km.keys["ArrowRight"] == 2
    assert "ArrowUp" not in km.keys and km.keys["Digit6"] == 5
    assert km.noop == 0 and km.human_action([], last=4) == 0
    assert km.rows()[3] == {"keys": ["←", "4"], "action": "3: LEFT"}
    assert km.rows()[-1]["action"] == "the no-op, 0: NOOP"
    km = make_keymap(ActionSpace(True, len(CRAFTER)), CRAFTER)  # 17 actions
    assert km.noop == 0 and km.keys["ArrowLeft"] == 1 and km.keys["ArrowUp"] == 3
    assert km.keys["Digit0"] == 9 and km.keys["Shift+Digit7"] == 16
    assert km.rows()[16]["keys"] == ["Shift+7"]


def test_envs_give_their_action_names():
    with make_env("gym:CartPole-v1") as env:
        assert env.action_names is None
    pytest.importorskip("minatar")
    with make_env("minatar:breakout", obs="pixels") as env:
        assert env.action_names == ("no-op", "left", "right")
        assert make_keymap(env.act_space, env.action_names).noop == 0


def test_keymap_continuous_sets_plus_minus_one():
    one = make_keymap(ActionSpace(False, 1))
    assert set(one.axes) == {"ArrowLeft", "ArrowRight"}
    np.testing.assert_array_equal(one.human_action([], None), [0.0])
    np.testing.assert_array_equal(one.human_action(["ArrowLeft"], None), [-1.0])
    three = make_keymap(ActionSpace(False, 3))
    a = three.human_action(["ArrowRight", "ArrowDown"], None)
    np.testing.assert_array_equal(a, [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(three.human_action(["ArrowLeft", "ArrowRight"], None)[0], 1.0)
    assert three.rows()[-1]["action"] == "0 on every dimension"


# Frames


def test_png_bytes_decode_to_the_image():
    iio = pytest.importorskip("imageio.v3")
    rng = np.random.default_rng(0)
    for channels in (1, 3):
        img = rng.integers(0, 256, (16, 24, channels), dtype=np.uint8)
        back = iio.imread(io.BytesIO(png_bytes(img)), extension=".png")
        np.testing.assert_array_equal(back.reshape(img.shape), img)
    planes = np.zeros((8, 8, 4), np.uint8)
    planes[0, 0, 2] = 255
    rgb = displayable(planes)
    assert rgb.shape == (8, 8, 3) and rgb[0, 0].max() > 200 and rgb[1, 1].max() == 0
    assert data_uri(rgb).startswith("data:image/png;base64,iVBOR")


# The session


@pytest.fixture(scope="module")
def session(pixel_run):
    info_env = run_env(_info(pixel_run), 123)
    return DreamSession(load_agent(pixel_run, device="cpu"), info_env)


def _info(run):
    from worldmodels.train.run import load_run

    return load_run(run)


def test_session_steps_counts_and_resets(session):
    s = session
    s.mode, s.paused = "human", False
    s.reset()
    assert s.horizon == 0 and s.real_steps == 0 and s.last_by is None
    frame = s.frame
    s.press("Digit3")
    s.step()
    assert s.last_action == 2 and s.last_by == "human"
    assert (s.horizon, s.real_steps, s.frame) == (1, 1, frame + 1)
    s.release("Digit3")
    s.step()  # no key, no no-op: the last action again
    assert s.last_action == 2
    s.press("ArrowRight")
    s.release("ArrowRight")  # a tap between two frames still acts
    s.step()
    assert s.last_action == 1
    # The real env (10-step episodes) stops at its end; the dream goes on.
    for _ in range(10):
        s.step()
    assert s.horizon == 13 and s.real_steps == 10 and s.real_done
    m = s.message()
    assert m["horizon"] == 13 and m["real"] is None and m["dream"].startswith("data:image/png")
    s.show_real = True
    assert s.message()["real"].startswith("data:image/png")
    s.reset()
    assert s.horizon == 0 and s.real_steps == 0 and not s.real_done
    assert s.message()["action"] is None


def test_agent_mode_acts_greedily_on_the_latent(session):
    s = session
    s.reset()
    s.mode = "agent"
    s.press("Digit1")  # ignored in agent mode
    expected = s.agent_action()
    s.step()
    assert s.last_by == "agent" and s.last_action == expected
    s.mode = "human"
    s.release_all()


def test_commands(session):
    s = session
    s.mode = "human"
    s.release_all()
    assert s.command({"type": "reset"}) and s.horizon == 0
    assert not s.command({"type": "step"})  # only while paused
    assert s.command({"type": "pause", "paused": True}) and s.paused
    assert s.command({"type": "down", "key": "Digit4"})  # paused: a key steps once
    assert s.horizon == 1 and s.last_action == 3
    assert not s.command({"type": "up", "key": "Digit4"})
    assert s.command({"type": "step"}) and s.horizon == 2
    assert s.command({"type": "mode", "mode": "agent"}) and s.mode == "agent"
    assert not s.command({"type": "down", "key": "Digit1"})  # agent mode: no step
    assert s.horizon == 2
    assert s.command({"type": "real", "show": True}) and s.show_real
    for bad in ({"type": "mode", "mode": "robot"}, {"type": "warp"}, {"kind": 1}):
        assert not s.command(bad)
    s.command({"type": "mode", "mode": "human"})
    s.command({"type": "pause", "paused": False})
    s.release_all()
    assert time_frames(s, 3)["fps"] > 0


@pytest.mark.parametrize(
    "agent, env",
    [
        ("dreamerv1", "toy:image_target"),
        ("dreamerv2", "toy:image_target"),
        ("dreamerv3", "toy:reach"),
    ],
)
def test_every_dreamer_version_and_continuous_actions(agent, env):
    cfg, _ = build_config(agent, ["debug"], {"run.obs": "pixels"})
    e = make_env(env, obs="pixels", seed=0)
    cls = get_agent_spec(agent).load()[2]
    s = DreamSession(cls(cfg, e.obs_space, e.act_space, "cpu"), e)
    s.press("ArrowLeft")
    s.step()
    if not e.act_space.discrete:
        np.testing.assert_array_equal(s.last_action, [-1.0])
    s.mode = "agent"
    s.step()
    assert s.horizon == 2 and s.dream.shape == (64, 64, 3)
    assert s.message()["action"].startswith("[" if not e.act_space.discrete else "")


def _worldmodels_session():
    cfg, _ = build_config("worldmodels", ["debug"], {})
    env = make_env("toy:image_target", seed=0)
    cls = get_agent_spec("worldmodels").load()[2]
    cls.prepare(cfg, env)
    torch.manual_seed(0)
    agent = cls(cfg, env.obs_space, env.act_space, "cpu")
    agent.controller = torch.randn(agent.c_dim)  # an evolved C, as far as the session can tell
    return DreamSession(agent, env), agent


@torch.no_grad()
def test_world_models_dream_is_v_decoding_m_samples():
    s, agent = _worldmodels_session()
    assert isinstance(agent, Playable) and s.model is agent
    temperature = agent.config.controller.temperature
    gen = torch.Generator().manual_seed(agent.seed)  # the agent's stream of dream noise
    z = agent.vae.encode(frames_to_input(s.real[None]))[0]  # the dream starts at V's mean
    torch.testing.assert_close(s.latent["z"], z)
    state, restart = agent.mdn.initial(1), torch.ones(1)
    for key, action in (("Digit3", 2), ("ArrowLeft", 0), (None, 0)):
        if key:
            s.press(key)
            s.release(key)
        s.step()
        assert s.last_action == action and s.last_by == "human"
        out, state = agent.mdn.step(z, agent._onehot(torch.tensor([action])), restart, state)
        z, restart = sample_z(out, temperature, gen), torch.zeros(1)
        torch.testing.assert_close(s.latent["z"], z)
        assert s.reward == pytest.approx(float(out.reward[0]), abs=1e-6)
        assert s.cont == pytest.approx(1 - float(torch.sigmoid(out.done_logit[0])), abs=1e-6)
    frame = output_to_frames(agent.vae.decode(z))[0].numpy()
    assert s.dream.dtype == np.uint8 and s.dream.shape == (64, 64, 3)
    np.testing.assert_array_equal(s.dream, frame)
    s.mode = "agent"  # C acts on [z, h]: M's memory before it consumes z
    c_in = agent._c_input(z, state)
    expected = int(agent.controller_actions(agent.controller[None], c_in)[0])
    assert s.agent_action() == expected
    s.step()
    assert (s.last_action, s.last_by, s.horizon, s.real_steps) == (expected, "agent", 4, 4)
    assert s.message()["dream"].startswith("data:image/png")
    s.reset()
    assert s.horizon == 0 and s.reward == 0.0 and s.cont == 1.0


def test_agents_without_a_playable_model_are_refused():
    env = make_env("toy:image_target", seed=0)
    with pytest.raises(UserError, match="decodes no images.*Dreamer V1/V2/V3"):
        DreamSession(SimpleNamespace(name="stub"), env)


# The server and the page


@pytest.fixture(scope="module")
def server(pixel_run):
    srv = DreamServer(pixel_run, port=0, fps=15.0, device="cpu").start()
    yield srv
    srv.stop()


def test_http(server):
    with urllib.request.urlopen(server.url, timeout=30) as r:
        page = r.read().decode()
        csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    for path, status in (("nothing", 404),):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server.url + path, timeout=30)
        assert e.value.code == status
    req = urllib.request.Request(server.url, headers={"Host": f"evil.example:{server.port}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 403


@pytest.fixture(scope="module")
def tab(browser, server):
    t = browser.open(server.url)
    t.wait("document.body.dataset.connected === 'true' && +document.body.dataset.frame > 0")
    yield t
    t.close()


def _frame(tab) -> int:
    return int(tab.eval("+document.body.dataset.frame"))


def _pause(tab, paused: bool) -> None:
    if tab.eval("document.body.dataset.paused") != str(paused).lower():
        tab.key("Space")
    tab.wait(f"document.body.dataset.paused === '{str(paused).lower()}'")


def test_page_keys_step_the_dream(tab):
    _pause(tab, True)
    assert tab.eval("document.getElementById('paused').textContent") == "paused"
    rows = tab.eval("[...document.querySelectorAll('#keys tr')].map(r => r.textContent)")
    assert rows[:2] == ["←10", "→21"] and rows[-1].startswith("no keythe last action")
    srcs = [tab.eval("document.getElementById('dream').src")]
    for code, action in (("Digit3", "2"), ("ArrowRight", "1"), ("Digit4", "3")):
        frame = _frame(tab)
        tab.key(code)
        tab.wait(f"+document.body.dataset.frame === {frame + 1}")
        assert tab.eval("document.getElementById('action').textContent") == f"{action} (human)"
        srcs.append(tab.eval("document.getElementById('dream').src"))
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert len(set(srcs)) > 1  # the displayed frame changes
    assert tab.errors() == [] and tab.requests() == []


def test_page_agent_mode_acts_without_keys(tab):
    _pause(tab, True)
    tab.key("KeyM")
    tab.wait("document.getElementById('mode').textContent === 'agent'")
    frame = _frame(tab)
    _pause(tab, False)
    tab.wait(f"+document.body.dataset.frame >= {frame + 3}")  # no key pressed
    assert tab.eval("document.getElementById('action').textContent").endswith("(agent)")
    tab.key("KeyM")
    tab.wait("document.getElementById('mode').textContent === 'human'")
    tab.wait("document.getElementById('action').textContent.endsWith('(human)')")
    assert tab.errors() == []


def test_page_real_toggle_and_reset(tab):
    assert tab.eval("document.getElementById('realfig').hidden")
    tab.key("KeyV")
    tab.wait("!document.getElementById('realfig').hidden")
    tab.wait("document.getElementById('real').complete")
    assert tab.eval("document.getElementById('real').src").startswith("data:image/png;base64,")
    assert tab.eval("document.getElementById('real').naturalWidth") == 64
    _pause(tab, False)
    tab.wait("+document.body.dataset.horizon >= 3")  # imagined steps since the last reset
    _pause(tab, True)
    tab.key("KeyR")
    tab.wait("+document.body.dataset.horizon === 0")
    assert tab.eval("document.getElementById('horizon').textContent") == "0"
    assert tab.eval("document.getElementById('realcap').textContent").endswith("(step 0)")
    tab.key("Period")  # one step while paused
    tab.wait("+document.body.dataset.horizon === 1")
    tab.key("KeyV")
    tab.wait("document.getElementById('realfig').hidden")
    assert tab.errors() == [] and tab.requests() == []


# Bad input


def _one_line(capsys, argv: list[str], *words: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for w in words:
        assert w in err, err
    return err


def test_bad_input_is_one_line(tmp_path, capsys):
    _one_line(capsys, ["play-dream", str(tmp_path)], "not a run directory")
    vector = new_run("dreamerv3", "toy:target", presets=["debug"], run_dir=tmp_path / "v").run_dir
    _one_line(capsys, ["play-dream", str(vector)], "vector observations", "Dreamer V1/V2/V3")
    tdmpc2 = new_run("tdmpc2", "toy:reach", presets=["debug"], run_dir=tmp_path / "t").run_dir
    _one_line(capsys, ["play-dream", str(tdmpc2)], "no image decoder", "Dreamer V1/V2/V3")
    fresh = new_run("dreamerv3", "toy:image_target", presets=["debug"], run_dir=tmp_path / "p")
    _one_line(capsys, ["play-dream", str(fresh.run_dir)], "no checkpoint")
    wm = new_run("worldmodels", "toy:image_target", presets=["debug"], run_dir=tmp_path / "w")
    _one_line(capsys, ["play-dream", str(wm.run_dir)], "no checkpoint")  # playable, not trained
    _one_line(capsys, ["play-dream", str(fresh.run_dir), "--fps", "0"], "--fps")


def test_port_in_use_and_missing_extra(pixel_run, capsys, monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        _one_line(capsys, ["play-dream", str(pixel_run), "--port", port], f"port {port}", "in use")
    monkeypatch.setitem(sys.modules, "websockets.asyncio.server", None)
    _one_line(capsys, ["play-dream", str(pixel_run)], "pip install 'worldmodels[viz]'")


def test_hello_names_the_run(server):
    from websockets.sync.client import connect

    with connect(server.url.replace("http", "ws") + "ws", open_timeout=30) as ws:
        hello = json.loads(ws.recv(timeout=30))
        first = json.loads(ws.recv(timeout=30))
    assert hello["type"] == "hello" and hello["agent"] == "dreamerv3"
    assert hello["env"] == "toy:image_target" and hello["size"] == [64, 64]
    assert first["type"] == "frame" and first["horizon"] == 0


def test_a_world_models_run_is_served(tmp_path):
    from websockets.sync.client import connect

    run = tmp_path / "wm"
    argv = ["train", "worldmodels", "--env", "toy:image_target", "--preset", "debug",
            "--run-dir", str(run), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    srv = DreamServer(run, port=0, fps=60.0, device="cpu").start()
    try:
        with connect(srv.url.replace("http", "ws") + "ws", open_timeout=30) as ws:
            hello = json.loads(ws.recv(timeout=30))
            assert json.loads(ws.recv(timeout=30))["horizon"] == 0
            ws.send(json.dumps({"type": "mode", "mode": "agent"}))
            for _ in range(200):  # the clock's frames from before the switch come first
                frame = json.loads(ws.recv(timeout=30))
                if frame["by"] == "agent":
                    break
    finally:
        srv.stop()
    assert hello["agent"] == "worldmodels" and hello["size"] == [64, 64]
    assert frame["by"] == "agent" and frame["dream"].startswith("data:image/png")
