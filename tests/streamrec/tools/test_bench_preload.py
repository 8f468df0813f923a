from streamrec.tools.bench_preload import PREFIX, Preload, remapped, store_bytes
from streamrec.tools.synthetic_graph import item_id, user_id


def test_the_stream_lands_on_the_preloaded_ids_by_activity_wrapping_past_the_population():
    columns = {
        "event_ids": ["e0", "e1", "e2", "e3", "e4"],
        "users": ["b", "a", "b", "c", "b"],
        "items": ["x", "y", "y", "z", "w"],
        "types": ["view"] * 5,
        "ts": [1, 2, 3, 4, 5],
    }
    out = remapped(columns, Preload(edges=100, users=2, items=3))
    # users by events: b (3), then a and c (1 each, by id): ranks 0, 1, 2 -> 2 wraps to 0
    assert out["users"] == [user_id(r, PREFIX) for r in (0, 1, 0, 0, 0)]
    # items: y (2), then w, x, z (1 each): ranks 0, 1, 2, 3 -> 3 wraps to 0
    assert out["items"] == [item_id(r, PREFIX) for r in (2, 0, 0, 0, 1)]
    assert {k: out[k] for k in ("event_ids", "types", "ts")} == {k: columns[k] for k in ("event_ids", "types", "ts")}


def test_the_default_populations_and_the_time_a_worker_may_take_to_read_them():
    preload = Preload.of(1_000_000)
    assert (preload.users, preload.items) == (50_000, 10_000)
    assert Preload.of(10).users == 1 and Preload.of(10, users=7).users == 7
    assert Preload.of(10_000_000).ready_timeout_s > Preload.of(1_000_000).ready_timeout_s >= 90


def test_the_store_size_counts_the_data_folder_only(tmp_path):
    (tmp_path / "data" / "db").mkdir(parents=True)
    (tmp_path / "data" / "db" / "store").write_bytes(b"x" * 100)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "debug.log").write_bytes(b"y" * 50)
    assert store_bytes(tmp_path) == 100
