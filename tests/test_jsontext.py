"""JSON text as the API writes it: compact, UTF-8, the same values the standard library writes."""

from __future__ import annotations

import json

import pytest

from mockserver.spec import jsontext

VALUES = [
    {"name": "Équipe données", "tags": ["ü", "日本"], "n": 3, "x": 0.1, "big": 1e21, "small": 1e-7, "none": None},
    [1, 2.5, True, False, None, 'a\nb"c'],
    {"nested": {"deep": [{"k": [1, {"z": "y"}]}]}},
    2**63 - 1,
    -(2**63),
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_text_parses_back_to_the_same_value_and_keeps_key_order(value: object) -> None:
    written = jsontext.text(value)
    assert json.loads(written) == value
    assert ", " not in written.replace('", "', "") and ": " not in written  # compact
    if isinstance(value, dict):
        assert list(json.loads(written)) == list(value)


def test_integers_past_64_bits_are_written_too() -> None:
    value = {"max_limit": 10**30, "neg": -(10**25)}
    assert jsontext.dumps(value) == b'{"max_limit":1000000000000000000000000000000,"neg":-10000000000000000000000000}'


def test_non_ascii_text_is_written_as_utf_8() -> None:
    assert jsontext.dumps({"name": "Équipe"}) == '{"name":"Équipe"}'.encode()
