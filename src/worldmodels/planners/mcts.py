"""Batched Monte-Carlo tree search for MuZero and Gumbel MuZero, in plain PyTorch.

The search knows nothing about networks (as in google-deepmind/mctx): it takes the root's
network output (`RootOutput`) and a `recurrent_fn(embedding [B, ...], action [B] long) ->
(reward [B], discount [B], prior_logits [B, A], value [B], next_embedding [B, ...])` and searches
B independent trees at once. An embedding is a tensor or a dict of tensors (as mctx's pytrees):
a value-prefix model keeps its LSTM state in the node beside the hidden state, and its
`recurrent_fn` turns prefixes into rewards. Every tree statistic is a `[B, N]` or `[B, N, A]` tensor
(N = num_simulations + 1 nodes; node 0 is the root, node k is added by simulation k), and each
simulation is one descent of all B trees in lockstep (a Python loop over depth, tensor ops over
the batch), one batched `recurrent_fn` call for the B new leaves, and one vectorised backup.
pUCT scores the children of every node added so far in one pass at the start of a simulation
(nothing changes during a descent), so the descent itself only follows each node's best child.

Conventions (MuZero, Schrittwieser et al. 2020, Appendix B "Search", and its pseudocode):

- `reward` r(s, a) and `discount` d(s, a) are those of the transition s -a-> s'; `value` v(s')
  is the network value of s'. A terminal transition returns d = 0, which cuts the value beyond.
- Q(s, a) = r(s, a) + sign * d(s, a) * V(s'), where V(s') is the mean of the values backed up
  through s' (its network value counts as its first visit). sign = +1 for one agent.
- `two_player=True` (zero-sum games with alternating moves): a node's value is from the
  perspective of the player to move at that node; r(s, a) is from the perspective of the player
  who acted, i.e. the player to move at s. Then sign = -1: Q(s, a) = r - d * V(s') is from the
  perspective of the player to move at s, the backed-up return flips sign at every level, and
  every node maximises its own player's Q. `root_value` and `q_values` are from the perspective
  of the player to move at the root. (Same as mctx with a discount of -1.)
- Selection (pUCT, Appendix B): argmax_a Q_norm(s, a) + P(s, a) * sqrt(N(s)) / (1 + N(s, a))
  * (pb_c_init + log((N(s) + pb_c_base + 1) / pb_c_base)), ties to the lowest action index.
  N(s) counts the visits of s including its expansion, so N(s) = 1 + sum_a N(s, a) (the root
  starts with one visit worth its network value, as in mctx; see docs/deviations.md).
- Q_norm is Q min-max normalised by the smallest and largest Q seen on any edge of that tree so
  far (MuZero's MinMaxStats, updated with r + sign * d * V(s') of every edge on the backed-up
  path); while max <= min it is Q itself. Unvisited children get Q_norm = 0 (the pseudocode's
  choice), or with `unvisited_value="parent"` the normalised value V(s) of their parent (mctx).
  `known_bounds` seeds the bounds (board games).
- Dirichlet noise (as AlphaZero and the pseudocode): the root prior becomes
  (1 - frac) * P + frac * Dir(alpha), the noise drawn over the legal actions only, from
  `generator` when one is given (random draws are made on the generator's device, CPU if None).
- Legal masks apply at the root only: an illegal root action has prior 0 and is never selected.
  Interior nodes take every action (the model learns what an illegal move leads to).
- The tree's float dtype is the root value's (float64 roots give float64 trees).

`gumbel_muzero_search` (Danihelka et al. 2022) shares the tree, expansion and backup; it replaces
the root rule by Gumbel-top-k with sequential halving and the interior rule by the deterministic
improved-policy rule, with mctx's `qtransform_completed_by_mix_value` instead of min-max stats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

Embedding = Tensor | dict[str, Tensor]
"""A node's latent state: one ``[B, ...]`` tensor, or a dict of them (any shapes and dtypes, each
with the batch first), e.g. a hidden state with a recurrent reward model's state beside it (as
mctx allows any pytree)."""


class RecurrentOutput(NamedTuple):
    """What `recurrent_fn` returns (any 5-tuple in this order works)."""

    reward: Tensor
    """[B] r(s, a), from the perspective of the player who acted."""
    discount: Tensor
    """[B] d(s, a) in [0, 1]; 0 after a terminal transition."""
    prior_logits: Tensor
    """[B, A] policy logits at s'."""
    value: Tensor
    """[B] v(s'), from the perspective of the player to move at s'."""
    embedding: Embedding
    """[B, ...] the latent state s' (a tensor or a dict of tensors, as the root's)."""


RecurrentFn = Callable[[Embedding, Tensor], tuple[Tensor, Tensor, Tensor, Tensor, Embedding]]


@dataclass
class RootOutput:
    """The network output at the B roots."""

    prior_logits: Tensor
    """[B, A] policy logits."""
    value: Tensor
    """[B] value, from the perspective of the player to move; its dtype is the tree's."""
    embedding: Embedding
    """[B, ...] latent state, any shape and dtype, or a dict of such tensors."""


