"""Which worker answers GET /recommendations/{user}: the owner of the user's partition (pure logic; the
three-worker test in tests/e2e/test_scale_out.py asks real workers)."""

from types import SimpleNamespace

from aiokafka.partitioner import DefaultPartitioner

from streamrec.runtime.health import Health
from streamrec.runtime.settings import load_settings
from streamrec.runtime.worker import owner_lookup

TOPIC = "interactions"


def app_with(assignment: dict[str, list[int]]):
    metadata = {url: {TOPIC: partitions, "items": partitions} for url, partitions in assignment.items()}
    return SimpleNamespace(assignor=SimpleNamespace(external_topics_metadata=lambda: metadata))


def test_the_owner_is_the_member_assigned_the_partition_a_producer_picks_for_the_key():
    assignment = {"http://a:1": [0, 3], "http://b:1": [1, 4], "http://c:1/": [2, 5]}
    owner_of = owner_lookup(app_with(assignment), TOPIC, own_url="http://a:1")
    partitioner = DefaultPartitioner()  # aiokafka's, the Java client's rule: another implementation of murmur2
    for user in ["u1", "u2", "ユーザー", "a user", "x" * 200]:
        partition = partitioner(user.encode(), list(range(6)), list(range(6)))
        expected = next(url.rstrip("/") for url, parts in assignment.items() if partition in parts)
        assert owner_of(user) == (None if expected == "http://a:1" else expected), user


def test_no_owner_before_the_first_assignment():
    assert owner_lookup(app_with({}), TOPIC, own_url="http://a:1")("u1") is None


def _health(owner: str | None) -> Health:
    settings = load_settings({"STREAMREC_HOME": "unused-home"})
    return Health(settings, lookup=lambda user, k: b'{"user_id": "%s"}' % user.encode(), owner_of=lambda user: owner)


def test_a_user_of_another_worker_is_redirected_and_a_routed_request_answered_here():
    assert _health("http://b:9464").recommendations("/recommendations/u%201?k=5") == (
        307,
        "http://b:9464/recommendations/u%201?k=5&routed=1",
    )
    assert _health("http://b:9464").recommendations("/recommendations/u1?k=5&routed=1") == (200, b'{"user_id": "u1"}')
    assert _health(None).recommendations("/recommendations/u1") == (200, b'{"user_id": "u1"}')


def test_bad_ids_are_refused_before_any_routing():
    status, body = _health("http://b:9464").recommendations("/recommendations/%E2%80%8Bu1")
    assert status == 400 and "user_id" in body["error"]


def test_the_advertised_url_is_reachable_from_elsewhere():
    import socket

    import pytest

    from streamrec.runtime.settings import SettingsError

    assert load_settings({"STREAMREC_METRICS_PORT": "9000"}).http_url == "http://127.0.0.1:9000"
    assert load_settings({"STREAMREC_METRICS_HOST": "0.0.0.0"}).advertised_host == socket.gethostname()
    assert (
        load_settings({"STREAMREC_ADVERTISED_HOST": "worker-3.streamrec"}).http_url == "http://worker-3.streamrec:9464"
    )
    assert load_settings({"STREAMREC_ADVERTISED_HOST": "::1"}).http_url == "http://[::1]:9464"
    with pytest.raises(SettingsError, match="STREAMREC_ADVERTISED_HOST='not a host'"):
        load_settings({"STREAMREC_ADVERTISED_HOST": "not a host"})
