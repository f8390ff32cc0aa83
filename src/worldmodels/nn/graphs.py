"""Replay a whole training step as one CUDA graph (``run.cuda_graphs``).

A Dreamer update launches thousands of small kernels; on a GPU the Python and launch overhead of
those, not their arithmetic, sets the pace (benchmarks/RESULTS.md, session 11: ~0.5 s per update
on an H200 shared by ten runs). :class:`GraphedStep` captures the step once and then replays it:
one launch per update.

What a captured step must obey (PyTorch's "whole network capture" rules):
- fixed input shapes and dtypes (a call with other shapes runs eagerly);
- no host synchronisation inside (``.item()``, ``float(t)``, ``if t.any()``, host-to-device
  copies): metrics leave the step as tensors;
- no Python state that changes between calls (a counter, a schedule): it would be frozen at its
  capture-time value, so such logic stays outside the step;
- optimisers keep their step count on the device (``torch.optim.Adam(capturable=True)``).

On CPU, or when disabled, the step simply runs eagerly. If capturing raises, the run stops with
one line naming the cause and the fix (``run.cuda_graphs=false``): after a failed capture the
CUDA stream, the RNG and the gradient buffers can be left mid-capture, so going on eagerly in
the same process is not safe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import UserError

Step = Callable[[dict[str, Tensor]], dict[str, Tensor]]


class GraphedStep:
    """Call ``fn(inputs) -> outputs`` (dicts of tensors) eagerly for ``warmup`` calls, then
    capture it as a CUDA graph and replay it; see the module docstring for the rules ``fn``
    must follow. Outputs are returned as fresh tensors (clones of the graph's static outputs)."""

    def __init__(self, fn: Step, enabled: bool, warmup: int = 3):
        self.fn = fn
        self.enabled = enabled
        self.warmup = warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_in: dict[str, Tensor] = {}
        self.static_out: dict[str, Tensor] = {}

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def _usable(self, inputs: dict[str, Tensor]) -> bool:
        return self.enabled and all(v.is_cuda for v in inputs.values())

    def _matches(self, inputs: dict[str, Tensor]) -> bool:
        return inputs.keys() == self.static_in.keys() and all(
            v.shape == self.static_in[k].shape and v.dtype == self.static_in[k].dtype
            for k, v in inputs.items()
        )

    def __call__(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        if not self._usable(inputs):
            return self.fn(inputs)
        with torch.cuda.device(next(iter(inputs.values())).device):  # cuda:N, not the current
            return self._call_cuda(inputs)

    def _call_cuda(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.graph is None:
            if self.calls < self.warmup:  # eager warm-up on a side stream (cuBLAS, allocator)
                self.calls += 1
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    out = self.fn(inputs)
                torch.cuda.current_stream().wait_stream(side)
                return out
            self.static_in = {k: v.clone() for k, v in inputs.items()}
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    self.static_out = self.fn(self.static_in)
            except Exception as e:
                # A failed capture can leave the CUDA stream and RNG mid-capture and gradients
                # in never-written graph memory: continuing eagerly is not safe, so stop clearly.
                first = str(e).splitlines()[0][:200] if str(e) else ""
                raise UserError(
                    f"CUDA graph capture failed ({type(e).__name__}: {first}); "
                    "fix: set run.cuda_graphs=false"
                ) from e
            self.graph = graph
        if not self._matches(inputs):
            return self.fn(inputs)
        for k, v in inputs.items():
            self.static_in[k].copy_(v)
        self.graph.replay()
        return {k: v.clone() for k, v in self.static_out.items()}


class ActSteps:
    """One :class:`GraphedStep` of ``fn(inputs, mode)`` per acting mode and env count (each is
    its own graph: shapes and the greedy/exploring branch differ)."""

    def __init__(self, fn: Callable[[dict[str, Tensor], str], dict[str, Tensor]], enabled: bool):
        self.fn = fn
        self.enabled = enabled
        self.steps: dict[tuple[str, int], GraphedStep] = {}

    def __call__(self, inputs: dict[str, Tensor], mode: str) -> dict[str, Tensor]:
        key = (mode, inputs["is_first"].shape[0])
        if key not in self.steps:
            self.steps[key] = GraphedStep(functools.partial(self.fn, mode=mode), self.enabled)
        return self.steps[key](inputs)


def set_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """Make a loaded optimiser follow this run's ``capturable`` setting, whatever the checkpoint
    was saved with: ``load_state_dict`` copies the saved flag, so a run resumed with CUDA graphs
    from an eager checkpoint would freeze Adam's step count in the graph, and one resumed on CPU
    from a graphed checkpoint would refuse to step. Step counts move to the parameter's device
    (capturable) or to the CPU."""
    for group in optimizer.param_groups:
        if "capturable" not in group:
            continue
        group["capturable"] = capturable
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if torch.is_tensor(state.get("step")):
                device = p.device if capturable else torch.device("cpu")
                state["step"] = state["step"].to(device=device, dtype=torch.float32)