@dataclass(frozen=True)
class MCTSConfig:
    """MuZero search settings, named as in the MuZero pseudocode (`MuZeroConfig`)."""

    num_simulations: int = 50
    """Simulations per search; the tree holds num_simulations + 1 nodes."""
    pb_c_init: float = 1.25
    """c1 of the pUCT rule."""
    pb_c_base: float = 19652.0
    """c2 of the pUCT rule."""
    root_dirichlet_alpha: float = 0.25
    """Concentration of the Dirichlet noise on the root prior (0.3 chess, 0.03 Go, 0.25 Atari)."""
    root_exploration_fraction: float = 0.25
    """Weight of the noise in the root prior; 0 turns the noise off."""
    two_player: bool = False
    """Alternating zero-sum game: values flip sign at every level (see the module docstring)."""
    known_bounds: tuple[float, float] | None = None
    """(min, max) that seed the Q normalisation, e.g. (-1, 1) for board games; None: learned."""
    unvisited_value: Literal["zero", "parent"] = "zero"
    """Value term of an unvisited child in pUCT: 0 after normalisation (the pseudocode: the
    lowest score, so the prior alone decides whether it is ever tried), or the parent's current
    value V(s), normalised like a Q (mctx's ``qtransform_by_parent_and_siblings``,
    EfficientZero)."""
    qtransform: QTransform | None = None
    """pUCT's value score as a function of the tree (`qtransform_min_max`, ...); None = the one
    that ``unvisited_value`` names (`QTRANSFORMS`)."""


@dataclass(frozen=True)
class GumbelMCTSConfig:
    """Gumbel MuZero settings (Danihelka et al. 2022), named as in the paper."""

    num_simulations: int = 50
    """Simulations per search."""
    max_num_considered_actions: int = 16
    """m, the actions sampled without replacement at the root for sequential halving."""
    gumbel_scale: float = 1.0
    """Scale of the root Gumbel noise; 0 gives the deterministic (evaluation) search."""
    c_visit: float = 50.0
    """sigma(q) = (c_visit + max_b N(b)) * c_scale * q, the monotone transform of Q."""
    c_scale: float = 0.1
    """See c_visit (mctx's default, `value_scale`)."""
    two_player: bool = False
    """Alternating zero-sum game: values flip sign at every level (see the module docstring)."""


@dataclass
class Tree:
    """B search trees in arrays; node 0 is the root, node k was added by simulation k."""

    node_visits: Tensor
    """[B, N] N(s), including the expansion visit."""
    node_value_sums: Tensor
    """[B, N] sum of the returns backed up through s (its own perspective); V(s) = sum / N(s)."""
    raw_values: Tensor
    """[B, N] network value v(s) at expansion."""
    parents: Tensor
    """[B, N] long, parent node index (-1 at the root)."""
    action_from_parent: Tensor
    """[B, N] long, action that led to the node (-1 at the root)."""
    children_index: Tensor
    """[B, N, A] long, node index of each child (-1 while unexpanded)."""
    children_stats: Tensor
    """[3, B, N, A] N(s, a), Q(s, a) and P(s, a) stacked; read them as `children_visits`,
    `children_qvalues` and `children_prior`. In memory (`_init_tree`'s `action_major`): [3, A, B,
    N] for pUCT, which scores every node from views of the planes without a copy and finds each
    node's best action as a reduction over the outer dimension (`_first_argmax`); [3, B, N, A]
    for Gumbel, whose per-node scoring gathers a node's three rows with one index."""
    children_rewards: Tensor
    """[B, N, A] r(s, a) (0 while unexpanded)."""
    children_discounts: Tensor
    """[B, N, A] d(s, a) as returned by recurrent_fn (0 while unexpanded)."""
    embeddings: Embedding
    """[B, N, ...] latent state of each node (a dict of such tensors when the root's is one)."""
    root_legal: Tensor
    """[B, A] bool legal actions at the root."""
    min_q: Tensor
    """[B] smallest Q seen in each tree (MinMaxStats), +inf before any."""
    max_q: Tensor
    """[B] largest Q seen in each tree, -inf before any."""
    sign: float
    """+1 one agent, -1 two players (factor of the discount in Q and the backup)."""

    @property
    def children_visits(self) -> Tensor:
        """[B, N, A] N(s, a) (a view)."""
        return self.children_stats[0]

    @property
    def children_qvalues(self) -> Tensor:
        """[B, N, A] Q(s, a) = r + sign * d * V(child), player at s; 0 while unvisited (a view)."""
        return self.children_stats[1]

    @property
    def children_prior(self) -> Tensor:
        """[B, N, A] prior probabilities (at the root: legal-masked, with noise) (a view)."""
        return self.children_stats[2]

    def node_values(self) -> Tensor:
        """[B, N] V(s) = value sum / visits (0 for nodes not yet added)."""
        return self.node_value_sums / self.node_visits.clamp(min=1)


@dataclass
class MCTSOutput:
    """Result of a search over B roots."""

    action: Tensor
    """[B] long, the action to play."""
    visit_counts: Tensor
    """[B, A] long, N(root, a)."""
    visit_probs: Tensor
    """[B, A] N(root, a) / sum_b N(root, b)."""
    action_weights: Tensor
    """[B, A] policy training target: visit_probs (MuZero) or the improved policy (Gumbel)."""
    root_value: Tensor
    """[B] search value V(root), player to move at the root."""
    q_values: Tensor
    """[B, A] Q(root, a), player to move at the root; 0 for unvisited actions."""
    tree: Tree
    """The full search tree."""


