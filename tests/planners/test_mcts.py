"""Tests for worldmodels.planners.mcts against a slow, obviously correct reference search."""

from __future__ import annotations

import math

import pytest
import torch

from worldmodels.planners import (
    GumbelMCTSConfig,
    MCTSConfig,
    RootOutput,
    gumbel_muzero_search,
    mcts,
    muzero_search,
    select_action,
    visit_temperature,
)
from worldmodels.planners.mcts import considered_visit_sequence, dirichlet_noise

NO_NOISE = {"root_exploration_fraction": 0.0}


class Table:
    """A tabulated deterministic model: latent = integer state id, float64 tables."""

    def __init__(self, next_state, reward, discount, logits, value):
        self.next_state = torch.as_tensor(next_state, dtype=torch.long)
        self.reward = torch.as_tensor(reward, dtype=torch.float64)
        self.discount = torch.as_tensor(discount, dtype=torch.float64)
        self.logits = torch.as_tensor(logits, dtype=torch.float64)
        self.value = torch.as_tensor(value, dtype=torch.float64)
        self.calls = 0

    @classmethod
    def random(cls, num_states: int = 7, num_actions: int = 3, seed: int = 0) -> Table:
        g = torch.Generator().manual_seed(seed)
        S, A = num_states, num_actions
        discount = 0.5 + 0.5 * torch.rand(S, A, generator=g, dtype=torch.float64)
        discount[0, -1] = 0.0  # one terminal transition
        return cls(
            torch.randint(0, S, (S, A), generator=g),
            torch.randn(S, A, generator=g, dtype=torch.float64),
            discount,
            torch.randn(S, A, generator=g, dtype=torch.float64),
            torch.randn(S, generator=g, dtype=torch.float64),
        )

    def root(self, states: list[int]) -> RootOutput:
        s = torch.tensor(states)
        return RootOutput(self.logits[s], self.value[s], s)

    def __call__(self, state: torch.Tensor, action: torch.Tensor):
        self.calls += 1
        nxt = self.next_state[state, action]
        return (
            self.reward[state, action],
            self.discount[state, action],
            self.logits[nxt],
            self.value[nxt],
            nxt,
        )


# Reference: one root at a time, Python objects and recursion, same conventions as the module.


class Node:
    def __init__(self, state: int, prior: list[float], value: float):
        self.state, self.prior, self.raw = state, prior, value
        self.visits, self.value_sum = 1, value  # the expansion counts as the first visit
        self.children: dict[int, Node] = {}
        self.reward: dict[int, float] = {}
        self.discount: dict[int, float] = {}

    def value(self) -> float:
        return self.value_sum / self.visits


def _expand(table: Table, logits, node: Node, a: int) -> float:
    """Add the child of ``node`` under action ``a`` from the table; return its network value."""
    s2 = int(table.next_state[node.state, a])
    node.children[a] = Node(s2, _softmax(logits[s2]), table.value[s2].item())
    node.reward[a] = table.reward[node.state, a].item()
    node.discount[a] = table.discount[node.state, a].item()
    return node.children[a].value()


def _softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [x / sum(e) for x in e]


