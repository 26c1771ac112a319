"""What a flush records is hashed as stored text, so its fast paths must write exactly
the text of the canonical forms: the JSON of canonical_json, and the encoding of the
hash chain."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bhp_ctms.audit.capture import _canonical_json
from bhp_ctms.audit.chain import HASHED_FIELDS, _encoded, encode, hash_values
from bhp_ctms.audit.models import canonical_json

texts = st.text(st.characters(codec="utf-8"), max_size=20)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_a_recorded_value_is_written_as_canonical_json(value):
    assert _canonical_json(value) == canonical_json(value)


@given(st.dictionaries(texts, st.one_of(st.none(), st.booleans(), st.integers(), texts)))
def test_details_of_texts_and_numbers_are_written_as_canonical_json(details):
    assert _canonical_json(details) == canonical_json(details)


def test_the_encoding_gives_each_field_its_length_and_marks_nothing():
    moment = datetime(2026, 3, 12, 14, 3, 7, 250, tzinfo=UTC)
    assert encode([None, "", "\u00e9:~", 42, moment]) == (
        "~0:3:\u00e9:~2:4226:2026-03-12T14:03:07.000250".encode()
    )


@given(st.lists(st.one_of(st.none(), st.integers(), texts, st.datetimes(timezones=st.just(UTC)))))
def test_appended_rows_are_encoded_field_by_field_as_encode_does(values):
    assert "".join(map(_encoded, values)).encode("utf-8") == encode(values)


def test_an_events_hash_covers_every_hashed_field_in_order():
    values = {name: f"v-{name}" for name in HASHED_FIELDS if name != "details"}
    values["details_json"] = "{}"
    digest = hash_values(values)
    for name in values:
        assert hash_values({**values, name: values[name] + "x"}) != digest