def visit_temperature(
    training_steps: float,
    schedule: Sequence[tuple[float, float]] = ((500e3, 1.0), (750e3, 0.5), (math.inf, 0.25)),
) -> float:
    """Visit-count temperature: T of the first (bound, T) with steps < bound (MuZero, Atari).

    The default is the MuZero pseudocode's Atari schedule (`visit_softmax_temperature`): 1.0 before
    500k training steps, 0.5 before 750k, 0.25 after. The last entry's T holds past all bounds.
    """
    for bound, temperature in schedule:
        if training_steps < bound:
            return temperature
    return schedule[-1][1]


def select_action(
    visit_counts: Tensor,
    temperature: float,
    generator: torch.Generator | None = None,
    prior: Tensor | None = None,
) -> Tensor:
    """[B, A] -> [B] long: argmax visits (T = 0) or a sample with p(a) ~ N(a)^(1/T) (T > 0).

    At T = 0, ties go to the larger `prior` ([B, A], optional), then to the lowest index.
    Actions with no visits are never sampled at T > 0 (unless no action has any).
    """
    counts = visit_counts.to(torch.float32)
    if temperature == 0.0:
        if prior is not None:
            # Visits are integers: a tie-break bonus in [0, 0.5] cannot overturn a difference.
            p = prior.to(torch.float32)
            counts = counts + 0.5 * p / p.amax(-1, keepdim=True).clamp(min=1e-30)
        return counts.argmax(-1)
    none = counts.sum(-1, keepdim=True) == 0
    counts = torch.where(none, torch.ones_like(counts), counts)
    logits = torch.where(counts > 0, counts.log() / temperature, -math.inf)
    probs = (logits - logits.amax(-1, keepdim=True)).exp()
    cdf = probs.cumsum(-1)
    cdf = cdf / cdf[..., -1:]
    u = _uniform(counts.shape[:-1] + (1,), generator).to(cdf)
    # The first index with cdf >= u; cdf[-1] == 1 > u, and zero-probability actions are skipped.
    return (cdf < u).sum(-1)


def _uniform(shape: Sequence[int], generator: torch.Generator | None) -> Tensor:
    """float64 U[0, 1) of `shape`, drawn on the generator's device (CPU and its global RNG when
    None), so that a seed gives the same draws whatever device the search runs on."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(tuple(shape), generator=generator, device=device, dtype=torch.float64)


def _sample_gamma(
    alpha: float, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """float64 Gamma(alpha, 1) samples of `shape` from `generator` (Marsaglia and Tsang 2000).

    Drawn on the generator's device (CPU when None, as `_uniform`), returned on `device`.
    """
    gdev = generator.device if generator is not None else torch.device("cpu")
    boost = alpha < 1.0
    d = (alpha + 1.0 if boost else alpha) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.zeros(shape, dtype=torch.float64, device=gdev)
    todo = torch.ones(shape, dtype=torch.bool, device=gdev)
    while bool(todo.any()):
        x = torch.randn(shape, generator=generator, device=gdev, dtype=torch.float64)
        u = _uniform(shape, generator)
        v = (1.0 + c * x) ** 3
        log_v = torch.where(v > 0, v, torch.ones_like(v)).log()
        ok = (v > 0) & (u.log() < 0.5 * x * x + d - d * v + d * log_v)
        out = torch.where(todo & ok, d * v, out)
        todo = todo & ~ok
    if boost:  # Gamma(alpha) = Gamma(alpha + 1) * U^(1 / alpha)
        out = out * _uniform(shape, generator).pow(1.0 / alpha)
    return out.to(device)


def dirichlet_noise(
    legal: Tensor, alpha: float, generator: torch.Generator | None = None
) -> Tensor:
    """[B, A] bool -> [B, A] float64 samples of Dir(alpha) over each row's legal actions (CPU)."""
    gamma = _sample_gamma(alpha, tuple(legal.shape), generator, torch.device("cpu"))
    legal = legal.cpu()
    gamma = gamma * legal
    total = gamma.sum(-1, keepdim=True)
    # Gamma draws of a tiny alpha can all underflow to 0: then spread the mass evenly.
    return torch.where(total > 0, gamma / total.clamp(min=1e-300), legal / legal.sum(-1, True))


def _softmax(logits: Tensor) -> Tensor:
    """[..., A] -> [..., A] softmax that maps all -inf rows to zeros (no NaN)."""
    z = logits - logits.amax(-1, keepdim=True).clamp(min=torch.finfo(logits.dtype).min)
    e = z.exp()
    return e / e.sum(-1, keepdim=True).clamp(min=torch.finfo(logits.dtype).tiny)


def _float_dtype(root: RootOutput) -> torch.dtype:
    """The tree's dtype: the root value's when floating point, else float32."""
    return root.value.dtype if root.value.is_floating_point() else torch.float32


