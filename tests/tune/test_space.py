"""SearchSpace: validation, round trip, and pruning configs that cannot run on this machine."""

from __future__ import annotations

import pytest

from workbench.errors import ConfigError
from workbench.tune.space import SearchSpace, cores_of, prune, restart_key


def test_defaults_round_trip_through_dicts():
    space = SearchSpace(replicas=[1, 2], max_delay_ms=(0, 2.5), variants=("original", "int8"))
    assert space.max_delay_ms == (0.0, 2.5)
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert SearchSpace.from_dict(None) == SearchSpace()
    assert "replicas=(1, 2)" in repr(space)


@pytest.mark.parametrize(("data", "words"), [
    ({"replicas": []}, "empty: replicas must list at least one value"),
    ({"batch": [1]}, "unknown knob(s) ['batch']"),
    ({"max_batch_size": [0]}, "max_batch_size must be in 1..65536"),
    ({"routing": ["fastest"]}, "routing must be one of"),
    ({"replicas": [1, 1]}, "lists a value twice"),
    ({"max_delay_ms": [-1.0]}, "max_delay_ms must be >= 0"),
])
def test_bad_spaces_say_what_is_wrong(data, words):
    with pytest.raises(ConfigError) as err:
        SearchSpace.from_dict(data)
    assert words in str(err.value)


def test_variants_resolve_against_what_the_tuner_has():
    assert SearchSpace().with_variants(["original", "int8"]).variants == ("original", "int8")
    with pytest.raises(ConfigError, match=r"names variant\(s\) \['bf16'\]"):
        SearchSpace(variants=("bf16",)).with_variants(["original"])


def test_configs_enumerate_the_product_and_prune_what_does_not_fit():
    space = SearchSpace(replicas=(1, 2, 4), stages=(1, 2, 9), threads_per_worker=(1,), max_batch_size=(1, 8),
                        max_delay_ms=(0.0,), routing=("round_robin",), variants=("original",))
    assert space.size == 18 and len(list(space.configs())) == 18
    kept, reasons = prune(space, cores=2, max_stages=5)
    assert kept and all(cores_of(c) <= 2 and c["stages"] <= 5 for c in kept)
    assert {(c["replicas"], c["stages"]) for c in kept} == {(1, 1), (2, 1), (1, 2)}
    pruned = sum(int(r.split()[0]) for r in reasons)
    assert pruned == 18 - len(kept)
    assert any("more than the 2 core(s)" in r for r in reasons) and any("cuttable layers" in r for r in reasons)


def test_live_knobs_share_a_restart_key():
    a = {"replicas": 1, "stages": 1, "threads_per_worker": 1, "max_batch_size": 1, "max_delay_ms": 0.0,
         "routing": "round_robin", "variant": "original"}
    assert restart_key(a) == restart_key({**a, "max_batch_size": 32, "routing": "least_outstanding"})
    assert restart_key(a) != restart_key({**a, "replicas": 2})
    assert restart_key(a) != restart_key({**a, "variant": "int8"})
