"""The plugin's JSON without `json`: the same answers as `json`, errors included."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podnet.cni import leanjson

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_round_trips_agree_with_json(value: object) -> None:
    text = leanjson.dumps(value)
    assert json.loads(text) == value
    assert leanjson.loads(text) == value
    assert leanjson.loads(f" \n{json.dumps(value, indent=1)}\t") == value


@pytest.mark.parametrize("bad", ["", "{bad", "{} {}", "[1,]", "{\"a\": 1", "NaNx"])
def test_what_json_refuses_is_refused_with_its_message(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError) as lean:
        leanjson.loads(bad)
    with pytest.raises(json.JSONDecodeError) as full:
        json.loads(bad)
    assert str(lean.value) == str(full.value)