def _check_root(root: RootOutput, legal: Tensor | None) -> tuple[int, int, Tensor]:
    """Shape checks at the boundary; returns (B, A, legal [B, A] bool)."""
    assert root.prior_logits.dim() == 2, root.prior_logits.shape
    B, A = root.prior_logits.shape
    assert root.value.shape == (B,), (root.value.shape, B)
    for emb in _leaves(root.embedding):
        assert emb.shape[0] == B, (emb.shape, B)
    if legal is None:
        legal = torch.ones(B, A, dtype=torch.bool, device=root.value.device)
    assert legal.shape == (B, A) and legal.dtype == torch.bool, (legal.shape, legal.dtype)
    if not bool(legal.any(-1).all()):
        raise ValueError("every root needs at least one legal action")
    return B, A, legal


def _init_tree(
    root: RootOutput,
    root_prior: Tensor,
    legal: Tensor,
    num_simulations: int,
    sign: float,
    bounds: tuple[float, float] | None,
    action_major: bool = False,
) -> Tree:
    """A tree whose root (node 0) is expanded with one visit worth its network value;
    `action_major` lays `children_stats` out as [3, A, B, N] in memory (see `Tree`)."""
    B, A = root_prior.shape
    N = num_simulations + 1
    value = root.value.to(_float_dtype(root))
    dtype, device = value.dtype, value.device
    lo, hi = (math.inf, -math.inf) if bounds is None else bounds
    tree = Tree(
        node_visits=torch.zeros(B, N, dtype=dtype, device=device),
        node_value_sums=torch.zeros(B, N, dtype=dtype, device=device),
        raw_values=torch.zeros(B, N, dtype=dtype, device=device),
        parents=torch.full((B, N), -1, dtype=torch.long, device=device),
        action_from_parent=torch.full((B, N), -1, dtype=torch.long, device=device),
        children_index=torch.full((B, N, A), -1, dtype=torch.long, device=device),
        children_stats=(
            torch.zeros(3, A, B, N, dtype=dtype, device=device).permute(0, 2, 3, 1)
            if action_major
            else torch.zeros(3, B, N, A, dtype=dtype, device=device)
        ),
        children_rewards=torch.zeros(B, N, A, dtype=dtype, device=device),
        children_discounts=torch.zeros(B, N, A, dtype=dtype, device=device),
        embeddings=_map(lambda e: e.new_zeros((B, N) + tuple(e.shape[1:])), root.embedding),
        root_legal=legal,
        min_q=torch.full((B,), lo, dtype=dtype, device=device),
        max_q=torch.full((B,), hi, dtype=dtype, device=device),
        sign=sign,
    )
    tree.node_visits[:, 0] = 1.0
    tree.node_value_sums[:, 0] = value
    tree.raw_values[:, 0] = value
    tree.children_prior[:, 0] = root_prior.to(dtype)
    _set_column(tree.embeddings, 0, root.embedding)
    return tree


def _leaves(embedding: Embedding) -> list[Tensor]:
    """The tensors of an embedding (a tensor or a dict of tensors)."""
    return list(embedding.values()) if isinstance(embedding, dict) else [embedding]


def _map(fn: Callable[[Tensor], Tensor], embedding: Embedding) -> Embedding:
    """`fn` applied to each tensor of an embedding, keeping its structure."""
    if isinstance(embedding, dict):
        return {k: fn(v) for k, v in embedding.items()}
    return fn(embedding)


def _set_column(embeddings: Embedding, node: int, value: Embedding) -> None:
    """embeddings[:, node] = value, tensor by tensor (the structures must match)."""
    if isinstance(embeddings, dict):
        if not isinstance(value, dict) or value.keys() != embeddings.keys():
            got = sorted(value) if isinstance(value, dict) else "a tensor"
            raise ValueError(
                f"recurrent_fn returned an embedding with keys {got}; the root's has "
                f"{sorted(embeddings)}"
            )
        for k, v in embeddings.items():
            v[:, node] = value[k]
    else:
        if isinstance(value, dict):
            raise ValueError("recurrent_fn returned a dict embedding; the root's is a tensor")
        embeddings[:, node] = value


# A score function maps the stacked children stats [3, B, n, A] (views of `Tree.children_stats`,
# action-major in memory for pUCT) of the tree's first n nodes (the ones added so far, as they
# stand at the start of a simulation) and n to [B, n, A] scores of their children, node 0 by the
# root's rule; selection takes each node's argmax (ties: lowest index). Nothing changes during a
# descent, so one pass over the nodes replaces a score per node visited.
ScoreFn = Callable[[Tensor, int], Tensor]

# A path score function scores only the nodes a descent visits: (stacked children stats [3, B, A]
# of the current nodes, their flat rows [B] = b * N + node, depth) -> [B, A]. Cheaper where
# scoring is many ops per element and the batch is large (Gumbel's completed Q at B = 256).
PathScoreFn = Callable[[Tensor, Tensor, int], Tensor]


def _first_argmax(scores: Tensor, rank: Tensor) -> Tensor:
    """[B, n, A] -> [B, n] long: the index of each row's first maximum (as ``argmax``). On
    scores laid out action-major in memory (pUCT's, from an action-major `Tree`) and large, the
    maxima are reductions over the outer dimension (vectorised across nodes) rather than over
    rows of A. `rank` [A, 1, 1] holds A, A - 1, ..., 1. Exact: ``sign(s - max)`` is 0 at the
    maxima and -1 elsewhere, so the largest rank among the maxima is the first of them."""
    if scores.numel() < 1 << 14 or scores.stride(-1) == 1:  # small, or rows of A contiguous
        return scores.max(-1).indices
    s = scores.permute(2, 0, 1)  # [A, B, n]
    at_max = (s - s.amax(0)).sign_().add_(1.0).mul_(rank)  # rank at the maxima, 0 elsewhere
    return (rank.shape[0] - at_max.amax(0)).long()


