"""Pure tensor math shared by the agents: transforms, distributions, KLs, returns, normalisers."""

from worldmodels.math.dists import (
    BoundedNormal,
    MultiOneHotST,
    OneHotCategoricalST,
    TanhNormal,
    bounded_log_std,
    clip_action,
    log_softmax,
    softmax,
    squashed_gaussian,
    unimix_logits,
    unimix_probs,
)
from worldmodels.math.ema import ema_update, hard_update
from worldmodels.math.kl import balanced_kl, categorical_kl, dyn_rep_kl, gaussian_kl
from worldmodels.math.normalize import PercentileNormalizer
from worldmodels.math.returns import (
    discount_weights,
    lambda_return,
    n_step_value_targets,
    replay_lambda_return,
)
from worldmodels.math.support import (
    h_inverse,
    h_transform,
    min_max_scale,
    scalar_to_support,
    scale_gradient,
    support_loss,
    support_to_scalar,
)
from worldmodels.math.transforms import (
    symexp,
    symexp_bins,
    symlog,
    two_hot,
    two_hot_decode,
    two_hot_index,
    twohot_loss,
    twohot_nll,
)

__all__ = [
    "BoundedNormal",
    "MultiOneHotST",
    "OneHotCategoricalST",
    "PercentileNormalizer",
    "TanhNormal",
    "balanced_kl",
    "bounded_log_std",
    "categorical_kl",
    "clip_action",
    "discount_weights",
    "dyn_rep_kl",
    "ema_update",
    "gaussian_kl",
    "hard_update",
    "lambda_return",
    "h_inverse",
    "h_transform",
    "min_max_scale",
    "n_step_value_targets",
    "scalar_to_support",
    "scale_gradient",
    "support_loss",
    "support_to_scalar",
    "replay_lambda_return",
    "symexp",
    "symexp_bins",
    "symlog",
    "two_hot",
    "two_hot_decode",
    "twohot_loss",
    "twohot_nll",
    "two_hot_index",
    "softmax",
    "log_softmax",
    "squashed_gaussian",
    "unimix_logits",
    "unimix_probs",
]
