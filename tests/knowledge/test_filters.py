"""Tests for the metadata filter language and file metadata validation."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from assistant_chat.knowledge.filters import (
    MAX_FILTER_DEPTH,
    MAX_METADATA_BYTES,
    FilterError,
    MetadataError,
    MetadataFilter,
    parse_filter,
    validate_metadata,
)

DOC: dict[str, Any] = {
    "genre": "drama",
    "year": 2019,
    "rating": 7.5,
    "draft": False,
    "tags": ["news", "sport"],
}


def matches(raw: Any, metadata: Any = DOC) -> bool:
    parsed = parse_filter(raw)
    assert parsed is not None
    return parsed.matches(metadata)


# --- "no filter" inputs -----------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", "   ", {}, "{}", " {} "])
def test_empty_inputs_mean_no_filter(raw: Any) -> None:
    assert parse_filter(raw) is None


# --- each operator ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # $eq and bare values
        ({"genre": "drama"}, True),
        ({"genre": "comedy"}, False),
        ({"genre": {"$eq": "drama"}}, True),
        ({"genre": {"$eq": "comedy"}}, False),
        ({"year": 2019}, True),
        ({"year": {"$eq": 2020}}, False),
        ({"draft": False}, True),
        ({"draft": {"$eq": True}}, False),
        # $ne
        ({"genre": {"$ne": "comedy"}}, True),
        ({"genre": {"$ne": "drama"}}, False),
        ({"year": {"$ne": 2019}}, False),
        ({"draft": {"$ne": True}}, True),
        # ordering
        ({"year": {"$gt": 2018}}, True),
        ({"year": {"$gt": 2019}}, False),
        ({"year": {"$gte": 2019}}, True),
        ({"year": {"$gte": 2020}}, False),
        ({"year": {"$lt": 2020}}, True),
        ({"year": {"$lt": 2019}}, False),
        ({"year": {"$lte": 2019}}, True),
        ({"year": {"$lte": 2018.5}}, False),
        ({"rating": {"$gt": 7.4, "$lt": 7.6}}, True),
        ({"rating": {"$gte": 7.5, "$lte": 7.5}}, True),
        # $in / $nin
        ({"genre": {"$in": ["comedy", "drama"]}}, True),
        ({"genre": {"$in": ["comedy", "horror"]}}, False),
        ({"year": {"$in": [2018, 2019]}}, True),
        ({"genre": {"$nin": ["comedy", "horror"]}}, True),
        ({"genre": {"$nin": ["comedy", "drama"]}}, False),
        ({"year": {"$nin": [2019.0]}}, False),
        # $exists
        ({"genre": {"$exists": True}}, True),
        ({"genre": {"$exists": False}}, False),
        ({"author": {"$exists": True}}, False),
        ({"author": {"$exists": False}}, True),
        ({"draft": {"$exists": True}}, True),  # a false value is still present
    ],
)
def test_operators(raw: dict[str, Any], expected: bool) -> None:
    assert matches(raw) is expected


def test_several_operators_on_one_field_are_anded() -> None:
    assert matches({"year": {"$gte": 2000, "$lt": 2020, "$ne": 2010}})
    assert not matches({"year": {"$gte": 2000, "$lt": 2020, "$ne": 2019}})


def test_several_keys_at_one_level_are_anded() -> None:
    assert matches({"genre": "drama", "year": {"$gt": 2000}})
    assert not matches({"genre": "drama", "year": {"$gt": 2020}})


# --- $and / $or -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"$and": [{"genre": "drama"}, {"year": 2019}]}, True),
        ({"$and": [{"genre": "drama"}, {"year": 2020}]}, False),
        ({"$or": [{"genre": "comedy"}, {"year": 2019}]}, True),
        ({"$or": [{"genre": "comedy"}, {"year": 2020}]}, False),
        ({"$or": [{"genre": "drama"}]}, True),
        (
            {"$or": [{"$and": [{"genre": "drama"}, {"draft": True}]}, {"year": 2019}]},
            True,
        ),
        (
            {"$and": [{"$or": [{"genre": "x"}, {"genre": "y"}]}, {"year": 2019}]},
            False,
        ),
        # a $or next to a field: both must hold
        ({"genre": "drama", "$or": [{"year": 1}, {"rating": 7.5}]}, True),
        ({"genre": "comedy", "$or": [{"year": 1}, {"rating": 7.5}]}, False),
        ({"$and": [{"year": {"$gt": 2000}}], "$or": [{"tags": "news"}]}, True),
    ],
)
def test_logical_operators(raw: dict[str, Any], expected: bool) -> None:
    assert matches(raw) is expected


# --- missing fields (Pinecone semantics) ------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"$eq": "x"}, False),
        ({"$ne": "x"}, True),
        ({"$gt": 1}, False),
        ({"$gte": 1}, False),
        ({"$lt": 1}, False),
        ({"$lte": 1}, False),
        ({"$in": ["x"]}, False),
        ({"$nin": ["x"]}, True),
        ({"$exists": True}, False),
        ({"$exists": False}, True),
    ],
)
@pytest.mark.parametrize("metadata", [{}, None, {"author": None}])
def test_missing_field(condition: dict[str, Any], expected: bool, metadata: dict[str, Any] | None) -> None:
    assert matches({"author": condition}, metadata) is expected


# --- list-valued metadata ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"tags": "news"}, True),
        ({"tags": "weather"}, False),
        ({"tags": {"$eq": "sport"}}, True),
        ({"tags": {"$ne": "sport"}}, False),
        ({"tags": {"$ne": "weather"}}, True),
        ({"tags": {"$in": ["weather", "sport"]}}, True),
        ({"tags": {"$in": ["weather", "tech"]}}, False),
        ({"tags": {"$nin": ["weather", "sport"]}}, False),
        ({"tags": {"$nin": ["weather", "tech"]}}, True),
        ({"tags": {"$gt": 1}}, False),
        ({"tags": {"$exists": True}}, True),
    ],
)
def test_list_valued_metadata(raw: dict[str, Any], expected: bool) -> None:
    assert matches(raw) is expected


def test_empty_list_metadata_is_present_but_matches_nothing() -> None:
    metadata: dict[str, list[str]] = {"tags": []}
    assert not matches({"tags": "news"}, metadata)
    assert matches({"tags": {"$ne": "news"}}, metadata)
    assert matches({"tags": {"$nin": ["news"]}}, metadata)
    assert matches({"tags": {"$exists": True}}, metadata)


# --- types: numbers, strings, booleans --------------------------------------------


@pytest.mark.parametrize(
    ("raw", "metadata", "expected"),
    [
        # int and float compare as numbers
        ({"year": 2024}, {"year": 2024.0}, True),
        ({"year": 2024.0}, {"year": 2024}, True),
        ({"year": {"$in": [2024.0]}}, {"year": 2024}, True),
        ({"year": {"$gte": 2024.0}}, {"year": 2024}, True),
        ({"year": {"$ne": 2024}}, {"year": 2024.0}, False),
        # strings never equal numbers
        ({"year": "2024"}, {"year": 2024}, False),
        ({"year": 2024}, {"year": "2024"}, False),
        ({"year": {"$in": ["2024"]}}, {"year": 2024}, False),
        ({"year": {"$ne": "2024"}}, {"year": 2024}, True),
        ({"year": {"$gt": 2000}}, {"year": "2024"}, False),
        # booleans are not numbers
        ({"flag": True}, {"flag": 1}, False),
        ({"flag": 1}, {"flag": True}, False),
        ({"flag": 0}, {"flag": False}, False),
        ({"flag": False}, {"flag": 0}, False),
        ({"flag": True}, {"flag": True}, True),
        ({"flag": {"$in": [1]}}, {"flag": True}, False),
        ({"flag": {"$gt": 0}}, {"flag": True}, False),
        ({"flag": {"$ne": True}}, {"flag": 1}, True),
        # booleans are not strings
        ({"flag": "true"}, {"flag": True}, False),
    ],
)
def test_value_types(raw: dict[str, Any], metadata: dict[str, Any], expected: bool) -> None:
    assert matches(raw, metadata) is expected


def test_unvalidated_odd_metadata_never_raises() -> None:
    odd = {"year": float("nan"), "big": 10**400, "obj": {"a": 1}}
    assert not matches({"year": {"$gt": 0}}, odd)
    assert not matches({"big": {"$gt": 0}}, odd)
    assert not matches({"obj": {"$eq": "a"}}, odd)
    assert matches({"obj": {"$ne": "a"}}, odd)


# --- JSON string input, normalisation, str ----------------------------------------


def test_json_string_input() -> None:
    parsed = parse_filter('{"genre": "drama", "year": {"$gte": 2019}}')
    assert parsed is not None
    assert parsed.matches(DOC)
    assert not parsed.matches({"genre": "drama", "year": 2000})


def test_to_json_expands_bare_values() -> None:
    parsed = parse_filter(
        {
            "genre": "drama",
            "year": {"$gt": 2000, "$lte": 2020},
            "$or": [{"tags": {"$in": ("a", "b")}}, {"draft": False}],
        }
    )
    assert parsed is not None
    assert parsed.to_json() == {
        "genre": {"$eq": "drama"},
        "year": {"$gt": 2000, "$lte": 2020},
        "$or": [{"tags": {"$in": ["a", "b"]}}, {"draft": {"$eq": False}}],
    }


def test_str_is_compact_json_that_round_trips() -> None:
    parsed = parse_filter({"genre": "drame\u0301", "year": {"$in": [1, 2.5]}})
    assert parsed is not None
    text = str(parsed)
    assert text == '{"genre":{"$eq":"drame\u0301"},"year":{"$in":[1,2.5]}}'
    assert parse_filter(text) == parsed
    assert json.loads(text) == parsed.to_json()
    assert repr(parsed) == f"MetadataFilter({text})"


def test_filters_are_immutable_hashable_and_compare_by_meaning() -> None:
    a = parse_filter({"genre": "drama"})
    b = parse_filter('{"genre": {"$eq": "drama"}}')
    assert isinstance(a, MetadataFilter)
    assert a == b
    assert hash(a) == hash(b)
    # True == 1 in Python, but these filters match different files.
    assert parse_filter({"x": True}) != parse_filter({"x": 1})
    with pytest.raises(AttributeError):
        a._root = None  # type: ignore[misc, assignment]
    returned = a.to_json()
    returned["genre"]["$eq"] = "comedy"
    assert a.to_json() == {"genre": {"$eq": "drama"}}


def test_input_is_not_kept_by_reference() -> None:
    raw: dict[str, Any] = {"genre": {"$in": ["drama"]}}
    parsed = parse_filter(raw)
    assert parsed is not None
    raw["genre"]["$in"].append("comedy")
    assert not parsed.matches({"genre": "comedy"})


# --- depth limit ------------------------------------------------------------------


def nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"genre": "drama"}
    for index in range(levels):
        node = {"$and" if index % 2 else "$or": [node]}
    return node


def test_depth_limit_allows_max_depth() -> None:
    assert matches(nested(MAX_FILTER_DEPTH))


def test_depth_limit_rejects_deeper_filters() -> None:
    with pytest.raises(FilterError, match="nested too deeply") as info:
        parse_filter(nested(MAX_FILTER_DEPTH + 1))
    assert str(MAX_FILTER_DEPTH) in str(info.value)


def test_absurdly_deep_json_is_a_filter_error() -> None:
    with pytest.raises(FilterError, match="nested too deeply"):
        parse_filter('{"$and": [' * 100_000 + "]}" * 100_000)


# --- filter errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        # shape of the whole filter
        ("[1, 2]", ["Filter must be a JSON object"]),
        ('"genre"', ["Filter must be a JSON object"]),
        ("null", ["Filter must be a JSON object"]),
        (["genre"], ["Filter must be a JSON object"]),
        (42, ["Filter must be a JSON object"]),
        ("{genre: 1}", ["Filter is not valid JSON:"]),
        ('{"genre": "drama"', ["Filter is not valid JSON:"]),
        ('{"year": NaN}', ["Filter is not valid JSON:", "NaN"]),
        ('{"year": {"$gt": Infinity}}', ["Filter is not valid JSON:", "Infinity"]),
        ('{"genre": "a", "genre": "b"}', ['duplicate key "genre"']),
        # field names
        ({"$foo": 1}, ['Field names cannot start with "$": "$foo"']),
        ({"": 1}, ["Field names cannot be empty"]),
        ({1: "x"}, ["Field names must be strings"]),
        ({"$eq": "drama"}, ['Operator "$eq" must be applied to a field']),
        ({"$in": ["a"]}, ['Operator "$in"']),
        # operators
        ({"genre": {"$regex": "dr.*"}}, ['Unknown operator "$regex" at "genre"']),
        (
            {"genre": {"$eq": "x", "$like": "y"}},
            ['Unknown operator "$like" at "genre"'],
        ),
        (
            {"genre": {"$and": [{"a": 1}]}},
            ['"$and" cannot be used inside field "genre"'],
        ),
        ({"genre": {}}, ['Empty operator object at "genre"']),
        # nested objects as bare values: the classic mistake
        (
            {"metadata": {"version": "v1"}},
            [
                '"metadata"',
                'a field\'s value must be a string, number, boolean or an operator object like {"$eq": ...}',
                '"version"',
            ],
        ),
        ({"year": {"$gt": 1, "max": 2}}, ['"year"', '"max" is not an operator']),
        ({"genre": ["a", "b"]}, ['"genre"', "not a list", "$in"]),
        ({"genre": {1, 2}}, ['Invalid value at "genre"']),
        ({"year": float("nan")}, ['Invalid value at "year"', "non-finite"]),
        # nulls
        (
            {"genre": None},
            [
                'Null is not a valid value at "genre" (remove the key to match files'
                ' without it, or use {"$exists": false})'
            ],
        ),
        ('{"genre": {"$eq": null}}', ['Null is not a valid value at "genre"']),
        ({"genre": {"$ne": None}}, ['Null is not a valid value at "genre"', "$exists"]),
        # $eq / $ne values
        (
            {"genre": {"$eq": ["a"]}},
            ['"$eq" at "genre" needs a string, number or boolean'],
        ),
        (
            {"genre": {"$ne": {"a": 1}}},
            ['"$ne" at "genre" needs a string, number or boolean'],
        ),
        ({"year": {"$eq": math.inf}}, ['"$eq" at "year"', "non-finite"]),
        # ordering values
        ({"year": {"$gt": True}}, ['"$gt" at "year" needs a number', "boolean"]),
        ({"year": {"$gte": False}}, ['"$gte" at "year" needs a number']),
        ({"year": {"$lt": "2020"}}, ['"$lt" at "year" needs a number', "string"]),
        ({"year": {"$lte": None}}, ['"$lte" at "year" needs a number', "null"]),
        ({"year": {"$gt": [1]}}, ['"$gt" at "year" needs a number']),
        ({"year": {"$gt": float("nan")}}, ['"$gt" at "year" needs a number']),
        (
            {"year": {"$lt": 10**400}},
            ['"$lt" at "year" needs a number', "out-of-range"],
        ),
        # $in / $nin values
        (
            {"genre": {"$in": "drama"}},
            ['"$in" at "genre" needs a list of strings or numbers'],
        ),
        (
            {"genre": {"$in": []}},
            ['"$in" at "genre" needs a list of strings or numbers'],
        ),
        (
            {"genre": {"$in": ["a", None]}},
            ['"$in" at "genre" needs a list', "item 2 is null"],
        ),
        ({"genre": {"$in": [True]}}, ['"$in" at "genre" needs a list', "boolean"]),
        (
            {"genre": {"$in": [["a"]]}},
            ['"$in" at "genre" needs a list', "item 1 is a list"],
        ),
        ({"genre": {"$nin": [{"a": 1}]}}, ['"$nin" at "genre" needs a list', "object"]),
        (
            {"genre": {"$nin": None}},
            ['"$nin" at "genre" needs a list of strings or numbers'],
        ),
        # $exists
        ({"x": {"$exists": 1}}, ['"$exists" at "x" needs true or false']),
        ({"x": {"$exists": "true"}}, ['"$exists" at "x" needs true or false']),
        ({"x": {"$exists": None}}, ['"$exists" at "x" needs true or false']),
        # $and / $or
        ({"$and": []}, ['"$and" needs a non-empty list of filters']),
        ({"$and": {"genre": "drama"}}, ['"$and" needs a non-empty list of filters']),
        ({"$or": None}, ['"$or" needs a non-empty list of filters']),
        ({"$or": [{"genre": "a"}, "b"]}, ['"$or" needs a non-empty list', "item 2"]),
        ({"$or": [{}]}, ['"$or" needs a non-empty list', "item 1 is an empty object"]),
        # errors deep inside are still found, and named
        (
            {"$or": [{"$and": [{"year": {"$gt": "x"}}]}]},
            ['"$gt" at "year" needs a number'],
        ),
    ],
)
def test_filter_errors(raw: Any, fragments: list[str]) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(raw)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_filter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_filter("{")


# --- metadata validation ----------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", "  ", {}, "{}"])
def test_empty_metadata(raw: Any) -> None:
    assert validate_metadata(raw) == {}


@pytest.mark.parametrize(
    "raw",
    [
        {"genre": "drama", "year": 2019, "rating": 7.5, "draft": False, "tags": ["a"]},
        {"tags": []},
        {"a b": "", "émoji 🎉": "ok"},
        {"n": -0.0, "big": 2**53},
    ],
)
def test_valid_metadata_is_returned_unchanged(raw: dict[str, Any]) -> None:
    assert validate_metadata(raw) == raw
    assert validate_metadata(json.dumps(raw)) == raw


def test_validate_metadata_returns_a_copy() -> None:
    raw: dict[str, Any] = {"tags": ("a", "b")}
    clean = validate_metadata(raw)
    assert clean == {"tags": ["a", "b"]}
    assert clean is not raw


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ("[1]", ["Metadata must be a JSON object"]),
        ("null", ["Metadata must be a JSON object"]),
        (["a"], ["Metadata must be a JSON object"]),
        ("{oops}", ["Metadata is not valid JSON"]),
        ('{"n": NaN}', ["Metadata is not valid JSON", "NaN"]),
        ('{"a": 1, "a": 2}', ['duplicate key "a"']),
        ({"": "x"}, ["Metadata keys cannot be empty"]),
        ({"$foo": "x"}, ['Metadata key "$foo" cannot start with "$"']),
        ({1: "x"}, ["Metadata keys must be strings"]),
        (
            {"genre": None},
            ['Metadata key "genre" is null', "not supported", "remove the key"],
        ),
        ('{"genre": null}', ['Metadata key "genre" is null']),
        ({"meta": {"version": "v1"}}, ['Metadata key "meta"', "flat"]),
        ({"nums": [1, 2]}, ['Metadata key "nums" must be a list of strings', "item 1"]),
        ({"tags": ["a", None]}, ['Metadata key "tags"', "item 2 is null"]),
        ({"tags": ["a", ["b"]]}, ['Metadata key "tags"', "item 2 is a list"]),
        ({"score": float("nan")}, ['Metadata key "score" must be a finite number']),
        ({"score": float("inf")}, ['Metadata key "score" must be a finite number']),
        ({"score": -math.inf}, ['Metadata key "score"']),
        ({"score": 10**400}, ['Metadata key "score"', "out-of-range"]),
        ({"when": object()}, ['Metadata key "when" has an unsupported value']),
        ({"bad": "\ud800"}, ['Metadata key "bad"', "not valid Unicode"]),
        ('{"bad": "\\ud800"}', ['Metadata key "bad"', "not valid Unicode"]),
    ],
)
def test_metadata_errors(raw: Any, fragments: list[str]) -> None:
    with pytest.raises(MetadataError) as info:
        validate_metadata(raw)
    for fragment in fragments:
        assert fragment in str(info.value)


def _metadata_of_size(size: int, char: str = "x") -> dict[str, str]:
    overhead = len(b'{"k":""}')
    width = len(char.encode("utf-8"))
    assert (size - overhead) % width == 0
    return {"k": char * ((size - overhead) // width)}


@pytest.mark.parametrize("char", ["x", "é", "🎉"])
def test_metadata_size_limit_is_inclusive(char: str) -> None:
    raw = _metadata_of_size(MAX_METADATA_BYTES, char)
    assert validate_metadata(raw) == raw


def test_metadata_size_limit_counts_utf8_bytes() -> None:
    # 8189 two-byte characters: about 8 K characters but 16386 bytes of JSON.
    raw = {"k": "é" * 8189}
    with pytest.raises(MetadataError) as info:
        validate_metadata(raw)
    message = str(info.value)
    assert "16384" in message
    assert f"{8189 * 2 + 8} bytes" in message  # 8 bytes of {"k":""}


def test_metadata_one_byte_over_the_limit() -> None:
    raw = _metadata_of_size(MAX_METADATA_BYTES + 1)
    with pytest.raises(MetadataError) as info:
        validate_metadata(raw)
    assert f"{MAX_METADATA_BYTES + 1} bytes" in str(info.value)
    assert "16 KB" in str(info.value)


def test_metadata_size_is_measured_compactly() -> None:
    # Pretty-printed input does not count: only the compact serialization does.
    raw = _metadata_of_size(MAX_METADATA_BYTES)
    assert validate_metadata(json.dumps(raw, indent=8)) == raw


def test_metadata_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_metadata({"a": None})


def test_validated_metadata_works_with_filters() -> None:
    metadata = validate_metadata('{"genre": "drama", "year": 2019, "tags": ["a", "b"]}')
    assert matches({"$and": [{"tags": "b"}, {"year": {"$lt": 2020.5}}]}, metadata)