class _Search:
    """Runs the simulations of one search in place on a Tree, with flat views cached."""

    def __init__(self, tree: Tree, recurrent_fn: RecurrentFn) -> None:
        self.tree, self.recurrent_fn = tree, recurrent_fn
        B, N, A = tree.children_index.shape
        self.B, self.A = B, A
        self.dtype = tree.node_visits.dtype
        device = tree.node_visits.device
        self.base = torch.arange(B, device=device) * N  # flat row of each tree's root
        self.node_ids = torch.arange(N, device=device)
        self.flat_ids = torch.arange(B * N, device=device)
        # The stats' memory as one flat tensor, and the strides of its (plane, row = b * N +
        # node, action) in it (either layout: the b stride is N times the node stride).
        stats = tree.children_stats
        self.stats = stats.as_strided((stats.numel(),), (1,))
        self.plane, _, self.row_stride, self.action_stride = stats.stride()
        self.rank = torch.arange(A, 0, -1, dtype=self.dtype, device=device).view(A, 1, 1)
        self.index = tree.children_index.view(-1)
        self.rewards = tree.children_rewards.view(-1)
        self.discounts = tree.children_discounts.view(-1)
        self.visits = tree.node_visits.view(-1)
        self.sums = tree.node_value_sums.view(-1)
        self.emb_rows = _map(lambda e: e.flatten(0, 1), tree.embeddings)
        self.one = torch.ones((), dtype=self.dtype, device=device)
        self.inf = torch.full((), math.inf, dtype=self.dtype, device=device)
        self.true_row = torch.ones(1, B, dtype=torch.bool, device=device)
        # On CPU, stop descending once every tree reached a leaf (a free check there); elsewhere
        # descend max_depth + 1 steps, which needs one device sync per simulation, not per step.
        self.early_exit = device.type == "cpu"
        self.max_depth = 0

    def run(
        self,
        num_simulations: int,
        make_score_fn: Callable[[int], ScoreFn | PathScoreFn],
        per_path: bool = False,
    ) -> None:
        """Simulations 1..num_simulations; simulation k adds node k to every tree. The score
        functions score all nodes (`ScoreFn`) or, with `per_path`, the visited ones
        (`PathScoreFn`)."""
        for sim in range(1, num_simulations + 1):
            self.simulate(sim, make_score_fn(sim), per_path)

    def simulate(self, sim: int, score_fn: ScoreFn | PathScoreFn, per_path: bool = False) -> None:
        """Select in lockstep, expand node `sim` in every tree with one model call, back up."""
        tree, base, A, dtype = self.tree, self.base, self.A, self.dtype

        # Select: descend all trees at once; a tree that reached an unexpanded edge parks there.
        if per_path:
            node = torch.zeros_like(base)
            active = torch.ones_like(base, dtype=torch.bool)
            action = node
            nodes, actions, nexts = [], [], []
            assert self.action_stride == 1, "per-path scoring reads a row-major tree"
            stats_rows = tree.children_stats.view(3, -1, A)  # [3, B * N, A]
            for depth in range(sim if self.early_exit else self.max_depth + 1):
                row = base + node
                best = score_fn(stats_rows.index_select(1, row), row, depth).argmax(-1)
                action = best if depth == 0 else torch.where(active, best, action)
                nxt = self.index.index_select(0, row * A + action)
                nodes.append(node)
                actions.append(action)
                nexts.append(nxt)
                active = nxt >= 0  # a parked tree keeps reading its unexpanded edge (-1)
                node = torch.where(active, nxt, node)
                if self.early_exit and not bool(active.any()):
                    break
            path_nodes, path_actions, path_next = torch.stack(nodes + actions + nexts).view(
                3, len(nodes), self.B
            )
        else:
            # The best action of each of the `sim` nodes added so far (the first maximum) and the
            # child it leads to (-1 while unexpanded), [B * sim] at flat b * sim + node.
            scores = score_fn(tree.children_stats[:, :, :sim], sim)
            best_of = _first_argmax(scores, self.rank).reshape(-1)
            edges = (self.base[:, None] + self.node_ids[:sim]).view(-1) * A + best_of
            next_of = self.index.index_select(0, edges)
            # Where a descent moves from each node (flat): its best child, or itself at a leaf
            # (a parked tree stays). Then a level is one gather, and the descent ends once no
            # tree moved.
            roots = torch.arange(self.B, device=base.device) * sim
            child = (roots[:, None] + next_of.view(self.B, sim)).view(-1)
            step = torch.where(next_of >= 0, child, self.flat_ids[: self.B * sim])
            at = roots
            visited = [at]
            for _ in range(sim - 1 if self.early_exit else self.max_depth):
                after = step.index_select(0, at)
                if self.early_exit and torch.equal(after, at):
                    break
                visited.append(after)
                at = after
            path_flat = torch.stack(visited)  # [D, B]
            path_nodes = path_flat - roots
            path_actions = best_of.index_select(0, path_flat.view(-1)).view_as(path_flat)
            path_next = next_of.index_select(0, path_flat.view(-1)).view_as(path_flat)
            node, action = path_nodes[-1], path_actions[-1]

        # Expand: one batched model call for the B new leaves; `node` is their parent.
        parent_row = base + node
        parent = _map(lambda e: e.index_select(0, parent_row), self.emb_rows)
        out = self.recurrent_fn(parent, action)
        reward, discount, prior_logits, value, embedding = out
        B = self.B
        assert reward.shape == discount.shape == value.shape == (B,), (
            reward.shape,
            discount.shape,
            value.shape,
        )
        assert prior_logits.shape == (B, A), prior_logits.shape
        edge = parent_row * A + action
        self.index.index_fill_(0, edge, sim)
        self.rewards.index_copy_(0, edge, reward.to(dtype))
        self.discounts.index_copy_(0, edge, discount.to(dtype))
        _set_column(tree.embeddings, sim, embedding)
        tree.children_prior[:, sim] = _softmax(prior_logits.to(dtype))
        value = value.to(dtype)
        tree.node_visits[:, sim] = 1.0
        tree.node_value_sums[:, sim] = value
        tree.raw_values[:, sim] = value
        tree.parents[:, sim] = node
        tree.action_from_parent[:, sim] = action

        # Back up: G_d = r_d + sign * d_d * G_{d+1} from the leaf value along each path, [D, B];
        # entries past a tree's leaf repeat its leaf edge with on = False and change nothing.
        D = path_nodes.shape[0]
        on = torch.cat([self.true_row, path_next[:-1] >= 0])
        rows = base + path_nodes
        edges = (rows * A + path_actions).view(-1)
        r = self.rewards.index_select(0, edges).view(D, B)
        g = self.discounts.index_select(0, edges).view(D, B)
        g = g if tree.sign > 0 else -g
        onf = on.to(dtype)
        r_on, g_on = r * onf, torch.where(on, g, self.one)
        returns = torch.empty_like(r)
        ret = value
        for d in reversed(range(D)):
            ret = torch.addcmul(r_on[d], g_on[d], ret, out=returns[d])
        rows, onf = rows.view(-1), onf.view(-1)
        self.visits.index_add_(0, rows, onf)
        self.sums.index_add_(0, rows, returns.view(-1) * onf)
        # N(s, a) of each path edge in the flat stats
        stat_edges = rows * self.row_stride + path_actions.view(-1) * self.action_stride
        self.stats.index_add_(0, stat_edges, onf)
        child_rows = (base + torch.where(path_next >= 0, path_next, sim)).view(-1)
        child_values = self.sums.index_select(0, child_rows) / self.visits.index_select(
            0, child_rows
        )
        q = torch.addcmul(r, g, child_values.view(D, B))
        self.stats.index_copy_(0, stat_edges + self.plane, q.view(-1))  # Q(s, a); duplicates agree
        tree.min_q = torch.minimum(tree.min_q, torch.where(on, q, self.inf).amin(0))
        tree.max_q = torch.maximum(tree.max_q, torch.where(on, q, -self.inf).amax(0))
        if not self.early_exit:
            self.max_depth = max(self.max_depth, int(on.sum(0).max()))


