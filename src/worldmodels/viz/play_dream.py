"""``worldmodels play-dream RUN``: drive a run's learned world model with the keyboard.

A page served on 127.0.0.1 shows the frames the world model decodes while a person, or the
run's greedy agent, chooses the actions: each frame is one imagined step from the latent of a
real first observation, decoded to an image (Dreamer: ``rssm.img_step`` from the posterior,
the image decoder; World Models: M samples the next z, V decodes it). The run's real env can
be stepped with the same actions and shown beside the dream.

The model runs here, in the Python server. One asyncio server of the ``websockets`` package
serves, on one port, the page (``GET /``: inline HTML, CSS and script, nothing else to load)
and one websocket (``/ws``). The page sends key presses and toggles as JSON; the server sends
a JSON message per frame with the frames as PNG ``data:`` URIs. Each connection has its own
:class:`DreamSession` (real env, latent state, counters) and a clock that steps it every
``1 / fps`` seconds while it is not paused.

:class:`DreamSession` and :class:`KeyMap` hold the logic without a browser or a server;
:class:`DreamServer` serves them. The session drives an agent through
:class:`~worldmodels.core.Playable` (World Models implements it); for a Dreamer V1/V2/V3 agent,
which does not, :class:`RSSMPlay` reads its world model (``wm``: encoder, RSSM, image
decoder, reward and continue heads) and actor directly, as imagination does in training. Runs
on image observations only.
"""

from __future__ import annotations

import asyncio
import base64
import colorsys
import errno
import html
import json
import re
import socket
import struct
import sys
import threading
import time
import weakref
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import Playable
from ..errors import MissingExtraError, UserError

FPS = 15.0
"""Frames per second of the clock while a session runs (``--fps``)."""
PORT = 8765
"""Default ``--port``."""
PLAYABLE = (
    "worldmodels play-dream plays Dreamer V1/V2/V3 and World Models runs on image observations "
    "(their world model decodes images), e.g. worldmodels train dreamerv3 --env "
    "gym:CartPole-v1 --obs pixels"
)
SEED_OFFSET = 20_000
"""The real env of session ``i`` is seeded ``run seed + SEED_OFFSET + i`` (apart from the seeds
of training and evaluation)."""
NOOP_NAMES = {"noop", "nop", "none", "nothing", "idle"}
"""Action names (lower case, without separators) read as "do nothing"."""
ARROWS = {"ArrowLeft": "left", "ArrowRight": "right", "ArrowUp": "up", "ArrowDown": "down"}
DIGITS = tuple(f"Digit{d}" for d in "1234567890")
KEY_LABELS = {"ArrowLeft": "←", "ArrowRight": "→", "ArrowUp": "↑", "ArrowDown": "↓"}


def key_label(key: str) -> str:
    """A key id as the page shows it: ``ArrowLeft`` -> ``←``, ``Shift+Digit1`` -> ``Shift+1``."""
    shift, _, code = key.rpartition("+")
    label = KEY_LABELS.get(code, code.removeprefix("Digit"))
    return f"{shift}+{label}" if shift else label


# Keys


