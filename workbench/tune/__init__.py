"""SLO tuner: search serving configs and model variants for the one that meets a latency objective.

::

    from workbench.tune import Tuner, tune, SearchSpace, Objective

    result = tune("mlp", Objective(p99_ms=20, rate=300), budget_s=60)      # blocking
    print(result.message); print("\\n".join(result.explanation)); result.save("best.yaml")

    tuner = Tuner("mlp", Objective(p99_ms=20), space=SearchSpace(max_batch_size=(1, 8, 32)),
                  variants={"int8": int8_model}, budget_s=120)
    unsubscribe = tuner.subscribe(on_trial, on_done=on_done)   # live views
    tuner.start(); ...; tuner.stop()                           # or tuner.run()

Every trial is measured the same way: the model served by a local ``Server`` over HTTP on 127.0.0.1,
driven by ``LoadRun`` (the project's load generator) and saved as a run record. See :class:`Tuner`.
Names are imported on first use, so ``import workbench.tune`` loads neither torch nor optuna.
"""

from __future__ import annotations

from workbench._lazy import lazy_getattr

_EXPORTS = {
    "Objective": "workbench.tune.trial",
    "Trial": "workbench.tune.trial",
    "SearchSpace": "workbench.tune.space",
    "Tuner": "workbench.tune.tuner",
    "tune": "workbench.tune.tuner",
    "TuneResult": "workbench.tune.result",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