# A Q transform maps a tree (at the start of a simulation) to a function (q [B, n, A], visits
# [B, n, A]) -> [B, n, A] value scores of the children of its first n nodes, which pUCT adds to its
# exploration term (as mctx's `qtransform`). The two below normalise by the tree's min-max bounds
# (MuZero's MinMaxStats).
ValueScoreFn = Callable[[Tensor, Tensor], Tensor]
"""(q [B, n, A], visits [B, n, A]) of the tree's first n nodes -> [B, n, A]."""
QTransform = Callable[[Tree], ValueScoreFn]


def _min_max(tree: Tree) -> tuple[Tensor, Tensor]:
    """[B, 1, 1] offset and scale of the tree's min-max normalisation (identity while
    max <= min)."""
    bounded = tree.max_q > tree.min_q
    offset = torch.where(bounded, tree.min_q, 0.0)[:, None, None]
    scale = torch.where(bounded, tree.max_q - tree.min_q, 1.0)[:, None, None]
    return offset, scale


def qtransform_min_max(tree: Tree) -> ValueScoreFn:
    """The pseudocode's value score: (Q - min) / (max - min) for visited children, 0 for
    unvisited ones (the lowest score, so the prior alone decides whether one is tried)."""
    offset, scale = _min_max(tree)
    inv_scale = 1.0 / scale

    def value_score(q: Tensor, visits: Tensor) -> Tensor:
        # visits are counts: clamp(max=1) is 1 for a visited child and 0 otherwise (a float
        # multiply, several times faster than one by a bool mask)
        return (q - offset).mul_(inv_scale).mul_(visits.clamp(max=1.0))

    return value_score