@dataclass
class KeyMap:
    """Which key gives which action.

    Discrete actions (``keys``: key id -> action index): the arrow keys by the env's action
    names (the action named ``left``, ``LEFT`` or ``move_left`` for the left arrow), or, without
    names, the first four actions (left 0, right 1, up 2, down 3); the number keys 1..9 and 0
    the actions 0..9 and Shift with them the actions 10..19. No key: the action named no-op if
    the env has one (``noop``), else the last action again.

    Continuous actions (``axes``: key id -> (dimension, value)): left and right set dimension 0
    to -1 and +1, down and up dimension 1 to -1 and +1 (when there is a second dimension); the
    other dimensions, and a dimension without a key held, are 0."""

    discrete: bool
    n: int
    names: tuple[str, ...] | None = None
    keys: dict[str, int] = field(default_factory=dict)
    axes: dict[str, tuple[int, float]] = field(default_factory=dict)
    noop: int | None = None

    def label(self, action: Any) -> str:
        """``3: LEFT`` (or ``3`` without names) for a discrete index, ``[+1.00, 0.00]`` else."""
        if self.discrete:
            i = int(action)
            return f"{i}: {self.names[i]}" if self.names else str(i)
        return "[" + ", ".join(f"{float(v):+.2f}" for v in np.asarray(action).reshape(-1)) + "]"

    @property
    def idle(self) -> str:
        """What no key does, in words."""
        if not self.discrete:
            return "0 on every dimension"
        if self.noop is not None:
            return f"the no-op, {self.label(self.noop)}"
        return "the last action again (the env has no no-op)"

    def rows(self) -> list[dict[str, Any]]:
        """The mapping as the page lists it: ``[{"keys": [...], "action": str}]``, the last row
        (``"idle": True``, no keys) what no key does."""
        if self.discrete:
            by_action: dict[int, list[str]] = {}
            for key, i in self.keys.items():
                by_action.setdefault(i, []).append(key_label(key))
            rows = [{"keys": by_action.get(i, []), "action": self.label(i)} for i in range(self.n)]
        else:
            rows = [
                {"keys": [key_label(k)], "action": f"dimension {d} = {v:+g}"}
                for k, (d, v) in self.axes.items()
            ]
        rows.append({"keys": [], "idle": True, "action": self.idle})
        return rows

    def human_action(self, keys: Sequence[str], last: Any) -> Any:
        """The action for the keys held (oldest press first): discrete, the latest key with an
        action, else :attr:`idle`'s action; continuous, each dimension set by its latest key."""
        if self.discrete:
            for key in reversed(keys):
                if key in self.keys:
                    return self.keys[key]
            return self.noop if self.noop is not None else int(last)
        action = np.zeros(self.n, np.float32)
        for key in keys:
            if key in self.axes:
                dim, value = self.axes[key]
                action[dim] = value
        return action

    def acts(self, key: str) -> bool:
        return key in (self.keys if self.discrete else self.axes)


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def make_keymap(act_space: Any, names: Sequence[str] | None = None) -> KeyMap:
    """The :class:`KeyMap` of an env's action space and action names (``Env.action_names``)."""
    if not act_space.discrete:
        axes = {"ArrowLeft": (0, -1.0), "ArrowRight": (0, 1.0)}
        if act_space.n >= 2:
            axes.update({"ArrowDown": (1, -1.0), "ArrowUp": (1, 1.0)})
        return KeyMap(False, act_space.n, axes=axes)
    n = act_space.n
    names = tuple(names) if names is not None and len(names) == n else None
    keys: dict[str, int] = {}
    if names is None:
        for i, key in enumerate(ARROWS):
            if i < n:
                keys[key] = i
    else:
        for key, word in ARROWS.items():
            matches = [i for i, name in enumerate(names) if word in _tokens(name)]
            if matches:  # "LEFT" before "move_left_fast"
                keys[key] = min(matches, key=lambda i: len(_tokens(names[i])))
    for i in range(min(n, 20)):
        keys[("Shift+" if i >= 10 else "") + DIGITS[i % 10]] = i
    noop = None
    if names is not None:
        noop = next((i for i, m in enumerate(names) if "".join(_tokens(m)) in NOOP_NAMES), None)
    return KeyMap(True, n, names, keys, noop=noop)


