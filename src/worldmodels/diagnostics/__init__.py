"""Diagnostics: code that inspects a trained agent or an environment rather than training one.

- :mod:`worldmodels.diagnostics.pendulum`: gymnasium's Pendulum-v1 equations on tensors, and a
  planner objective that scores action sequences with them (an exact model, for comparing a
  learned one or bounding what a planner can reach);
- :mod:`worldmodels.diagnostics.planet_model`: can a PlaNet run's model rank action sequences on
  Pendulum-v1 (``tools/planet_model_diagnose.py``);
- :mod:`worldmodels.diagnostics.planet_sensitivity`: does a fresh PlaNet model learn the
  action's effect from random Pendulum data (``tools/planet_sensitivity_from_random.py``).

The command-line tools in ``tools/`` run them (tools/README.md).
"""
