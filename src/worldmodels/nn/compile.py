"""``torch.compile`` for hot inner steps, with a fallback to eager that never breaks a run."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any


class MaybeCompiled:
    """Call ``fn`` compiled (``torch.compile(fn, dynamic=False)``) when ``enabled``.

    Compilation happens on the first call per input shape (seconds, once). If compiling fails,
    for example because inductor finds no C++ compiler, a warning names the cause and every
    later call runs ``fn`` eagerly. Random ops use eager's generator
    (``fallback_random``), so a seeded run draws the same numbers compiled or not.
    """

    def __init__(self, fn: Callable[..., Any], enabled: bool = True):
        self.fn = fn
        self.compiled: Callable[..., Any] | None = None
        if enabled:
            import torch
            import torch._inductor.config as inductor_config

            inductor_config.fallback_random = True
            self.compiled = torch.compile(fn, dynamic=False)

    @property
    def active(self) -> bool:
        return self.compiled is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self.fn(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as e:  # compiler missing or unsupported op: keep training, eagerly
            warnings.warn(
                f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                "running eagerly. Set compile=false to skip the attempt.",
                RuntimeWarning,
                stacklevel=2,
            )
            self.compiled = None
            return self.fn(*args, **kwargs)