# Frames


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 ``[H, W, 1 | 3]`` image as PNG (grey or RGB, no filter, fast deflate)."""
    h, w, c = image.shape
    colour = {1: 0, 3: 2}[c]
    rows = np.empty((h, 1 + w * c), np.uint8)
    rows[:, 0] = 0  # filter type None on every row
    rows[:, 1:] = image.reshape(h, w * c)

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + chunk(b"IEND", b"")
    )


def displayable(image: np.ndarray) -> np.ndarray:
    """An observation image as grey or RGB: 1 and 3 channels stay; any other count (MinAtar's
    object planes) gets one hue per channel, the brightest channel winning at each pixel."""
    c = image.shape[-1]
    if c in (1, 3):
        return image
    hues = [colorsys.hsv_to_rgb(i / c, 0.8, 1.0) for i in range(c)]
    colours = np.asarray(hues, np.float32)  # [C, 3]
    weight = image.astype(np.float32) / 255.0  # [H, W, C]
    rgb = (weight[..., :, None] * colours).max(-2)
    return np.round(rgb * 255).astype(np.uint8)


def data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(displayable(image))).decode()


# The model


class RSSMPlay:
    """:class:`~worldmodels.core.Playable` over a Dreamer agent's RSSM world model and actor.

    The latent is ``{"deter", "stoch"}``: the posterior of the first observation, then one
    ``img_step`` (the prior) per action; the view is the image decoder's frame and the reward
    and continue heads' predictions; the action is the actor's mode."""

    def __init__(self, agent: Any, discrete: bool, n: int):
        self.agent, self.discrete, self.n = agent, discrete, n
        wm = getattr(agent, "wm", None)
        if wm is None or not getattr(wm, "image_keys", None):
            raise UserError(f"the {agent.name} agent's world model decodes no images; {PLAYABLE}")
        self.image_keys = list(wm.image_keys)

    def _tensor_action(self, action: Any) -> torch.Tensor:
        device = self.agent.device
        if self.discrete:
            out = torch.zeros(1, self.n, device=device)
            out[0, int(action)] = 1.0
            return out
        return torch.as_tensor(np.asarray(action, np.float32), device=device).reshape(1, -1)

    @torch.no_grad()
    def dream_start(self, obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        agent = self.agent
        with agent.precision():
            state = agent.wm.rssm.initial(1, agent.device)
            embed = agent.wm.encode(
                {
                    k: torch.tensor(np.asarray(obs[k])[None], device=agent.device)
                    for k in agent.obs_space
                }
            )
            first = torch.ones(1, dtype=torch.bool, device=agent.device)
            zero = torch.zeros(1, agent.act_dim, device=agent.device)
            post = agent.wm.rssm.obs_step(state, zero, embed, first)
        return {"deter": post["deter"], "stoch": post["stoch"]}

    @torch.no_grad()
    def dream_step(self, latent: dict[str, torch.Tensor], action: Any) -> dict[str, torch.Tensor]:
        with self.agent.precision():
            nxt = self.agent.wm.rssm.img_step(latent, self._tensor_action(action))
        return {"deter": nxt["deter"], "stoch": nxt["stoch"]}

    @torch.no_grad()
    def dream_view(self, latent: dict[str, torch.Tensor]) -> tuple[np.ndarray, float, float]:
        wm = self.agent.wm
        with self.agent.precision():
            feat = wm.rssm.feat(latent)
            image = (wm.img_dec(feat).float() + 0.5).clamp(0, 1)  # [-0.5, 0.5] -> [0, 1]
            dream = (image[0] * 255).round().to(torch.uint8).cpu().numpy()
            reward = float(wm.reward(feat).pred().float()[0])
            cont = float(wm.cont(feat).pred().float()[0])
        return dream, reward, cont

    @torch.no_grad()
    def dream_action(self, latent: dict[str, torch.Tensor]) -> Any:
        agent = self.agent
        with agent.precision():
            action = agent.actor(agent.wm.rssm.feat(latent)).mode()
        if self.discrete:
            return int(action[0].argmax())
        return action[0].float().clamp(-1.0, 1.0).cpu().numpy().astype(np.float32)


# The session


class DreamSession:
    """One person's dream: the world model's latent state, stepped by keys or by the agent, and
    the real env stepped with the same actions.

    ``agent`` implements :class:`~worldmodels.core.Playable`, or is a Dreamer agent
    (:class:`RSSMPlay` plays it); anything else: ``UserError``. ``mode`` is ``human`` (the keys
    held choose, :class:`KeyMap`) or ``agent`` (the agent's greedy action on the model's own
    latent, as in imagination). ``reset`` starts a real episode and the dream from the latent
    of its first observation; ``horizon`` counts the imagined steps since. The real env is
    stepped with every action (shown or not) until its episode ends; the dream goes on.
    ``frame`` counts the states shown since the session began.
    """

    def __init__(self, agent: Any, env: Any, keymap: KeyMap | None = None):
        self.agent, self.env = agent, env
        self.keymap = keymap or make_keymap(env.act_space, env.action_names)
        self.model: Any
        if isinstance(agent, Playable):
            self.model = agent
            self.image_keys = [k for k, s in env.obs_space.items() if len(s.shape) == 3]
            if not self.image_keys:
                raise UserError(f"the env has no image observation to start from; {PLAYABLE}")
        else:
            self.model = RSSMPlay(agent, self.keymap.discrete, self.keymap.n)
            self.image_keys = self.model.image_keys
        self.mode = "human"
        self.show_real = False
        self.paused = False
        self.frame = 0
        self.horizon = 0
        self.last_action: Any = 0 if self.keymap.discrete else np.zeros(self.keymap.n, np.float32)
        self.last_by: str | None = None
        self.step_ms = 0.0
        self._held: dict[str, int] = {}  # key id -> press number, while held
        self._tapped: dict[str, int] = {}  # pressed since the last step, released or not
        self._presses = 0
        self._uris: dict[str, str] = {}
        self.reset()

    # Keys
    def press(self, key: str) -> None:
        self._presses += 1
        self._held[key] = self._presses
        self._tapped[key] = self._presses

    def release(self, key: str) -> None:
        """Release ``key``; a code releases its Shift variant too (Shift may go up first)."""
        for k in [k for k in self._held if k == key or k.rpartition("+")[2] == key]:
            del self._held[k]

    def release_all(self) -> None:
        self._held.clear()

    def keys(self) -> list[str]:
        """Keys held or tapped since the last step, oldest press first."""
        order = {**self._tapped, **self._held}
        return sorted(order, key=order.get)

    # Model
    def _obs_image(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(obs[k]) for k in self.image_keys], -1)

    def _show(self) -> None:
        """The latent's view: the dream image, the predicted reward and continue probability."""
        self.dream, self.reward, self.cont = self.model.dream_view(self.latent)
        self.frame += 1
        self._uris.clear()

    @torch.no_grad()
    def reset(self) -> None:
        """A fresh real episode; the dream restarts from the latent of its first step."""
        start = time.perf_counter()
        obs = self.env.reset()
        self.real = self._obs_image(obs)
        self.real_return, self.real_reward, self.real_steps = 0.0, 0.0, 0
        self.real_done = False
        self.latent = self.model.dream_start(obs)
        self._show()
        self.horizon = 0
        self.last_by = None
        self.step_ms = 1000 * (time.perf_counter() - start)

    @torch.no_grad()
    def agent_action(self) -> Any:
        """The agent's greedy action on the model's latent state."""
        return self.model.dream_action(self.latent)

    def choose(self) -> Any:
        """The next action: the agent's in agent mode, else the keys'; the taps are consumed."""
        keys = self.keys()
        self._tapped.clear()
        if self.mode == "agent":
            return self.agent_action()
        return self.keymap.human_action(keys, self.last_action)

    @torch.no_grad()
    def step(self, action: Any = None) -> None:
        """One imagined step with ``action`` (default: :meth:`choose`), the same action in the
        real env while its episode lasts."""
        start = time.perf_counter()
        by = self.mode if action is None else "given"
        if action is None:
            action = self.choose()
        self.latent = self.model.dream_step(self.latent, action)
        self._show()
        self.horizon += 1
        self.last_action, self.last_by = action, by
        if not self.real_done:
            env_action = np.int64(action) if self.keymap.discrete else np.asarray(action)
            obs = self.env.step(env_action)
            self.real = self._obs_image(obs)
            self.real_reward = float(obs["reward"])
            self.real_return += self.real_reward
            self.real_steps += 1
            self.real_done = bool(obs["is_last"])
        self.step_ms = 1000 * (time.perf_counter() - start)

    # Messages
    def _uri(self, which: str) -> str:
        if which not in self._uris:
            self._uris[which] = data_uri(self.dream if which == "dream" else self.real)
        return self._uris[which]

    def message(self) -> dict[str, Any]:
        """The page's view of the current state (JSON-able); the PNGs are encoded once per
        state, the real frame only while it is shown."""
        return {
            "type": "frame",
            "frame": self.frame,
            "horizon": self.horizon,
            "mode": self.mode,
            "paused": self.paused,
            "show_real": self.show_real,
            "action": None if self.last_by is None else self.keymap.label(self.last_action),
            "by": self.last_by,
            "reward": round(self.reward, 4),
            "cont": round(self.cont, 4),
            "dream": self._uri("dream"),
            "real": self._uri("real") if self.show_real else None,
            "real_reward": self.real_reward,
            "real_return": round(self.real_return, 4),
            "real_steps": self.real_steps,
            "real_done": self.real_done,
            "ms": round(self.step_ms, 2),
        }

    def command(self, msg: dict[str, Any]) -> bool:
        """Apply one message of the page; True when the state shown changed (send a frame).

        ``{"type": "down" | "up", "key": id}``, ``{"type": "release"}`` (all keys up),
        ``{"type": "mode", "mode": "human" | "agent"}``, ``{"type": "real", "show": bool}``,
        ``{"type": "pause", "paused": bool}``, ``{"type": "reset"}``, ``{"type": "step"}``
        (one step while paused). While paused, a key with an action steps once with it."""
        kind = msg.get("type")
        if kind == "down" and isinstance(msg.get("key"), str):
            self.press(msg["key"])
            if self.paused and self.mode == "human" and self.keymap.acts(msg["key"]):
                self.step()
                return True
            return False
        if kind == "up" and isinstance(msg.get("key"), str):
            self.release(msg["key"])
            return False
        if kind == "release":
            self.release_all()
            return False
        if kind == "mode" and msg.get("mode") in ("human", "agent"):
            self.mode = msg["mode"]
        elif kind == "real" and isinstance(msg.get("show"), bool):
            self.show_real = msg["show"]
        elif kind == "pause" and isinstance(msg.get("paused"), bool):
            self.paused = msg["paused"]
        elif kind == "reset":
            self._tapped.clear()
            self.reset()
        elif kind == "step" and self.paused:
            self.step()
        else:
            return False
        return True