def reference_search(
    table: Table,
    state: int,
    num_simulations: int,
    legal=None,
    two_player=False,
    bounds=None,
    c1=1.25,
    c2=19652.0,
    unvisited="zero",
):
    """Returns (visit counts, root value, root Q values, min Q, max Q). An unvisited child's
    value term is 0 or (``unvisited="parent"``) the normalised value of its parent."""
    A = table.logits.shape[1]
    legal = [True] * A if legal is None else [bool(x) for x in legal]
    sign = -1.0 if two_player else 1.0
    logits = table.logits.tolist()
    masked = [x if ok else -math.inf for x, ok in zip(logits[state], legal)]
    root = Node(state, _softmax(masked), table.value[state].item())
    stats = (
        {"min": math.inf, "max": -math.inf}
        if bounds is None
        else {"min": bounds[0], "max": bounds[1]}
    )

    def q(node: Node, a: int) -> float:
        return node.reward[a] + sign * node.discount[a] * node.children[a].value()

    def normalize(x: float) -> float:
        if stats["max"] > stats["min"]:
            return (x - stats["min"]) / (stats["max"] - stats["min"])
        return x

    def select(node: Node, is_root: bool) -> int:
        best, best_a = -math.inf, -1
        for a in range(A):
            if is_root and not legal[a]:
                continue
            n_a = node.children[a].visits if a in node.children else 0
            if n_a > 0:
                value_score = normalize(q(node, a))
            else:
                value_score = normalize(node.value()) if unvisited == "parent" else 0.0
            pb_c = math.log((node.visits + c2 + 1) / c2) + c1
            score = value_score + node.prior[a] * pb_c * math.sqrt(node.visits) / (n_a + 1)
            if score > best:  # strict: ties keep the lowest index
                best, best_a = score, a
        return best_a

    def simulate(node: Node, is_root: bool) -> float:
        a = select(node, is_root)
        if a not in node.children:
            child_return = _expand(table, logits, node, a)
        else:
            child_return = simulate(node.children[a], False)
        ret = node.reward[a] + sign * node.discount[a] * child_return
        node.visits += 1
        node.value_sum += ret
        stats["min"] = min(stats["min"], q(node, a))
        stats["max"] = max(stats["max"], q(node, a))
        return ret

    for _ in range(num_simulations):
        simulate(root, True)
    counts = [root.children[a].visits if a in root.children else 0 for a in range(A)]
    qs = [q(root, a) if a in root.children else 0.0 for a in range(A)]
    return counts, root.value(), qs, stats["min"], stats["max"]


# 1. Against the reference.


@pytest.mark.parametrize("num_simulations", [1, 2, 5, 30])
@pytest.mark.parametrize("two_player", [False, True])
def test_matches_reference_search(num_simulations, two_player):
    table = Table.random(seed=1)
    for state in range(4):
        cfg = MCTSConfig(num_simulations=num_simulations, two_player=two_player, **NO_NOISE)
        out = muzero_search(table.root([state]), table, cfg)
        counts, value, qs, lo, hi = reference_search(
            table, state, num_simulations, two_player=two_player
        )
        assert out.visit_counts[0].tolist() == counts
        assert out.root_value.item() == pytest.approx(value, abs=1e-9)
        assert out.q_values[0].tolist() == pytest.approx(qs, abs=1e-9)
        assert (out.tree.min_q.item(), out.tree.max_q.item()) == pytest.approx((lo, hi))


@pytest.mark.parametrize("two_player", [False, True])
def test_unvisited_parent_value_matches_reference(two_player):
    table = Table.random(num_states=11, num_actions=5, seed=4)
    for state, bounds in [(0, None), (5, (-2.0, 2.0))]:
        cfg = MCTSConfig(
            num_simulations=30,
            two_player=two_player,
            known_bounds=bounds,
            unvisited_value="parent",
            **NO_NOISE,
        )
        out = muzero_search(table.root([state]), table, cfg)
        counts, value, qs, _, _ = reference_search(
            table, state, 30, two_player=two_player, bounds=bounds, unvisited="parent"
        )
        assert out.visit_counts[0].tolist() == counts
        assert out.root_value.item() == pytest.approx(value, abs=1e-9)
        assert out.q_values[0].tolist() == pytest.approx(qs, abs=1e-9)
        zero = reference_search(table, state, 30, two_player=two_player, bounds=bounds)[0]
        assert counts != zero  # the rule changes the search


def test_matches_reference_with_masks_bounds_and_more_actions():
    table = Table.random(num_states=11, num_actions=5, seed=2)
    legal = [True, False, True, True, False]
    for state, bounds in [(0, None), (3, (-3.0, 3.0)), (7, None)]:
        cfg = MCTSConfig(num_simulations=40, known_bounds=bounds, **NO_NOISE)
        out = muzero_search(table.root([state]), table, cfg, legal_actions=torch.tensor([legal]))
        counts, value, qs, _, _ = reference_search(table, state, 40, legal, bounds=bounds)
        assert out.visit_counts[0].tolist() == counts
        assert out.root_value.item() == pytest.approx(value, abs=1e-9)
        assert out.q_values[0].tolist() == pytest.approx(qs, abs=1e-9)


