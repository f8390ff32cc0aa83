"""Config system: overrides, presets, types, close-match errors, JSON round trip."""

import pytest

from worldmodels.agents import build_config
from worldmodels.agents.dreamer import PRESETS, DreamerConfig
from worldmodels.config import apply_overrides, from_dict, parse_set_args, to_dict
from worldmodels.errors import UserError


def test_override_parses_types():
    cfg = DreamerConfig()
    apply_overrides(cfg, {"run.steps": "1e3", "behavior.lam": "0.5", "run.tensorboard": "false"})
    assert cfg.run.steps == 1000 and cfg.behavior.lam == 0.5 and cfg.run.tensorboard is False


def test_unknown_key_names_close_match():
    with pytest.raises(UserError, match="did you mean run.train_ratio"):
        apply_overrides(DreamerConfig(), {"run.train_ration": "1"})


def test_wrong_type_is_one_line():
    with pytest.raises(UserError) as e:
        apply_overrides(DreamerConfig(), {"run.steps": "many"})
    assert "run.steps" in str(e.value) and "\n" not in str(e.value)


def test_literal_choices_checked():
    with pytest.raises(UserError, match="choose one of"):
        apply_overrides(DreamerConfig(), {"model.norm": "batch"})


def test_set_arg_needs_equals():
    with pytest.raises(UserError, match="key=value"):
        parse_set_args(["run.steps"])


def test_presets_apply_in_order_and_unknown_preset_suggests():
    cfg, names = build_config("dreamerv3", ["debug"], {"run.batch_size": 3})
    assert names == ["dreamerv3", "debug"]
    assert cfg.model.deter == PRESETS["debug"].overrides["model.deter"]
    assert cfg.run.batch_size == 3
    with pytest.raises(UserError, match="did you mean debug"):
        build_config("dreamerv3", ["debgu"])


def test_dreamerv3_2023_preset_differs_in_beta_dyn():
    cfg, _ = build_config("dreamer", ["dreamerv3_2023"])
    assert cfg.model.beta_dyn == 0.5 and build_config("dreamerv3")[0].model.beta_dyn == 1.0
    # the paper's Adam rates (Table W.1), which the defaults raise for small CPU budgets
    assert (cfg.optim.model_lr, cfg.optim.actor_lr, cfg.optim.critic_lr) == (1e-4, 3e-5, 3e-5)


def test_json_round_trip():
    cfg, _ = build_config("dreamerv3", ["debug"])
    assert to_dict(from_dict(DreamerConfig, to_dict(cfg))) == to_dict(cfg)


def test_unknown_agent():
    with pytest.raises(UserError, match="did you mean dreamerv3"):
        build_config("dreamerv4")


def test_optional_float_parses_none_and_number():
    cfg = DreamerConfig()
    apply_overrides(cfg, {"run.stop_at_return": "475"})
    assert cfg.run.stop_at_return == 475.0
    apply_overrides(cfg, {"run.stop_at_return": "none"})
    assert cfg.run.stop_at_return is None


def test_threads_auto_for_dreamer_one_for_debug_and_set_threads():
    import torch

    from worldmodels.train.run import set_threads, usable_cores

    assert build_config("dreamerv3")[0].run.threads == 0  # 0 = every usable core
    assert build_config("dreamerv3", ["debug"])[0].run.threads == 1
    assert build_config("muzero", ["debug"])[0].run.threads == 1
    before = torch.get_num_threads()
    try:
        assert set_threads(0) == usable_cores()
        assert set_threads(1) == 1
        with pytest.raises(UserError, match="run.threads"):
            set_threads(-1)
    finally:
        torch.set_num_threads(before)