def time_frames(session: DreamSession, frames: int = 100) -> dict[str, float]:
    """Time ``frames`` frames of the server's work per frame: :meth:`DreamSession.step` and
    :meth:`DreamSession.message` (PNG encoding) as JSON, in the session's mode and view.
    Returns ``{"fps", "ms_per_frame", "ms_min", "ms_median"}`` (wall time; the real env is
    reset when its episode ends)."""
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        if session.real_done:
            session.reset()
        session.step()
        json.dumps(session.message())
        times.append(time.perf_counter() - start)
    total = sum(times)
    return {
        "fps": frames / total,
        "ms_per_frame": 1000 * total / frames,
        "ms_min": 1000 * min(times),
        "ms_median": 1000 * float(np.median(times)),
    }


# The server


def check_playable(run_dir: str | Path) -> Any:
    """The RunInfo of a run that can be played; bad input (not a run, not a run of a Dreamer or
    :class:`~worldmodels.core.Playable` agent on images, no checkpoint): ``UserError``."""
    from ..agents import get_agent_spec
    from ..train.run import load_run, run_env

    run_dir = Path(run_dir)
    info = load_run(run_dir)
    spec = get_agent_spec(info.agent)
    family = spec.family
    if family != "dreamer" and not issubclass(spec.load()[2], Playable):
        why = {
            "planet": "PlaNet plans with CEM and has no actor to drive the dream",
            "tdmpc2": "TD-MPC2's model predicts latents, it has no image decoder",
            "muzero": "MuZero's model predicts latents, it has no image decoder",
        }.get(family, "its model has no image decoder")
        raise UserError(f"{run_dir} is a {info.agent} run ({why}); {PLAYABLE}")
    if info.env is None:
        raise UserError(
            f"{run_dir} was trained offline without --env, so there is no env to start the "
            f"dream from; {PLAYABLE}"
        )
    env = run_env(info, info.seed)
    try:
        images = [k for k, s in env.obs_space.items() if len(s.shape) == 3]
    finally:
        env.close()
    if not images:
        raise UserError(
            f"{run_dir} is a {info.agent} run on vector observations of {info.env}, its model "
            f"decodes no images; {PLAYABLE}"
        )
    if not (run_dir / "checkpoints" / "latest.json").exists():
        raise UserError(
            f"{run_dir} has no checkpoint yet; fix: train it until it saves one "
            f"(worldmodels train --resume {run_dir})"
        )
    return info


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port); in use: ``UserError``."""
    if not 0 <= int(port) <= 65535:
        raise UserError(f"--port {port} is not a port number; fix: 1..65535, or 0 for a free one")
    try:
        return socket.create_server((host, int(port)))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} on {host} is in use; fix: pass another --port, or --port 0 for a "
                "free one"
            ) from None
        raise UserError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); fix: --host 127.0.0.1 and "
            "a --port above 1023"
        ) from None


class DreamServer:
    """The page and the websocket on one port; :meth:`serve_forever` blocks, :meth:`start` runs
    it in a thread and :meth:`stop` ends it. Construction checks the run and the port and loads
    the agent (bad input: ``UserError``)."""

    def __init__(
        self,
        run_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = PORT,
        fps: float = FPS,
        device: str = "auto",
    ):
        try:
            import websockets.asyncio.server  # noqa: F401
        except ImportError:
            raise MissingExtraError("worldmodels play-dream", "viz", "websockets") from None
        if not fps > 0:
            raise UserError(f"--fps must be positive (got {fps})")
        from ..train.run import load_agent

        self.run_dir = Path(run_dir)
        self.info = check_playable(self.run_dir)
        self.host, self.fps = host, float(fps)
        self.sock = listen(host, port)
        try:
            self.agent = load_agent(self.run_dir, device=device)
        except BaseException:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]
        self.sessions = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def page(self) -> bytes:
        return page_html(self.info).encode("utf-8")

    def hello(self, session: DreamSession) -> dict[str, Any]:
        info = self.info
        image = session.dream.shape
        return {
            "type": "hello",
            "run": str(self.run_dir),
            "agent": info.agent,
            "presets": info.presets,
            "env": info.env,
            "env_steps": int(self.agent.counters.get("env_steps", 0)),
            "discrete": session.keymap.discrete,
            "keys": session.keymap.rows(),
            "action_keys": sorted(
                session.keymap.keys if session.keymap.discrete else session.keymap.axes
            ),
            "fps": self.fps,
            "size": [int(image[0]), int(image[1])],
        }

    # HTTP
    def _hosts(self) -> set[str]:
        return {"127.0.0.1", "localhost", "[::1]", self.host, f"[{self.host}]"}

    def _process_request(self, connection: Any, request: Any) -> Any:
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path = request.path.split("?")[0]
        host = request.headers.get("Host", "")
        if host.rsplit(":", 1)[0] not in self._hosts():
            return connection.respond(403, "forbidden: unknown Host\n")
        if path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"http://{host}":
                return connection.respond(403, "forbidden: another origin\n")
            return None
        if path != "/":
            return connection.respond(404, "not found\n")
        body = self.page()
        headers = Headers(
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Content-Security-Policy", CSP),
                ("Cache-Control", "no-store"),
                ("Connection", "close"),
            ]
        )
        return Response(200, "OK", headers, body)

    # Websocket
    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        from ..train.run import run_env

        env = run_env(self.info, self.info.seed + SEED_OFFSET + self.sessions, True)
        self.sessions += 1
        session = DreamSession(self.agent, env)
        wake = asyncio.Event()
        clock = None
        try:
            await ws.send(json.dumps(self.hello(session)))
            await ws.send(json.dumps(session.message()))
            clock = asyncio.create_task(self._clock(ws, session, wake))
            async for text in ws:
                try:
                    msg = json.loads(text)
                except (TypeError, ValueError):
                    continue
                if isinstance(msg, dict) and session.command(msg):
                    await ws.send(json.dumps(session.message()))
                wake.set()
                if clock.done():
                    break
        except ConnectionClosed:
            pass
        finally:
            if clock is not None:
                clock.cancel()
                try:
                    await clock
                except (asyncio.CancelledError, ConnectionClosed):
                    pass
            env.close()

    async def _clock(self, ws: Any, session: DreamSession, wake: asyncio.Event) -> None:
        """A frame every 1 / fps seconds while the session runs (no catching up when late)."""
        from websockets.exceptions import ConnectionClosed

        period = 1.0 / self.fps
        due = time.monotonic()
        try:
            while True:
                if session.paused:
                    wake.clear()
                    await wake.wait()
                    due = time.monotonic()
                    continue
                session.step()
                await ws.send(json.dumps(session.message()))
                due = max(due + period, time.monotonic())
                await asyncio.sleep(due - time.monotonic())
        except ConnectionClosed:
            pass
        except Exception as e:  # a model or env error: say so and end the connection
            print(f"play-dream: {type(e).__name__}: {e}", file=sys.stderr)
            await ws.close(1011, "server error")

    async def _main(self) -> None:
        from websockets.asyncio.server import ServerConnection, serve
        from websockets.protocol import State

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        opened: weakref.WeakSet[ServerConnection] = weakref.WeakSet()

        class Connection(ServerConnection):
            def __init__(self, *args: Any, **kwargs: Any):
                super().__init__(*args, **kwargs)
                opened.add(self)

        server = await serve(
            self._handle,
            sock=self.sock,
            process_request=self._process_request,
            compression=None,
            max_size=2**16,
            close_timeout=1.0,
            create_connection=Connection,
        )
        self._ready.set()
        await self._stop.wait()
        server.close()
        for connection in list(opened):
            # Browsers open sockets ahead of their requests; idle, they would hold the close
            # for the opening handshake's timeout (10 s).
            if connection.protocol.state is State.CONNECTING:
                connection.transport.abort()
        await server.wait_closed()

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` (or Ctrl-C, which returns quietly)."""
        try:
            asyncio.run(self._main())
        except KeyboardInterrupt:
            pass
        finally:
            self._ready.set()
            self.sock.close()

    def start(self) -> DreamServer:
        """Serve in a daemon thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        self._ready.wait(60)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)


def play_dream(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = PORT,
    fps: float = FPS,
    device: str = "auto",
    threads: int = 1,
) -> None:
    """``worldmodels play-dream``: serve the page and print its address until Ctrl-C.
    ``threads``: torch intra-op threads on CPU (0 = every core); one frame is a batch of one,
    and one thread is fastest (on a busy 2-core machine two threads are 10 times slower)."""
    from ..train.run import set_threads

    if threads < 0:
        raise UserError(f"--threads must be >= 0 (0 = every core), got {threads}")
    set_threads(threads)
    server = DreamServer(run_dir, host, port, fps, device)
    print(
        f"the dream of {server.run_dir} ({server.info.agent} on {server.info.env}) at "
        f"{server.url} (Ctrl-C stops)",
        flush=True,
    )
    server.serve_forever()


# The page

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
"""The page loads nothing: its only connection is the websocket back to the server."""


def page_html(info: Any) -> str:
    """The page of a run (:data:`PAGE` with its title)."""
    title = html.escape(f"Dream: {info.agent} on {info.env}")
    return PAGE.replace("__TITLE__", title)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>__TITLE__</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1000px;padding:1em 2em;color:#222;background:#fff;line-height:1.4}
h1{font-size:1.4em;margin:.2em 0}.sub{color:#555;font-size:.9em}
.screens{display:flex;gap:1.5em;flex-wrap:wrap;margin:1em 0}
figure{margin:0}figcaption{text-align:center;font-size:.9em;color:#444}
.screens img{width:320px;height:320px;image-rendering:pixelated;border:3px solid #c33;
background:#000}#real{border-color:#393}
.status{display:flex;flex-wrap:wrap;gap:.4em 1.4em;font-size:.95em}
.status b{font-variant-numeric:tabular-nums}
.controls{margin:1em 0}.controls button{margin:.2em .4em .2em 0;padding:.3em .8em;font-size:.95em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.15em .6em;text-align:left}th{background:#f2f2f2}
kbd{border:1px solid #aaa;border-radius:3px;padding:0 .3em;background:#f7f7f7;margin-right:.2em}
.note{color:#8a4b00}.mode-agent{color:#06c}.mode-human{color:#c33}
</style></head>
<body data-frame="0" data-horizon="0" data-mode="human" data-paused="false" data-real="false"
data-connected="false">
<h1>__TITLE__</h1>
<div class="sub" id="about">connecting…</div>
<div class="screens">
<figure><img id="dream" alt="the model's frame"><figcaption>the model (dream)</figcaption></figure>
<figure id="realfig" hidden><img id="real" alt="the real env's frame">
<figcaption id="realcap">the real env, same actions</figcaption></figure>
</div>
<div class="status">
<span>acting: <b id="mode" class="mode-human">human</b></span>
<span id="paused"></span>
<span>imagined steps since reset: <b id="horizon">0</b></span>
<span>action: <b id="action">none yet</b></span>
<span>predicted reward <b id="reward">0</b>, continue <b id="cont">1</b></span>
<span>real return <b id="realret">0</b></span>
<span>frame <b id="frame">0</b></span>
<span><b id="fps">0</b> fps</span>
</div>
<div class="controls">
<button id="bmode">agent drives (m)</button>
<button id="breal">show the real env (v)</button>
<button id="bpause">pause (space)</button>
<button id="bstep" disabled>step (.)</button>
<button id="breset">reset (r)</button>
</div>
<p class="note" id="note"></p>
<h2 style="font-size:1.1em">Keys</h2>
<table><thead><tr><th>key</th><th>action</th></tr></thead><tbody id="keys"></tbody></table>
<p class="sub">m: human / agent · v: real env on / off · space: pause · . : one step while
paused (a key with an action also steps once) · r: reset (a new real episode; the dream starts
again from the posterior of its first frame). The frames come from the model alone: after
reset it never sees the real env again.</p>
<script>
"use strict";
const $ = id => document.getElementById(id);
const body = document.body;
let ws = null, actionKeys = new Set(), state = {mode: "human", paused: false, show_real: false};
let stamps = [];
function send(msg) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg)); }
function keyId(e) {
  let code = e.code.replace(/^Numpad(\\d)$/, "Digit$1");
  if (e.shiftKey && code.startsWith("Digit")) code = "Shift+" + code;
  return code;
}
function row(keys, action, idle) {
  const tr = document.createElement("tr");
  const k = document.createElement("td");
  if (idle) k.textContent = "no key";
  for (const key of keys) {
    const b = document.createElement("kbd"); b.textContent = key; k.append(b);
  }
  const a = document.createElement("td"); a.textContent = action;
  tr.append(k, a); return tr;
}
function hello(m) {
  $("about").textContent = `${m.agent} [${m.presets.join(", ")}] on ${m.env} after ${m.env_steps}` +
    ` env steps; ${m.discrete ? "discrete" : "continuous"} actions; ${m.fps} frames/s; ` +
    `frames ${m.size[0]}x${m.size[1]}`;
  actionKeys = new Set(m.action_keys);
  $("keys").replaceChildren(...m.keys.map(r => row(r.keys, r.action, r.idle)));
}
function frame(m) {
  state = m;
  $("dream").src = m.dream;
  if (m.real) $("real").src = m.real;
  $("realfig").hidden = !m.show_real;
  $("mode").textContent = m.mode; $("mode").className = "mode-" + m.mode;
  $("paused").textContent = m.paused ? "paused" : "";
  $("horizon").textContent = m.horizon; $("frame").textContent = m.frame;
  $("action").textContent = m.action === null ? "none yet" : `${m.action} (${m.by})`;
  $("reward").textContent = m.reward.toFixed(3); $("cont").textContent = m.cont.toFixed(3);
  $("realret").textContent = m.real_return.toFixed(2) + (m.real_done ? " (episode over)" : "");
  $("realcap").textContent = m.real_done
    ? `the real env: episode over after ${m.real_steps} steps (r starts a new one)`
    : `the real env, same actions (step ${m.real_steps})`;
  $("bmode").textContent = m.mode === "agent" ? "human drives (m)" : "agent drives (m)";
  $("breal").textContent = m.show_real ? "hide the real env (v)" : "show the real env (v)";
  $("bpause").textContent = m.paused ? "run (space)" : "pause (space)";
  $("bstep").disabled = !m.paused;
  $("note").textContent = m.mode === "agent" ? "the agent acts; keys with actions are ignored" : "";
  Object.assign(body.dataset, {frame: m.frame, horizon: m.horizon, mode: m.mode,
    paused: m.paused, real: m.show_real});
  const now = performance.now(); stamps.push(now);
  while (stamps.length && now - stamps[0] > 1000) stamps.shift();
  $("fps").textContent = stamps.length;
}
const control = {
  KeyM: () => send({type: "mode", mode: state.mode === "agent" ? "human" : "agent"}),
  KeyV: () => send({type: "real", show: !state.show_real}),
  Space: () => send({type: "pause", paused: !state.paused}),
  Period: () => send({type: "step"}),
  KeyR: () => send({type: "reset"}),
};
$("bmode").onclick = control.KeyM; $("breal").onclick = control.KeyV;
$("bpause").onclick = control.Space; $("bstep").onclick = control.Period;
$("breset").onclick = control.KeyR;
document.addEventListener("keydown", e => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (control[e.code]) { e.preventDefault(); if (!e.repeat) control[e.code](); return; }
  const id = keyId(e);
  if (!actionKeys.has(id)) return;
  e.preventDefault();
  if (!e.repeat) send({type: "down", key: id});
});
document.addEventListener("keyup", e => {
  const id = keyId(e);
  if (actionKeys.has(id) || actionKeys.has("Shift+" + e.code)) send({type: "up", key: e.code});
});
window.addEventListener("blur", () => send({type: "release"}));
function connect() {
  ws = new WebSocket(`ws://${location.host}/ws`);
  ws.onopen = () => { body.dataset.connected = "true"; };
  ws.onmessage = ev => { const m = JSON.parse(ev.data); (m.type === "hello" ? hello : frame)(m); };
  ws.onclose = () => {
    body.dataset.connected = "false";
    $("about").textContent = "disconnected: the server stopped; start it again and reload";
  };
}
connect();
</script>
</body></html>
"""