def test_tree_shapes_and_invariants():
    table = Table.random(seed=3)
    n = 25
    out = muzero_search(table.root([0, 1, 2]), table, MCTSConfig(num_simulations=n, **NO_NOISE))
    tree = out.tree
    B, N, A = tree.children_index.shape
    assert (B, N, A) == (3, n + 1, 3)
    assert tree.embeddings.shape == (3, n + 1)
    assert table.calls == n  # one batched model call per simulation
    assert out.visit_counts.sum(-1).tolist() == [n] * 3
    # N(s) = 1 + sum_a N(s, a) and N(s, a) = N(child) for every node.
    torch.testing.assert_close(tree.node_visits, 1.0 + tree.children_visits.sum(-1))
    idx = tree.children_index.clamp(min=0).view(B, -1)
    child_visits = torch.gather(tree.node_visits, 1, idx).view(B, N, A)
    expanded = tree.children_index >= 0
    assert torch.equal(tree.children_visits[expanded], child_visits[expanded])
    assert (tree.parents[:, 1:] >= 0).all() and (tree.parents[:, 0] == -1).all()
    torch.testing.assert_close(out.visit_probs.sum(-1), torch.ones(3, dtype=torch.float64))


# 2. A batch equals B single searches.


def test_batch_equals_single_searches():
    table = Table.random(num_states=9, num_actions=4, seed=4)
    states = [0, 3, 5, 8, 3]
    legal = torch.tensor(
        [[1, 1, 1, 1], [0, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 1], [1, 1, 1, 1]], dtype=torch.bool
    )
    for two_player in (False, True):
        cfg = MCTSConfig(num_simulations=30, two_player=two_player, **NO_NOISE)
        batch = muzero_search(table.root(states), table, cfg, legal_actions=legal)
        for b, s in enumerate(states):
            one = muzero_search(table.root([s]), table, cfg, legal_actions=legal[b : b + 1])
            assert torch.equal(batch.visit_counts[b], one.visit_counts[0])
            torch.testing.assert_close(batch.root_value[b], one.root_value[0])
            torch.testing.assert_close(batch.q_values[b], one.q_values[0])
            torch.testing.assert_close(batch.tree.node_visits[b], one.tree.node_visits[0])


def test_fixed_depth_descent_matches_early_exit(monkeypatch):
    # Off CPU the descent runs max_depth + 1 steps instead of stopping early: same trees.
    table = Table.random(num_states=9, num_actions=4, seed=11)
    states, legal = [0, 3, 5, 8], torch.tensor([[1, 1, 1, 1], [0, 1, 1, 0]] * 2).bool()
    cfg = MCTSConfig(num_simulations=30, two_player=True, **NO_NOISE)
    fast = muzero_search(table.root(states), table, cfg, legal_actions=legal)
    init = mcts._Search.__init__

    def fixed_depth(self, *args):
        init(self, *args)
        self.early_exit = False

    monkeypatch.setattr(mcts._Search, "__init__", fixed_depth)
    slow = muzero_search(table.root(states), table, cfg, legal_actions=legal)
    for name in ("node_visits", "node_value_sums", "children_index", "children_stats", "parents"):
        assert torch.equal(getattr(fast.tree, name), getattr(slow.tree, name)), name
    gcfg = GumbelMCTSConfig(num_simulations=30, gumbel_scale=0.0)
    g_slow = gumbel_muzero_search(table.root(states), table, gcfg, legal_actions=legal)
    monkeypatch.setattr(mcts._Search, "__init__", init)
    g_fast = gumbel_muzero_search(table.root(states), table, gcfg, legal_actions=legal)
    assert torch.equal(g_fast.tree.children_stats, g_slow.tree.children_stats)


def test_zero_simulations_acts_on_the_prior():
    table = Table.random(seed=12)
    out = muzero_search(table.root([0, 1]), table, MCTSConfig(num_simulations=0, **NO_NOISE))
    assert out.visit_counts.sum().item() == 0 and table.calls == 0
    assert out.action.tolist() == table.logits[[0, 1]].argmax(-1).tolist()
    torch.testing.assert_close(out.root_value, table.value[[0, 1]])


def test_vector_embeddings_and_float32():
    torch.manual_seed(0)
    B, A, D = 5, 6, 8
    weight = torch.randn(A, D, D) / D**0.5

    def recurrent_fn(emb, action):
        nxt = torch.tanh(torch.einsum("bd,bde->be", emb, weight[action]))
        return nxt[:, 0], torch.full((emb.shape[0],), 0.9), nxt[:, :A], nxt[:, 1], nxt

    root = RootOutput(torch.randn(B, A), torch.randn(B), torch.randn(B, D))
    out = muzero_search(
        root,
        recurrent_fn,
        MCTSConfig(num_simulations=20),
        generator=torch.Generator().manual_seed(0),
    )
    assert out.tree.embeddings.shape == (B, 21, D)
    assert out.root_value.dtype == torch.float32
    assert out.visit_counts.sum(-1).tolist() == [20] * B