def qtransform_min_max_parent(tree: Tree) -> ValueScoreFn:
    """As :func:`qtransform_min_max`, but an unvisited child scores its parent's current value
    V(s), normalised like a Q (mctx's choice; ``unvisited_value="parent"``)."""
    offset, scale = _min_max(tree)
    parent = tree.node_values()[:, :, None]

    def value_score(q: Tensor, visits: Tensor) -> Tensor:
        v = parent[:, : q.shape[1]]
        return (torch.where(visits > 0, q, v) - offset) / scale

    return value_score


QTRANSFORMS: dict[str, QTransform] = {
    "zero": qtransform_min_max,
    "parent": qtransform_min_max_parent,
}
"""The Q transforms by their `MCTSConfig.unvisited_value` name."""


def _puct_score_fn(tree: Tree, pb_c: Tensor, qtransform: QTransform) -> ScoreFn:
    """MuZero's pUCT scores (Appendix B) of every node: the Q transform's value score plus the
    exploration term; illegal root actions score -inf. `pb_c` [N + 1] tabulates
    (pb_c_init + log((n + pb_c_base + 1) / pb_c_base)) * sqrt(n)."""
    illegal = ~tree.root_legal

    def score(stats: Tensor, n: int) -> Tensor:
        visits, q, prior = stats.unbind(0)  # [B, n, A] views
        value_score = qtransform(tree)(q, visits)
        node_visits = tree.node_visits[:, :n].long().view(-1)
        exploration = pb_c.index_select(0, node_visits).view(-1, n, 1)
        s = torch.addcmul(value_score, prior, exploration / (visits + 1.0))
        s[:, 0].masked_fill_(illegal, -math.inf)
        return s

    return score


def _pb_c_table(n: int, pb_c_init: float, pb_c_base: float, like: Tensor) -> Tensor:
    """[n + 1] (pb_c_init + log((k + pb_c_base + 1) / pb_c_base)) * sqrt(k) for k = 0..n."""
    values = [
        (pb_c_init + math.log((k + pb_c_base + 1.0) / pb_c_base)) * math.sqrt(k)
        for k in range(n + 1)
    ]
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _outputs(tree: Tree, action: Tensor, action_weights: Tensor | None = None) -> MCTSOutput:
    """Root summaries of a finished tree."""
    counts = tree.children_visits[:, 0]
    probs = counts / counts.sum(-1, keepdim=True).clamp(min=1.0)
    return MCTSOutput(
        action=action,
        visit_counts=counts.long(),
        visit_probs=probs,
        action_weights=probs if action_weights is None else action_weights,
        root_value=tree.node_value_sums[:, 0] / tree.node_visits[:, 0],
        q_values=tree.children_qvalues[:, 0],
        tree=tree,
    )


