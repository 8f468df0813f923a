"""The version store: versions are folders, CURRENT records the promotions, the pin wins, nothing by file time."""

import json
import logging
import os
import subprocess
import sys

import pytest

from stream import metrics
from streamrec.runtime.model_versions import (
    CURRENT_FILE,
    VersionError,
    VersionStore,
    pinned_env,
    served_version,
    version_name_of,
)
from streamrec.runtime.settings import SettingsError, load_settings
from streamrec.runtime.worker import StartupError, startup_version
from conftest import REPO
from version_folders import tamper, write_version


def settings_for(tmp_path, **env):
    return load_settings(
        {
            "STREAMREC_HOME": str(tmp_path),
            "STREAMREC_MODEL_DIR": str(tmp_path / "models"),
            **{f"STREAMREC_{k.upper()}": v for k, v in env.items()},
        }
    )


def test_versions_are_the_checkpoint_folders_directly_under_the_model_dir_oldest_first(tmp_path):
    models = tmp_path / "models"
    write_version(models, "b")
    write_version(models, "a")
    os.utime(models / "a" / "model.pt", (1, 1))  # written first
    write_version(models / "nested", "deeper")  # not directly under the model dir
    (models / "empty").mkdir()
    store = VersionStore(models)
    store.promote("b")
    assert [v.name for v in store.versions()] == ["a", "b"]
    assert store.versions()[1].metadata()["model_version"] == "tgat-b"
    assert VersionStore(tmp_path / "missing").versions() == []


def test_promote_records_the_current_version_and_rollback_returns_to_the_one_before(tmp_path):
    models = tmp_path / "models"
    for name in ("v1", "v2", "v3"):
        write_version(models, name)
    store = VersionStore(models)
    assert store.current() is None
    for name in ("v1", "v2", "v2", "v3"):  # promoting the current one again records nothing
        store.promote(name)
    record = json.loads((models / CURRENT_FILE).read_text())
    assert record["current"] == "v3" and [entry["version"] for entry in record["history"]] == ["v1", "v2", "v3"]
    assert not list(models.glob("*.tmp")) and not list(models.glob(".*.tmp"))  # no temporary file left
    dropped, now = store.rollback()
    assert (dropped, now.name, store.current()) == ("v3", "v2", "v2")
    assert store.rollback()[1].name == "v1"
    with pytest.raises(VersionError, match="no previous version to roll back to .*: only v1 was ever promoted"):
        store.rollback()
    assert store.current() == "v1"


def test_rollback_refuses_a_version_altered_since_it_was_promoted(tmp_path):
    models = tmp_path / "models"
    store = VersionStore(models)
    for name in ("v1", "v2"):
        write_version(models, name)
        store.promote(name)
    tamper(models / "v1")
    with pytest.raises(VersionError, match="not rolling back to v1: .*its SHA-256"):
        store.rollback()
    assert store.current() == "v2"


def test_rollback_with_nothing_promoted_says_so(tmp_path):
    with pytest.raises(VersionError, match="nothing was ever promoted"):
        VersionStore(tmp_path).rollback()


def test_promote_refuses_a_missing_version_and_an_altered_checkpoint_and_keeps_the_current_one(tmp_path):
    models = tmp_path / "models"
    write_version(models, "good")
    tamper(write_version(models, "altered"))
    store = VersionStore(models)
    store.promote("good")
    with pytest.raises(VersionError, match=r"no version 'nope' under .*; versions: good, altered"):
        store.promote("nope")
    with pytest.raises(
        VersionError, match=r"not promoting altered: .*model.pt: its SHA-256 .* \(altered or incomplete\)"
    ):
        store.promote("altered")
    with pytest.raises(VersionError, match="no version '../good'"):
        store.promote("../good")  # one folder directly under the model dir, nothing else
    assert store.current() == "good"


def test_a_current_record_that_is_not_one_says_how_to_repair_it(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / CURRENT_FILE).write_text("v1\n")
    with pytest.raises(VersionError, match="is not a record of promotions .*: delete it and promote one with"):
        VersionStore(models).current()