def test_dict_embeddings_match_tensor_embeddings():
    """A dict embedding (state + a depth counter carried per node) searches exactly as the
    tensor one, and every node holds what recurrent_fn returned for it."""
    table = Table.random(num_states=9, num_actions=4, seed=3)

    def dict_fn(emb, action):
        r, d, logits, v, nxt = table(emb["state"], action)
        return r, d, logits, v, {"state": nxt, "depth": emb["depth"] + 1}

    cfg = MCTSConfig(num_simulations=25, **NO_NOISE)
    plain = muzero_search(table.root([0, 5]), table, cfg)
    root = table.root([0, 5])
    root.embedding = {"state": root.embedding, "depth": torch.zeros(2, dtype=torch.int32)}
    out = muzero_search(root, dict_fn, cfg)
    assert out.visit_counts.tolist() == plain.visit_counts.tolist()
    torch.testing.assert_close(out.q_values, plain.q_values)
    assert torch.equal(out.tree.embeddings["state"], plain.tree.embeddings)
    depth = out.tree.embeddings["depth"]
    assert depth.dtype == torch.int32 and depth.shape == (2, 26)
    for b in range(2):  # depth of each node, walked up its parents
        for node in range(26):
            n, steps = node, 0
            while out.tree.parents[b, n] >= 0:
                n, steps = int(out.tree.parents[b, n]), steps + 1
            assert depth[b, node] == steps


def test_dict_embedding_structure_must_match_the_root():
    table = Table.random(seed=0)
    root = table.root([0])
    root.embedding = {"state": root.embedding}

    def wrong_keys(emb, action):
        r, d, logits, v, nxt = table(emb["state"], action)
        return r, d, logits, v, {"s": nxt}

    with pytest.raises(ValueError, match="keys"):
        muzero_search(root, wrong_keys, MCTSConfig(num_simulations=2, **NO_NOISE))


def test_qtransform_is_a_parameter():
    """A transform passed in replaces the named one: the parent-value transform given as a
    function equals the reference's "parent" rule; a transform that ignores Q leaves the prior
    alone to decide, so rewards and values no longer change the visits."""
    table = Table.random(num_states=11, num_actions=5, seed=4)
    cfg = MCTSConfig(num_simulations=30, qtransform=mcts.qtransform_min_max_parent, **NO_NOISE)
    out = muzero_search(table.root([0]), table, cfg)
    assert out.visit_counts[0].tolist() == reference_search(table, 0, 30, unvisited="parent")[0]

    def ignore_q(tree):
        return lambda q, visits: torch.zeros_like(q)

    other = Table(table.next_state, -3 * table.reward, table.discount, table.logits, -table.value)
    blind = MCTSConfig(num_simulations=30, qtransform=ignore_q, **NO_NOISE)
    a = muzero_search(table.root([0]), table, blind).visit_counts
    b = muzero_search(other.root([0]), other, blind).visit_counts
    assert a.tolist() == b.tolist()
    assert a.tolist() != out.visit_counts.tolist()


# 3. Legal masks and the two-player sign.


def test_illegal_actions_never_visited():
    table = Table.random(num_states=6, num_actions=4, seed=5)
    table.reward -= 10.0  # negative raw Q: an unmasked illegal score (0) would win
    table.logits[:, 0] += 5.0  # the illegal action has the largest prior
    legal = torch.tensor([[False, True, False, True], [False, False, True, False]])
    out = muzero_search(
        table.root([0, 1]),
        table,
        MCTSConfig(num_simulations=30),
        legal_actions=legal,
        generator=torch.Generator().manual_seed(0),
    )
    assert (out.visit_counts[~legal] == 0).all()
    assert out.visit_counts[1].tolist() == [0, 0, 30, 0]
    assert legal[torch.arange(2), out.action].all()
    assert (out.tree.children_prior[:, 0][~legal] == 0).all()
    with pytest.raises(ValueError):
        muzero_search(table.root([0]), table, legal_actions=torch.zeros(1, 4, dtype=torch.bool))


