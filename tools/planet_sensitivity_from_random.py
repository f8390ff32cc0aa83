"""Does a fresh PlaNet model learn how the action moves Pendulum, given plenty of data?

    python tools/planet_sensitivity_from_random.py --data 20000 --updates 1500 --every 250

Trains a new PlaNet agent offline on random-action Pendulum data and prints its action
sensitivity against the equations' as it learns (``--eval-episodes N``: then plans N real
episodes); the code and the full description are in ``worldmodels.diagnostics.planet_sensitivity``.
"""

from worldmodels.diagnostics.planet_sensitivity import main

if __name__ == "__main__":
    raise SystemExit(main())