@torch.no_grad()
def muzero_search(
    root: RootOutput,
    recurrent_fn: RecurrentFn,
    config: MCTSConfig | None = None,
    *,
    legal_actions: Tensor | None = None,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> MCTSOutput:
    """B roots -> MCTSOutput: MuZero's pUCT search with min-max Q (Schrittwieser et al. 2020, B).

    `legal_actions` [B, A] bool masks the root (default: all legal). `generator` drives the root
    Dirichlet noise and the action sample (`temperature` > 0); see `select_action`.
    """
    config = config or MCTSConfig()
    B, A, legal = _check_root(root, legal_actions)
    prior = _softmax(root.prior_logits.to(_float_dtype(root)).masked_fill(~legal, -math.inf))
    noisy = prior
    if config.root_exploration_fraction > 0.0:
        noise = dirichlet_noise(legal, config.root_dirichlet_alpha, generator).to(prior)
        frac = config.root_exploration_fraction
        noisy = (1.0 - frac) * prior + frac * noise
    sign = -1.0 if config.two_player else 1.0
    tree = _init_tree(
        root, noisy, legal, config.num_simulations, sign, config.known_bounds, action_major=True
    )
    pb_c = _pb_c_table(
        config.num_simulations + 1, config.pb_c_init, config.pb_c_base, tree.node_visits
    )
    qtransform = config.qtransform or QTRANSFORMS[config.unvisited_value]
    score_fn = _puct_score_fn(tree, pb_c, qtransform)
    _Search(tree, recurrent_fn).run(config.num_simulations, lambda sim: score_fn)
    action = select_action(tree.children_visits[:, 0], temperature, generator, prior)
    return _outputs(tree, action)


# ---------------------------------------------------------------------------------------------
# Gumbel MuZero (Danihelka et al. 2022): Gumbel-top-k at the root, sequential halving of the
# considered actions, deterministic selection of the improved policy inside the tree.


def considered_visit_sequence(max_num_considered_actions: int, num_simulations: int) -> list[int]:
    """Visit count an action must have to be chosen at each root simulation (sequential halving).

    Sequential halving with m = max_num_considered_actions (Danihelka et al. 2022, as in
    mctx): each phase gives every remaining action max(1, n / (ceil(log2 m) * m_phase)) more
    visits, then halves the remaining actions (at least 2 stay).
    """
    if max_num_considered_actions <= 1:
        return list(range(num_simulations))
    log2max = math.ceil(math.log2(max_num_considered_actions))
    sequence: list[int] = []
    visits = [0] * max_num_considered_actions
    considered = max_num_considered_actions
    while len(sequence) < num_simulations:
        extra = max(1, int(num_simulations / (log2max * considered)))
        for _ in range(extra):
            sequence.extend(visits[:considered])
            for i in range(considered):
                visits[i] += 1
        considered = max(2, considered // 2)
    return sequence[:num_simulations]


def _completed_qvalues(
    q: Tensor, visits: Tensor, prior: Tensor, raw_value: Tensor, c_visit: float, c_scale: float
) -> Tensor:
    """[..., A] sigma(completed Q): unvisited actions take the mixed value v_mix (App. D).

    Completed Q is min-max rescaled over each node's actions before sigma (as mctx's
    `qtransform_completed_by_mix_value`).
    """
    visited = visits > 0
    total = visits.sum(-1)
    p = prior.clamp(min=torch.finfo(prior.dtype).tiny)
    p_visited = torch.where(visited, p, 0.0)
    weighted_q = (p_visited * q).sum(-1) / p_visited.sum(-1).clamp(min=torch.finfo(p.dtype).tiny)
    mixed = (raw_value + total * weighted_q) / (total + 1.0)
    completed = torch.where(visited, q, mixed[..., None])
    lo, hi = completed.amin(-1, keepdim=True), completed.amax(-1, keepdim=True)
    completed = (completed - lo) / (hi - lo).clamp(min=1e-8)
    return (c_visit + visits.amax(-1, keepdim=True)) * c_scale * completed


def _gumbel_score_fn(
    tree: Tree, gumbel: Tensor, considered_visit: Tensor, c_visit: float, c_scale: float
) -> PathScoreFn:
    """Root: sequential-halving scores; interior: argmax pi'(a) - N(a) / (1 + sum_b N(b))."""
    raw_values = tree.raw_values.view(-1)
    legal = tree.root_legal

    def score(stats: Tensor, row: Tensor, depth: int) -> Tensor:
        visits, q, prior = stats.unbind(0)
        raw = raw_values.index_select(0, row)
        sigma = _completed_qvalues(q, visits, prior, raw, c_visit, c_scale)
        logits = prior.clamp(min=torch.finfo(prior.dtype).tiny).log()
        if depth == 0:
            return _root_gumbel_score(gumbel, logits, sigma, visits, considered_visit, legal)
        policy = _softmax(logits + sigma)
        return policy - visits / (1.0 + visits.sum(-1, keepdim=True))

    return score


def _root_gumbel_score(
    gumbel: Tensor,
    logits: Tensor,
    sigma: Tensor,
    visits: Tensor,
    considered_visit: Tensor,
    legal: Tensor,
) -> Tensor:
    """[B, A] g(a) + logits(a) + sigma(q(a)) over legal actions with N(a) == considered_visit."""
    s = (gumbel + logits + sigma).clamp(min=-1e9)
    s = torch.where(visits == considered_visit[:, None], s, -math.inf)
    return s.masked_fill(~legal, -math.inf)


@torch.no_grad()
def gumbel_muzero_search(
    root: RootOutput,
    recurrent_fn: RecurrentFn,
    config: GumbelMCTSConfig | None = None,
    *,
    legal_actions: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MCTSOutput:
    """B roots -> MCTSOutput: Gumbel MuZero search with sequential halving (Danihelka et al. 2022).

    `action` is the surviving argmax of g + logits + sigma(q), `action_weights` the
    improved policy softmax(logits + sigma(completed Q)) to train the policy on.
    """
    config = config or GumbelMCTSConfig()
    B, A, legal = _check_root(root, legal_actions)
    prior = _softmax(root.prior_logits.to(_float_dtype(root)).masked_fill(~legal, -math.inf))
    sign = -1.0 if config.two_player else 1.0
    tree = _init_tree(root, prior, legal, config.num_simulations, sign, None)
    dtype, device = tree.node_visits.dtype, tree.node_visits.device
    u = _uniform((B, A), generator).clamp(min=1e-300)
    gumbel = (config.gumbel_scale * -(-u.log()).log()).to(device=device, dtype=dtype)
    # Sequential halving table [m + 1, n]: row k is the schedule when k actions are considered.
    m = config.max_num_considered_actions
    n = max(config.num_simulations, 1)
    table = torch.tensor(
        [considered_visit_sequence(k, n) for k in range(m + 1)], dtype=dtype, device=device
    )
    num_considered = legal.sum(-1).clamp(max=m)

    def make_score_fn(sim: int) -> PathScoreFn:
        considered = table[num_considered, sim - 1]
        return _gumbel_score_fn(tree, gumbel, considered, config.c_visit, config.c_scale)

    _Search(tree, recurrent_fn).run(config.num_simulations, make_score_fn, per_path=True)

    # Act: the best of the most-visited considered actions; train on the improved policy.
    visits = tree.children_visits[:, 0]
    root_prior = tree.children_prior[:, 0]
    sigma = _completed_qvalues(
        tree.children_qvalues[:, 0],
        visits,
        root_prior,
        tree.raw_values[:, 0],
        config.c_visit,
        config.c_scale,
    )
    logits = root_prior.clamp(min=torch.finfo(dtype).tiny).log()
    most = visits.amax(-1)
    action = _root_gumbel_score(gumbel, logits, sigma, visits, most, legal).argmax(-1)
    improved = _softmax((logits + sigma).masked_fill(~legal, -math.inf))
    return _outputs(tree, action, improved)
