"""Can a PlaNet run's model rank action sequences on gym:Pendulum-v1? Its planning objective.

    python tools/planet_model_diagnose.py RUN_DIR --starts 100

Open-loop reward error, rank agreement of model and true returns over random action sequences,
CEM on the model against CEM on the exact equations, and the action sensitivity of model and
equations; the code and the full description are in ``worldmodels.diagnostics.planet_model``.
"""

from worldmodels.diagnostics.planet_model import main

if __name__ == "__main__":
    raise SystemExit(main())
