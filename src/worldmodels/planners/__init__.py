from worldmodels.planners.base import Objective, PlanResult, shift
from worldmodels.planners.cem import CEM, CEMConfig
from worldmodels.planners.cmaes import CMAES, evolve
from worldmodels.planners.mcts import (
    GumbelMCTSConfig,
    MCTSConfig,
    MCTSOutput,
    QTransform,
    RecurrentOutput,
    RootOutput,
    Tree,
    gumbel_muzero_search,
    muzero_search,
    qtransform_min_max,
    qtransform_min_max_parent,
    select_action,
    visit_temperature,
)
from worldmodels.planners.mppi import (
    MPPI,
    DiscreteMPPI,
    DiscretePlanResult,
    MPPIConfig,
    mppi_weights,
)

__all__ = [
    "CEM",
    "CEMConfig",
    "CMAES",
    "DiscreteMPPI",
    "DiscretePlanResult",
    "MPPI",
    "MPPIConfig",
    "Objective",
    "PlanResult",
    "mppi_weights",
    "shift",
    "evolve",
    "GumbelMCTSConfig",
    "MCTSConfig",
    "MCTSOutput",
    "QTransform",
    "RecurrentOutput",
    "RootOutput",
    "Tree",
    "gumbel_muzero_search",
    "muzero_search",
    "qtransform_min_max",
    "qtransform_min_max_parent",
    "select_action",
    "visit_temperature",
]
