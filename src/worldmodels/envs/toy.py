"""Tiny deterministic environments for tests (numpy only, no Gymnasium).

Registered as ``toy:<name>``: ``toy:target`` (discrete), ``toy:image_target`` (discrete, pixels),
``toy:reach`` (continuous). Each class carries ``random_return`` (expected return of a uniform
random policy) and ``optimal_return`` (expected return of the best policy), so learning tests
can check that an agent beats random and approaches optimum.
"""

from __future__ import annotations

import numpy as np

from worldmodels.envs.base import (
    ActionSpace,
    Env,
    Spec,
    continuous_action,
    discrete_index,
    make_step,
)
from worldmodels.errors import UserError

_OBS_MODES = ("vector", "pixels")


def _check_obs(name: str, obs: str) -> None:
    if obs not in _OBS_MODES:
        raise UserError(f"unknown obs {obs!r} for toy:{name}; fix: use obs='vector' or 'pixels'")


class _ToyEnv(Env):
    """Shared seeding: the first reset uses ``seed`` (or the constructor's), later ones continue."""

    def __init__(self, seed: int | None = 0):
        self._seed = seed
        self._rng: np.random.Generator | None = None

    def _reseed(self, seed: int | None) -> np.random.Generator:
        if seed is not None:
            self._rng = np.random.default_rng(int(seed))
        elif self._rng is None:
            self._rng = np.random.default_rng(self._seed)
        return self._rng


class TargetEnv(_ToyEnv):
    """Pick the action that matches a target shown in the observation.

    Each episode draws a target ``k`` in ``{0..3}``. ``'vector'`` is ``one_hot(k)`` followed by
    the time feature ``t / length`` (float32, size 5); with ``obs='pixels'`` the observation is
    ``'image'``: a bright square in quadrant ``k`` (see :class:`ImageTargetEnv`). Reward 1 when
    ``action == k``, else 0. The episode terminates (``is_terminal``) after ``length`` = 10 steps.
    """

    num_targets = 4
    length = 10
    random_return = 2.5  # 10 steps * P(guess right) = 10 * 1/4
    optimal_return = 10.0  # always pick k

    def __init__(self, obs: str = "vector", seed: int | None = 0, size: tuple[int, int] = (64, 64)):
        super().__init__(seed)
        _check_obs("target", obs)
        self._pixels = obs == "pixels"
        self._size = (int(size[0]), int(size[1]))
        if self._pixels:
            self.obs_space = {"image": Spec((*self._size, 3), np.uint8)}
        else:
            self.obs_space = {"vector": Spec((self.num_targets + 1,), np.float32)}
        self.act_space = ActionSpace(discrete=True, n=self.num_targets)
        self._k = 0
        self._t = 0
        self._done = True

    def _obs(self) -> dict[str, np.ndarray]:
        if self._pixels:
            return {"image": target_image(self._k, self._size)}
        vec = np.zeros(self.num_targets + 1, dtype=np.float32)
        vec[self._k] = 1.0
        vec[-1] = self._t / self.length
        return {"vector": vec}

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        rng = self._reseed(seed)
        self._k = int(rng.integers(0, self.num_targets))
        self._t = 0
        self._done = False
        return make_step(self._obs(), 0.0, is_first=True)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        if self._done:
            raise RuntimeError("toy:target: call reset() before step() (episode is over)")
        a = discrete_index(action, self.num_targets)
        self._t += 1
        reward = 1.0 if a == self._k else 0.0
        self._done = self._t >= self.length
        return make_step(self._obs(), reward, is_last=self._done, is_terminal=self._done)

    def render(self) -> np.ndarray:
        return target_image(self._k, self._size)


class ImageTargetEnv(TargetEnv):
    """:class:`TargetEnv` that always observes ``'image'`` (uint8 ``H, W, 3``, default 64x64).

    Quadrants: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.
    """

    def __init__(self, obs: str = "pixels", seed: int | None = 0, size: tuple[int, int] = (64, 64)):
        _check_obs("image_target", obs)
        super().__init__(obs="pixels", seed=seed, size=size)


