"""The search order: a covering initial design, then TPE; never a config twice, never an infeasible one."""

from __future__ import annotations

from workbench.tune.search import Search
from workbench.tune.space import SearchSpace, config_key, prune


def _score(config):
    """A synthetic landscape: big batches and no delay are best, replicas help a little."""
    return config["max_batch_size"] * 10 - config["max_delay_ms"] * 3 + config["replicas"] + \
        (5 if config["routing"] == "round_robin" else 0)


def _space():
    return SearchSpace(replicas=(1, 2, 4), max_batch_size=(1, 2, 4, 8, 16, 32), max_delay_ms=(0.0, 1.0, 5.0),
                       routing=("least_outstanding", "round_robin"), variants=("original",))


def test_every_feasible_config_once_then_none():
    space = _space()
    configs, _ = prune(space, cores=2)
    search = Search(configs, space.knobs(), seed=1)
    seen = []
    while (config := search.next()) is not None:
        assert config in configs  # replicas=4 never proposed (it does not fit 2 cores)
        seen.append(config_key(config))
        search.tell(config, _score(config))
    assert sorted(seen) == sorted(config_key(c) for c in configs)


def test_initial_design_covers_every_value_grouped_by_workers():
    space = _space()
    configs, _ = prune(space, cores=2)
    search = Search(configs, space.knobs(), seed=0)
    first = [search.next() for _ in range(len(search._initial))]
    for knob in ("replicas", "max_batch_size", "max_delay_ms", "routing"):
        assert {c[knob] for c in first} == set(space.knobs()[knob]) - ({4} if knob == "replicas" else set())
    replicas = [c["replicas"] for c in first]
    assert replicas == sorted(replicas, key=replicas.index)  # each worker layout once, not interleaved


def test_finds_the_optimum_well_before_the_grid_would():
    space = _space()
    configs, _ = prune(space, cores=2)
    best = max(_score(c) for c in configs)
    for seed in range(3):
        search = Search(configs, space.knobs(), seed=seed)
        found = []
        for _ in range(len(configs) // 3):
            config = search.next()
            search.tell(config, _score(config))
            found.append(_score(config))
        assert max(found) >= 0.9 * best, (seed, max(found), best)


def test_same_seed_same_order():
    space = _space()
    configs, _ = prune(space, cores=2)

    def order(seed):
        search, out = Search(configs, space.knobs(), seed=seed), []
        for _ in range(10):
            config = search.next()
            search.tell(config, _score(config))
            out.append(config_key(config))
        return out

    assert order(3) == order(3)
