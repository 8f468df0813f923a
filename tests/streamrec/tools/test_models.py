"""`streamrec models list | promote | rollback`, and what `streamrec train --out` promotes."""

import pytest

from streamrec.runtime.model_versions import VersionStore
from streamrec.runtime.settings import load_settings
from streamrec.tools.cli import main
from streamrec.tools.commands.models import promote_trained
from version_folders import tamper, write_hostile_version, write_version


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    for variable in ("STREAMREC_MODEL_VERSION", "STREAMREC_MODEL_DIR", "STREAMREC_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("STREAMREC_HOME", str(tmp_path))
    monkeypatch.setenv("STREAMREC_MODEL_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def models(capsys, *args) -> tuple[int, str, str]:
    code = main(["models", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_says_how_to_make_a_first_version(model_dir, capsys):
    code, out, _ = models(capsys, "list")
    assert code == 0 and f"no versions under {model_dir}: train one with `streamrec train --out" in out


def test_list_shows_each_version_with_its_metadata_and_marks_the_current_one(model_dir, capsys):
    write_version(model_dir, "v1", dataset="ml-100k", validation={"mrr": 0.0285, "hits@10": 0.05})
    write_version(model_dir, "v2")
    VersionStore(model_dir).promote("v1")
    code, out, _ = models(capsys, "list")
    header, first, second, current = out.splitlines()
    assert code == 0 and header.split()[:3] == ["VERSION", "CREATED", "MODEL"]
    assert first.split()[0:2] == ["*", "v1"] and "tgat-v1" in first and "ml-100k" in first and "0.0285" in first
    assert second.split()[0] == "v2" and "tgat-v2" in second
    assert current == "current: v1"


def test_promote_and_rollback_switch_the_current_version(model_dir, capsys):
    write_version(model_dir, "v1")
    write_version(model_dir, "v2")
    assert models(capsys, "promote", "v1")[:2] == (0, "promoted v1: workers serve it within STREAMREC_MODEL_POLL_S\n")
    models(capsys, "promote", "v2")
    code, out, _ = models(capsys, "rollback")
    assert (code, out) == (0, "rolled back from v2 to v1: workers serve it within STREAMREC_MODEL_POLL_S\n")
    code, _, err = models(capsys, "rollback")
    assert code == 1 and err == (
        f"streamrec models rollback: no previous version to roll back to under {model_dir}: only v1 was ever promoted\n"
    )
    assert VersionStore(model_dir).current() == "v1"


def test_promote_refuses_a_missing_or_altered_version_in_one_line(model_dir, capsys):
    write_version(model_dir, "v1")
    tamper(write_version(model_dir, "bad"))
    code, out, err = models(capsys, "promote", "v3")
    assert (code, out) == (1, "") and err.startswith("streamrec models promote: no version 'v3' under ")
    assert err.endswith("versions: v1, bad\n") and err.count("\n") == 1
    code, _, err = models(capsys, "promote", "bad")
    assert code == 1 and err.startswith("streamrec models promote: not promoting bad: ") and "SHA-256" in err
    assert VersionStore(model_dir).current() is None


def test_promote_refuses_a_version_the_model_host_would_not_load_in_one_line(model_dir, capsys, tmp_path):
    """Its digest matches, so only reading it tells: promote reads it as the model host does (weights only)."""
    write_version(model_dir, "v1")
    models(capsys, "promote", "v1")
    marker = tmp_path / "payload-ran"
    write_hostile_version(model_dir, "evil", marker)
    code, out, err = models(capsys, "promote", "evil")
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert err.startswith("streamrec models promote: not promoting evil: ") and "never loaded" in err
    assert "weights_only" not in err and not marker.exists()
    assert VersionStore(model_dir).current() == "v1"


def test_a_promotion_notes_that_this_environments_pin_wins(model_dir, capsys, monkeypatch):
    write_version(model_dir, "v1")
    monkeypatch.setenv("STREAMREC_MODEL_VERSION", "v1")
    assert (
        "(not a worker with STREAMREC_MODEL_VERSION=v1: that one serves its pin)" in models(capsys, "promote", "v1")[1]
    )
    assert models(capsys, "list")[1].splitlines()[-1] == "current: v1; pinned here: STREAMREC_MODEL_VERSION=v1"


def test_training_promotes_the_first_version_of_the_model_dir_and_says_how_to_promote_later_ones(tmp_path):
    settings = load_settings({"STREAMREC_HOME": str(tmp_path), "STREAMREC_MODEL_DIR": str(tmp_path / "models")})
    store = VersionStore(settings.model_dir)
    first = write_version(settings.model_dir, "first")
    assert promote_trained(first, settings, asked=False).startswith("promoted first in ")
    second = write_version(settings.model_dir, "second")
    assert promote_trained(second, settings, asked=False) == (
        "not promoted (the workers serve first): `streamrec models promote second`"
    )
    assert store.current() == "first"
    assert promote_trained(second, settings, asked=True).startswith("promoted second")
    assert store.current() == "second"


def test_training_elsewhere_is_promoted_only_when_asked(tmp_path):
    settings = load_settings({"STREAMREC_HOME": str(tmp_path), "STREAMREC_MODEL_DIR": str(tmp_path / "models")})
    elsewhere = write_version(tmp_path / "staging", "run-7")
    assert promote_trained(elsewhere, settings, asked=False).startswith("not served: workers serve versions under")
    assert VersionStore(tmp_path / "staging").current() is None
    assert promote_trained(elsewhere, settings, asked=True).startswith(f"promoted run-7 in {tmp_path / 'staging'}")
    tamper(elsewhere)
    assert "not promoted: " in promote_trained(elsewhere, settings, asked=True)