def two_ply_game() -> Table:
    """Player X at state 0 picks 0 (a trap: then O wins with move 0) or 1 (a draw).

    States: 0 root (X), 1 after X's move 0 (O to move), 2 after X's move 1, 3 terminal.
    O's move 0 at state 1 wins: reward +1 for O (the player who acted). Values are all 0 and the
    root prior prefers the trap.
    """
    return Table(
        next_state=[[1, 2], [3, 3], [3, 3], [3, 3]],
        reward=[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        discount=[[1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        logits=[[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        value=[0.0, 0.0, 0.0, 0.0],
    )


def test_two_player_prefers_the_move_good_for_the_player_to_move():
    game = two_ply_game()
    out = muzero_search(
        game.root([0]), game, MCTSConfig(num_simulations=60, two_player=True, **NO_NOISE)
    )
    assert out.action.item() == 1
    assert out.visit_counts[0, 1] > out.visit_counts[0, 0]
    assert out.q_values[0, 0] < -0.5  # O's win is X's loss
    assert out.q_values[0, 1] == 0.0
    # Read as one agent, the +1 after move 0 is the root's own reward: the trap looks best.
    single = muzero_search(game.root([0]), game, MCTSConfig(num_simulations=60, **NO_NOISE))
    assert single.action.item() == 0
    assert single.q_values[0, 0] > 0.5
    # The root's search value is from X's perspective: below zero while the trap keeps visits.
    assert out.root_value.item() < 0.0 < single.root_value.item()


def test_consistent_model_draws_visits_to_the_better_action_despite_noise():
    """One action clearly better in a consistent model: reward 1 for action 1, 0.5 for action
    0, every value 10 = 1 / (1 - 0.9) (the optimal return), so Q(1) = 10 > Q(0) = 9.5. With a
    uniform prior, 25 simulations and the Atari Dirichlet noise all 200 trees visit action 1
    most, the policy target is the visit distribution and the root value stays near 10."""
    B, A, gamma = 200, 2, 0.9

    def recurrent_fn(emb, action):
        reward = torch.where(action == 1, 1.0, 0.5).double()
        value = torch.full_like(reward, 10.0)
        return reward, torch.full_like(reward, gamma), torch.zeros(B, A), value, emb

    root = RootOutput(
        torch.zeros(B, A), torch.full((B,), 10.0, dtype=torch.float64), torch.zeros(B, 1)
    )
    gen = torch.Generator().manual_seed(0)
    out = muzero_search(
        root, recurrent_fn, MCTSConfig(num_simulations=25), temperature=1.0, generator=gen
    )
    assert bool((out.visit_counts[:, 1] > out.visit_counts[:, 0]).all())
    assert out.visit_counts.sum(-1).eq(25).all()
    torch.testing.assert_close(out.action_weights, out.visit_counts.double() / 25)
    assert out.action.float().mean() > 0.7  # sampled at temperature 1 from the visits
    assert bool(((out.root_value > 9.5) & (out.root_value < 10.5)).all())


# 4. Dirichlet noise and discounts.


def test_dirichlet_noise_reproducible_and_root_only():
    table = Table.random(num_states=8, num_actions=5, seed=6)
    legal = torch.tensor([[True, True, False, True, True], [True] * 5])
    root = table.root([2, 4])
    cfg = MCTSConfig(num_simulations=20, root_dirichlet_alpha=0.3, root_exploration_fraction=0.25)

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return muzero_search(root, table, cfg, legal_actions=legal, generator=gen)

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.tree.children_prior, b.tree.children_prior)
    assert torch.equal(a.visit_counts, b.visit_counts)
    assert not torch.equal(a.tree.children_prior[:, 0], c.tree.children_prior[:, 0])
    # Interior priors are the model's; the root prior mixes in noise over legal actions only.
    tree = a.tree
    interior = torch.softmax(table.logits[tree.embeddings[:, 1:]], -1)
    torch.testing.assert_close(tree.children_prior[:, 1:], interior)
    prior = torch.softmax(root.prior_logits.masked_fill(~legal, -math.inf), -1)
    noise = (tree.children_prior[:, 0] - 0.75 * prior) / 0.25
    assert (noise >= -1e-12).all() and (noise[~legal] == 0).all()
    torch.testing.assert_close(noise.sum(-1), torch.ones(2, dtype=torch.float64))
    assert not torch.allclose(noise, prior)
    # Fraction 0: no noise at all.
    clean = muzero_search(
        root, table, MCTSConfig(num_simulations=20, **NO_NOISE), legal_actions=legal
    )
    torch.testing.assert_close(clean.tree.children_prior[:, 0], prior, rtol=0, atol=1e-15)


def test_dirichlet_noise_moments():
    legal = torch.ones(20000, 4, dtype=torch.bool)
    legal[:, 3] = False
    x = dirichlet_noise(legal, 0.3, torch.Generator().manual_seed(0))
    assert (x[:, 3] == 0).all()
    torch.testing.assert_close(x.sum(-1), torch.ones(20000, dtype=torch.float64))
    # Dir(0.3, 0.3, 0.3): mean 1/3, variance a_i (a_0 - a_i) / (a_0^2 (a_0 + 1)).
    a0 = 0.9
    var = 0.3 * (a0 - 0.3) / (a0**2 * (a0 + 1))
    assert x[:, :3].mean(0).tolist() == pytest.approx([1 / 3] * 3, abs=0.01)
    assert x[:, :3].var(0).tolist() == pytest.approx([var] * 3, rel=0.05)


@pytest.mark.parametrize("two_player", [False, True])
def test_discount_in_q_hand_computed(two_player):
    # A chain with one action: root -> s1 -> s2, rewards r1, r2, discounts d1, d2.
    r1, r2, d1, d2, v0, v1, v2 = 1.0, 2.0, 0.5, 0.8, 0.3, 4.0, 10.0
    chain = Table(
        next_state=[[1], [2], [2]],
        reward=[[r1], [r2], [0.0]],
        discount=[[d1], [d2], [1.0]],
        logits=[[0.0], [0.0], [0.0]],
        value=[v0, v1, v2],
    )
    s = -1.0 if two_player else 1.0
    cfg = MCTSConfig(num_simulations=1, two_player=two_player, **NO_NOISE)
    one = muzero_search(chain.root([0]), chain, cfg)
    assert one.q_values[0, 0].item() == pytest.approx(r1 + s * d1 * v1)
    assert one.root_value.item() == pytest.approx((v0 + r1 + s * d1 * v1) / 2)
    cfg = MCTSConfig(num_simulations=2, two_player=two_player, **NO_NOISE)
    two = muzero_search(chain.root([0]), chain, cfg)
    v_s1 = (v1 + r2 + s * d2 * v2) / 2
    assert two.q_values[0, 0].item() == pytest.approx(r1 + s * d1 * v_s1)
    ret2 = r1 + s * d1 * (r2 + s * d2 * v2)
    assert two.root_value.item() == pytest.approx((v0 + r1 + s * d1 * v1 + ret2) / 3)


# 5. Temperature.


def test_temperature_zero_is_argmax_with_prior_tie_break():
    counts = torch.tensor([[1, 5, 3, 5], [0, 0, 2, 0], [4, 4, 0, 0]])
    prior = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25] * 4, [0.5, 0.5, 0.0, 0.0]])
    assert select_action(counts, 0.0).tolist() == [1, 2, 0]
    assert select_action(counts, 0.0, prior=prior).tolist() == [3, 2, 0]


def test_temperature_sampling_frequencies():
    counts = torch.tensor([[10, 1, 0, 5]]).expand(40000, 4)
    gen = torch.Generator().manual_seed(0)
    hot = torch.bincount(select_action(counts, 1e6, gen), minlength=4) / 40000
    assert hot.tolist() == pytest.approx([1 / 3, 1 / 3, 0.0, 1 / 3], abs=0.01)
    assert hot[2] == 0
    one = torch.bincount(select_action(counts, 1.0, gen), minlength=4) / 40000
    assert one.tolist() == pytest.approx([10 / 16, 1 / 16, 0.0, 5 / 16], abs=0.01)
    half = torch.bincount(select_action(counts, 0.5, gen), minlength=4) / 40000
    assert half.tolist() == pytest.approx([100 / 126, 1 / 126, 0.0, 25 / 126], abs=0.01)


def test_search_action_sampled_with_temperature_is_reproducible():
    table = Table.random(seed=7)
    cfg = MCTSConfig(num_simulations=10)
    runs = [
        muzero_search(
            table.root([0] * 64),
            table,
            cfg,
            temperature=1.0,
            generator=torch.Generator().manual_seed(3),
        ).action
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert len(set(runs[0].tolist())) > 1


def test_visit_temperature_schedule():
    assert visit_temperature(0) == 1.0
    assert visit_temperature(499_999) == 1.0
    assert visit_temperature(500_000) == 0.5
    assert visit_temperature(750_000) == 0.25
    assert visit_temperature(10**9) == 0.25
    sched = ((0.5e5, 1.0), (0.75e5, 0.5), (math.inf, 0.25))
    assert [visit_temperature(s, sched) for s in (0, 5e4, 8e4)] == [1.0, 0.5, 0.25]
    assert visit_temperature(10, ((5, 1.0), (8, 0.5))) == 0.5


# Gumbel MuZero.


def test_considered_visit_sequence():
    assert considered_visit_sequence(4, 8) == [0, 0, 0, 0, 1, 1, 2, 2]
    assert considered_visit_sequence(1, 3) == [0, 1, 2]
    assert considered_visit_sequence(2, 6) == [0, 0, 1, 1, 2, 2]
    seq = considered_visit_sequence(16, 50)
    assert len(seq) == 50 and seq[:16] == [0] * 16


def reference_gumbel_search(
    table: Table,
    state: int,
    n: int,
    m: int,
    legal,
    gumbel,
    two_player=False,
    c_visit=50.0,
    c_scale=0.1,
):
    """Gumbel MuZero one root at a time, mctx's rules written out; -> (counts, action, weights)."""
    A = table.logits.shape[1]
    sign = -1.0 if two_player else 1.0
    tiny = torch.finfo(torch.float64).tiny
    logits = table.logits.tolist()
    masked = [x if ok else -math.inf for x, ok in zip(logits[state], legal)]
    root = Node(state, _softmax(masked), table.value[state].item())
    schedule = considered_visit_sequence(min(m, sum(legal)), n)

    def visits(node):
        return [node.children[a].visits if a in node.children else 0 for a in range(A)]

    def q(node, a):
        return node.reward[a] + sign * node.discount[a] * node.children[a].value()

    def sigma(node):
        nv = visits(node)
        p = [max(x, tiny) for x in node.prior]
        seen = [a for a in range(A) if nv[a] > 0]
        weighted = sum(p[a] * q(node, a) for a in seen) / sum(p[a] for a in seen) if seen else 0.0
        mixed = (node.raw + sum(nv) * weighted) / (sum(nv) + 1)
        completed = [q(node, a) if nv[a] > 0 else mixed for a in range(A)]
        lo, hi = min(completed), max(completed)
        return [(c_visit + max(nv)) * c_scale * (c - lo) / max(hi - lo, 1e-8) for c in completed]

    def root_scores(considered):
        nv, sg = visits(root), sigma(root)
        return [
            max(-1e9, gumbel[a] + math.log(max(root.prior[a], tiny)) + sg[a])
            if legal[a] and nv[a] == considered
            else -math.inf
            for a in range(A)
        ]

    def argmax(xs):
        return max(range(len(xs)), key=lambda a: (xs[a], -a))

    def simulate(node, k):
        if node is root:
            a = argmax(root_scores(schedule[k]))
        else:
            nv = visits(node)
            pi = _softmax([math.log(max(p, tiny)) + s for p, s in zip(node.prior, sigma(node))])
            a = argmax([pi[b] - nv[b] / (1 + sum(nv)) for b in range(A)])
        if a not in node.children:
            child_return = _expand(table, logits, node, a)
        else:
            child_return = simulate(node.children[a], k)
        ret = node.reward[a] + sign * node.discount[a] * child_return
        node.visits += 1
        node.value_sum += ret
        return ret

    for k in range(n):
        simulate(root, k)
    action = argmax(root_scores(max(visits(root))))
    sg = sigma(root)
    weights = _softmax(
        [math.log(max(p, tiny)) + s if ok else -math.inf for p, s, ok in zip(root.prior, sg, legal)]
    )
    return visits(root), action, weights


@pytest.mark.parametrize("gumbel_scale", [0.0, 1.0])
@pytest.mark.parametrize("two_player", [False, True])
def test_gumbel_matches_reference_search(gumbel_scale, two_player):
    table = Table.random(num_states=9, num_actions=5, seed=10)
    legal = [True, True, False, True, True]
    for state, n, m in [(0, 1, 4), (2, 7, 4), (5, 20, 4), (6, 32, 16), (8, 12, 2)]:
        cfg = GumbelMCTSConfig(
            num_simulations=n,
            max_num_considered_actions=m,
            gumbel_scale=gumbel_scale,
            two_player=two_player,
        )
        out = gumbel_muzero_search(
            table.root([state]),
            table,
            cfg,
            legal_actions=torch.tensor([legal]),
            generator=torch.Generator().manual_seed(state),
        )
        # The search's Gumbel draw: its first float64 uniforms from the generator.
        u = torch.rand(1, 5, generator=torch.Generator().manual_seed(state), dtype=torch.float64)
        gumbel = (gumbel_scale * -(-u.log()).log())[0].tolist()
        counts, action, weights = reference_gumbel_search(
            table, state, n, m, legal, gumbel, two_player
        )
        assert out.visit_counts[0].tolist() == counts
        assert out.action.item() == action
        assert out.action_weights[0].tolist() == pytest.approx(weights, abs=1e-9)


def test_gumbel_search_basics():
    table = Table.random(num_states=9, num_actions=6, seed=8)
    legal = torch.tensor([[True, True, False, True, True, True], [True] * 6])
    cfg = GumbelMCTSConfig(num_simulations=24, max_num_considered_actions=4)
    gen = torch.Generator().manual_seed(0)
    out = gumbel_muzero_search(table.root([1, 5]), table, cfg, legal_actions=legal, generator=gen)
    assert out.visit_counts.sum(-1).tolist() == [24, 24]
    assert ((out.visit_counts > 0).sum(-1) <= 4).all()  # only the m sampled actions
    assert (out.visit_counts[~legal] == 0).all()
    torch.testing.assert_close(out.action_weights.sum(-1), torch.ones(2, dtype=torch.float64))
    assert (out.action_weights[~legal] == 0).all()
    # The chosen action is one of the most visited.
    most = out.visit_counts.amax(-1)
    assert (out.visit_counts[torch.arange(2), out.action] == most).all()
    # The batch equals single searches under the same Gumbel draws (same generator stream).
    gen = torch.Generator().manual_seed(0)
    again = gumbel_muzero_search(table.root([1, 5]), table, cfg, legal_actions=legal, generator=gen)
    assert torch.equal(out.visit_counts, again.visit_counts)


def test_gumbel_batch_equals_single_without_noise():
    table = Table.random(num_states=9, num_actions=5, seed=9)
    states = [0, 4, 7]
    legal = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 0, 1], [1, 0, 0, 1, 0]], dtype=torch.bool)
    cfg = GumbelMCTSConfig(num_simulations=20, gumbel_scale=0.0, two_player=True)
    batch = gumbel_muzero_search(table.root(states), table, cfg, legal_actions=legal)
    for b, s in enumerate(states):
        one = gumbel_muzero_search(table.root([s]), table, cfg, legal_actions=legal[b : b + 1])
        assert torch.equal(batch.visit_counts[b], one.visit_counts[0])
        torch.testing.assert_close(batch.action_weights[b], one.action_weights[0])


def test_gumbel_two_player_game():
    game = two_ply_game()
    cfg = GumbelMCTSConfig(num_simulations=16, gumbel_scale=0.0, two_player=True)
    out = gumbel_muzero_search(game.root([0]), game, cfg)
    assert out.action.item() == 1
    assert out.action_weights[0, 1] > out.action_weights[0, 0]


@pytest.mark.parametrize("shape", [(2, 3, 4), (64, 40, 9)])
def test_first_argmax_is_the_first_maximum_on_the_action_major_layout(shape):
    """Both branches (a row reduction when small, the outer-dimension one when large) pick the
    first maximum of each row, with many ties and -inf entries, on scores laid out as the tree's
    views are (action-major)."""
    B, n, A = shape
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (A, B, n), generator=g).float().permute(1, 2, 0)
    scores[0, 0, :2] = -math.inf
    scores[-1, -1, :] = -math.inf
    scores[-1, -1, -1] = 0.0
    rank = torch.arange(A, 0, -1, dtype=torch.float32).view(A, 1, 1)
    rows = scores.tolist()
    expected = torch.tensor([[r.index(max(r)) for r in node] for node in rows])
    assert torch.equal(mcts._first_argmax(scores, rank), expected)