def target_image(k: int, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """Dark background with a bright square centred in quadrant ``k`` (row-major quadrants)."""
    h, w = size
    img = np.full((h, w, 3), 16, dtype=np.uint8)
    r0, c0 = (k // 2) * (h // 2), (k % 2) * (w // 2)
    qh, qw = h // 2, w // 2
    img[r0 + qh // 4 : r0 + qh - qh // 4, c0 + qw // 4 : c0 + qw - qw // 4] = 240
    return img


class ReachEnv(_ToyEnv):
    """Move a point on ``[-1, 1]`` to the fixed goal 0.5.

    ``x0 ~ U(-1, 1)`` (env rng); ``'vector'`` = ``[x, goal]``; action ``a`` in ``[-1, 1]`` (1-D);
    ``x <- clip(x + 0.2 a, -1, 1)``; reward ``-|x - goal|`` after the move. After 20 steps the
    episode is truncated (``is_last`` True, ``is_terminal`` False). ``obs='pixels'`` shows a
    1-D strip: the goal column green, the point's column white.
    """

    goal = 0.5
    speed = 0.2
    length = 20
    # Greedy (move straight to the goal at full speed) is optimal: after k steps no policy can be
    # closer than max(d - 0.2k, 0), d = |x0 - goal|. For x0 ~ U(-1, 1),
    # E[max(d - c, 0)] = ((1.5 - c)_+^2 + (0.5 - c)_+^2) / 4; summing over c = 0.2k, k = 1..20,
    # gives (4.55 + 0.10) / 4 = 1.1625.
    optimal_return = -1.1625
    # Uniform random actions: simulated 100_000 episodes of ReachEnv(seed=0) (consecutive resets)
    # with act_space.sample(np.random.default_rng(1)); mean -12.778, std 8.25 (s.e. 0.026).
    random_return = -12.78

    def __init__(self, obs: str = "vector", seed: int | None = 0, size: tuple[int, int] = (64, 64)):
        super().__init__(seed)
        _check_obs("reach", obs)
        self._pixels = obs == "pixels"
        self._size = (int(size[0]), int(size[1]))
        if self._pixels:
            self.obs_space = {"image": Spec((*self._size, 3), np.uint8)}
        else:
            self.obs_space = {"vector": Spec((2,), np.float32)}
        self.act_space = ActionSpace(discrete=False, n=1)
        self._x = 0.0
        self._t = 0
        self._done = True

    def _image(self) -> np.ndarray:
        h, w = self._size
        img = np.zeros((h, w, 3), dtype=np.uint8)

        def col(v: float) -> int:
            return int(np.clip(round((v + 1.0) / 2.0 * (w - 1)), 0, w - 1))

        img[:, col(self.goal), 1] = 200
        img[h // 4 : h - h // 4, col(self._x)] = 255
        return img

    def _obs(self) -> dict[str, np.ndarray]:
        if self._pixels:
            return {"image": self._image()}
        return {"vector": np.array([self._x, self.goal], dtype=np.float32)}

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        rng = self._reseed(seed)
        self._x = float(rng.uniform(-1.0, 1.0))
        self._t = 0
        self._done = False
        return make_step(self._obs(), 0.0, is_first=True)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        if self._done:
            raise RuntimeError("toy:reach: call reset() before step() (episode is over)")
        a = float(continuous_action(action, 1)[0])
        self._x = float(np.clip(self._x + self.speed * a, -1.0, 1.0))
        self._t += 1
        self._done = self._t >= self.length
        reward = -abs(self._x - self.goal)
        return make_step(self._obs(), reward, is_last=self._done, is_terminal=False)

    def render(self) -> np.ndarray:
        return self._image()


TOY_ENVS: dict[str, type[_ToyEnv]] = {
    "target": TargetEnv,
    "image_target": ImageTargetEnv,
    "reach": ReachEnv,
}


def make_toy(
    name: str, *, obs: str = "vector", seed: int | None = 0, size: tuple[int, int] = (64, 64)
) -> Env:
    """Build ``toy:<name>``; unknown names raise a one-line UserError listing the valid ones."""
    cls = TOY_ENVS.get(name)
    if cls is None:
        known = ", ".join(f"toy:{n}" for n in TOY_ENVS)
        raise UserError(f"unknown toy env 'toy:{name}'; fix: use one of {known}")
    if cls is ImageTargetEnv and obs == "vector":
        obs = "pixels"  # image_target only has an image observation
    return cls(obs=obs, seed=seed, size=size)
