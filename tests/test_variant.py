"""The one variant parser of trainer and sweep configs (elm_jax/configs/variant.py)."""

from __future__ import annotations

import pytest

from elm_jax.configs import shd_adding, smoke
from elm_jax.configs.variant import VariantError, coerce, parse_variant, split_items
from sweeps.configs import default as default_sweep
from sweeps.configs import shd_adding as shd_adding_sweep


def _values(arg):
    return {k: v for k, (_, v) in parse_variant(arg).items()}


def test_brackets_and_continuation_items_give_the_same_list():
    bracketed = _values("budgets=[1e3,1e4],seeds=[0,1],steps=200")
    continued = _values("budgets=1e3,1e4,seeds=0,1,steps=200")
    assert bracketed == continued == {"budgets": [1000.0, 10000.0], "seeds": [0, 1], "steps": 200}


def test_commas_inside_brackets_or_quotes_belong_to_the_value():
    assert split_items("a=[1,(2,3)],b='x,y',c=z") == ["a=[1,(2,3)]", "b='x,y'", "c=z"]
    assert _values("b='x,y',c=plain") == {"b": "x,y", "c": "plain"}
    assert parse_variant("budgets=1e3,1e4")["budgets"][0] == "1e3,1e4"  # text as written
    assert _values("baselines=[lstm,gru],slices=budget,axis") == {
        "baselines": ["lstm", "gru"],
        "slices": ["budget", "axis"],
    }


@pytest.mark.parametrize(
    "arg,message",
    [
        ("N64", "item 'N64' is not key=value"),
        ("budgets=[1e3],1e4", "already a list"),
        ("N=1,N=2", "key 'N' is given twice"),
        ("=3", "no key before '='"),
    ],
)
def test_malformed_variants_name_the_item(arg, message):
    with pytest.raises(VariantError, match=message):
        parse_variant(arg)


def test_values_are_checked_against_the_field_type():
    assert coerce("steps", "2e3", 2000.0, 5000, None, "v") == 2000
    assert isinstance(coerce("steps", "2e3", 2000.0, 5000, None, "v"), int)
    assert coerce("lr", "1", 1, 5e-3, None, "v") == 1.0
    assert coerce("data", "123", 123, "shd", None, "v") == "123"
    assert coerce("seeds", "3", 3, (0,), None, "v") == (3,)
    assert coerce("budgets", "1e3,2", [1e3, 2], (1.0,), None, "v") == (1000.0, 2.0)
    assert coerce("clip", "1", 1, None, float, "v") == 1.0  # a typed placeholder
    for text, value in [("2.5", 2.5), ("abc", "abc"), ("True", True)]:
        with pytest.raises(VariantError, match=f"steps={text}: .* is not an integer"):
            coerce("steps", text, value, 5000, None, "v")
    with pytest.raises(VariantError, match="lr=fast: 'fast' is not a number"):
        coerce("lr", "fast", "fast", 5e-3, None, "v")
    with pytest.raises(VariantError, match=r"seeds=\[0,1.5\]: 1.5 is not an integer"):
        coerce("seeds", "[0,1.5]", [0, 1.5], (0,), None, "v")
    with pytest.raises(VariantError, match=r"steps=1,2: takes one value, not a list"):
        coerce("steps", "1,2", [1, 2], 5000, None, "v")


def test_trainer_and_sweep_configs_share_the_rule():
    cfg = shd_adding.get_config("N=64,seeds=0,1,2,steps=2e3,lr=1e-3")
    assert cfg.model.num_neurons == 64 and cfg.seeds == (0, 1, 2)
    assert cfg.num_train_steps == 2000 and cfg.optim.learning_rate == 1e-3
    assert smoke.get_config("classification,seeds=[0,1]").seeds == (0, 1)
    sweep = shd_adding_sweep.get_config("budgets=1e3,1e4,steps=200")
    assert sweep.budgets == (1000.0, 10000.0) and sweep.train.num_train_steps == 200
    with pytest.raises(VariantError, match="config variant steps=2.5"):
        shd_adding.get_config("steps=2.5")
    with pytest.raises(VariantError, match="sweep variant steps=abc"):
        default_sweep.get_config("steps=abc")
    with pytest.raises(VariantError, match="sweep variant key 'width' is unknown; valid: steps"):
        default_sweep.get_config("width=3")


def test_a_group_or_missing_field_names_what_is_valid():
    with pytest.raises(VariantError, match=r"'model' is a group of fields \(arch, "):
        shd_adding.get_config("model=3")
    with pytest.raises(VariantError, match=r"no field 'optim.nope'; valid: .*learning_rate"):
        shd_adding.get_config("optim.nope=1")