def test_the_pin_wins_over_current(tmp_path):
    models = tmp_path / "models"
    write_version(models, "promoted")
    write_version(models, "pinned")
    assert served_version(settings_for(tmp_path)) is None
    VersionStore(models).promote("promoted")
    assert served_version(settings_for(tmp_path)).name == "promoted"
    assert served_version(settings_for(tmp_path, model_version="pinned")).name == "pinned"
    with pytest.raises(VersionError, match="no version 'gone'"):
        served_version(settings_for(tmp_path, model_version="gone"))


def test_a_pin_must_be_a_folder_name(tmp_path):
    assert settings_for(tmp_path, model_version="2026-12-01.a_1").model_version == "2026-12-01.a_1"
    assert settings_for(tmp_path).model_version is None
    with pytest.raises(SettingsError, match=r"STREAMREC_MODEL_VERSION='\.\./x': must be the name of a version folder"):
        settings_for(tmp_path, model_version="../x")


def test_a_wrong_pin_stops_the_worker_at_start_up_with_what_to_set(tmp_path):
    models = tmp_path / "models"
    write_version(models, "v1")
    with pytest.raises(
        StartupError,
        match=r"STREAMREC_MODEL_VERSION=v9: no version 'v9' under .*; versions: v1: "
        "set it to one of them, or unset it",
    ):
        startup_version(settings_for(tmp_path, model_version="v9"))
    tamper(models / "v1")
    with pytest.raises(StartupError, match="STREAMREC_MODEL_VERSION=v1: refused the checkpoint: .*its SHA-256"):
        startup_version(settings_for(tmp_path, model_version="v1"))


def test_start_up_serves_the_current_version_or_the_baseline_with_how_to_promote(tmp_path, caplog):
    models = tmp_path / "models"
    write_version(models, "v1")
    with caplog.at_level(logging.WARNING):
        assert startup_version(settings_for(tmp_path)) == (None, None)
    assert "no model version is promoted under" in caplog.text and "streamrec models promote VERSION" in caplog.text
    VersionStore(models).promote("v1")
    version, checkpoint = startup_version(settings_for(tmp_path))
    assert version.name == "v1" and checkpoint == models / "v1" / "model.pt"
    tamper(models / "v1")  # altered after it was promoted: the baseline serves, the version is not retried
    rejected = metrics.CHECKPOINTS_REJECTED._value.get()
    version, checkpoint = startup_version(settings_for(tmp_path))
    assert (version.name, checkpoint) == ("v1", None)
    assert metrics.CHECKPOINTS_REJECTED._value.get() == rejected + 1


def test_tools_pin_their_own_checkpoint_folder(tmp_path):
    folder = write_version(tmp_path / "demo-models", "ml-100k")
    env = pinned_env(folder)
    assert env == {"STREAMREC_MODEL_DIR": str(folder.parent), "STREAMREC_MODEL_VERSION": "ml-100k"}
    assert served_version(load_settings({"STREAMREC_HOME": str(tmp_path), **env})).checkpoint == folder / "model.pt"
    assert version_name_of(folder / "model.pt") == "ml-100k" and version_name_of(None) is None


def test_checking_a_version_loads_no_torch_into_the_event_loop(tmp_path):
    """The event loop checks digests before its model host loads a version; torch there would cost it ~650 MB."""
    folder = write_version(tmp_path / "models", "v1")
    probe = (
        "import sys; import streamrec.runtime.worker; from streamrec.runtime.model_versions import rejection; "
        f"assert rejection(__import__('pathlib').Path({str(folder)!r})) is None; print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def _promote_each(models: str, names: list[str]) -> None:
    store = VersionStore(models)
    for name in names:
        store.promote(name)


def test_two_promotions_at_the_same_moment_both_land_in_the_history(tmp_path):
    """Two operators (or CI jobs) promoting at once: without the folder's lock each read CURRENT, added its
    version and replaced the file, and the later write dropped the other's promotion."""
    import multiprocessing

    models = tmp_path / "models"
    names = {side: [f"{side}{n}" for n in range(25)] for side in ("a", "b")}
    for name in names["a"] + names["b"]:
        write_version(models, name)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_promote_each, args=(str(models), names[side])) for side in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    history = [entry["version"] for entry in VersionStore(models).history()]
    assert sorted(history) == sorted(names["a"] + names["b"])
    assert [n for n in history if n.startswith("a")] == names["a"]  # each side's promotions in its order
