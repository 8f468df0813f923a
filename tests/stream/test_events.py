import json

import pytest

from stream.dead_letters import dead_letter_value
from stream.events import normal_id, MIN_TS_MS, Interaction, Rejection, parse_interaction, parse_item

NOW = 1_800_000_000_000


def event(**overrides) -> bytes:
    record = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "view", "ts": NOW - 1000}
    record.update(overrides)
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def test_valid_event_is_parsed_with_its_source_position():
    parsed = parse_interaction(
        event(props={"page": "home"}), topic="t", partition=2, offset=7, kafka_ts=1.5, now_ms=NOW
    )
    assert parsed == Interaction("e1", "u1", "i1", "view", NOW - 1000, {"page": "home"}, "t", 2, 7, 1.5)


def test_integer_ids_are_accepted_as_strings():
    parsed = parse_interaction(event(user_id=42, item_id=7), now_ms=NOW)
    assert (parsed.user_id, parsed.item_id) == ("42", "7")


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"not json at all", "not_json"),
        (b"\xff\xfe\x00", "not_json"),
        (None, "not_json"),
        (b"[1, 2]", "not_object"),
        (event(user_id=...), "missing_field"),
        (event(item_id=""), "missing_field"),
        (event(event_id=None), "missing_field"),
        (event(user_id="x" * 257), "bad_id"),
        (event(item_id="a\nb"), "bad_id"),
        (event(item_id="a\x7fb"), "bad_id"),
        (event(user_id=True), "bad_id"),
        (event(user_id={"a": 1}), "bad_id"),
        (event(type="like"), "unknown_type"),
        (event(type=None), "unknown_type"),
        (event(ts="yesterday"), "bad_ts"),
        (event(ts=None), "bad_ts"),
        (event(ts=True), "bad_ts"),
        (event(ts=MIN_TS_MS - 1), "ts_out_of_range"),
        (event(ts=1_600_000_000), "ts_out_of_range"),  # seconds, not milliseconds
        (event(ts=NOW + 24 * 3600 * 1000 + 1), "ts_out_of_range"),
        (event(props=[1]), "bad_field"),
    ],
)
def test_bad_events_are_rejected_with_a_reason(raw, reason):
    result = parse_interaction(raw, now_ms=NOW)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.detail


def test_limits_are_inclusive():
    assert isinstance(parse_interaction(event(user_id="x" * 256, ts=MIN_TS_MS), now_ms=NOW), Interaction)
    assert isinstance(parse_interaction(event(ts=NOW + 24 * 3600 * 1000), now_ms=NOW), Interaction)


def test_items_are_validated():
    item = parse_item(json.dumps({"item_id": "i1", "title": "Phone", "category": "electronics", "price": 9}).encode())
    assert (item.item_id, item.title, item.category, item.brand, item.price) == (
        "i1",
        "Phone",
        "electronics",
        None,
        9.0,
    )
    assert parse_item(b'{"title": "x"}').reason == "missing_field"
    assert parse_item(b'{"item_id": "i", "price": "cheap"}').reason == "bad_field"
    assert parse_item(b'{"item_id": "i", "title": 5}').reason == "bad_field"


def test_dead_letter_keeps_the_exact_original_bytes_and_source():
    import base64

    original = b"\xff not json"
    value = json.loads(
        dead_letter_value(
            Rejection("not_json", "bad"), original, topic="interactions", partition=3, offset=99, key=b"u1"
        )
    )
    assert base64.b64decode(value["original_base64"]) == original
    assert value["source"] == {"topic": "interactions", "partition": 3, "offset": 99}
    assert value["reason"] == "not_json" and "original_text" not in value


@pytest.mark.parametrize(
    "bad_id, says",
    [
        (" ", "blank"),
        ("\t \u3000", "blank"),
        (" u1", "whitespace"),
        ("u1 ", "whitespace"),
        ("u\u200b1", "U+200B"),  # zero-width space
        ("u\u202e1", "U+202E"),  # right-to-left override
        ("\ufeffu1", "U+FEFF"),  # byte-order mark
        ("u\u2028", "whitespace"),  # line separator at the end
        ("u\u2028x", "U+2028"),
        ("u\uffff", "U+FFFF"),  # non-characters
        ("u\ufdd0", "U+FDD0"),
        ("u\U0010fffe", "U+10FFFE"),
    ],
)
def test_ids_that_would_read_the_same_as_another_are_rejected(bad_id, says):
    for field in ("user_id", "item_id", "event_id"):
        result = parse_interaction(event(**{field: bad_id}), now_ms=NOW)
        assert isinstance(result, Rejection) and result.reason == "bad_id", (field, bad_id, result)
        assert field in result.detail and says in result.detail
    assert parse_item(json.dumps({"item_id": bad_id}).encode()).reason == "bad_id"


def test_ids_are_nfc_normalised_so_one_name_is_one_node():
    decomposed, composed = "Jose\u0301", "Jos\u00e9"
    parsed = parse_interaction(event(user_id=decomposed, item_id=decomposed), now_ms=NOW)
    assert (parsed.user_id, parsed.item_id) == (composed, composed)
    assert parse_item(json.dumps({"item_id": decomposed}).encode()).item_id == composed


def test_inner_spaces_and_other_scripts_are_valid_ids():
    for good in ("John Smith", "商品-42", "ürün", "a\u00a0b", "emoji-\U0001f600", "x" * 256):
        parsed = parse_interaction(event(user_id=good, item_id=good), now_ms=NOW)
        assert isinstance(parsed, Interaction) and parsed.user_id == good


def test_the_ascii_fast_path_judges_ids_as_the_general_rule_does():
    from stream.events import id_problem

    for value in ["u1", " u1", "u1 ", " ", "a b", "~!@#$%^&*()", "x" * 256, "user:42/7"]:
        text, problem = normal_id(value)
        assert text == value and problem == id_problem(value), value
