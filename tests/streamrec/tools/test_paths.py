"""What the tools record of a path (a report's command, a model folder): what a user would type, never a folder of
the machine inside the working folder or the home."""

from pathlib import Path

from streamrec.tools.cli import command_line
from streamrec.tools.paths import as_typed, typed_argv


def test_a_path_inside_the_working_folder_is_recorded_relative_to_it(tmp_path):
    work = tmp_path / "clone"
    assert as_typed(work / ".streamrec" / "eval" / "rees46", cwd=work) == ".streamrec/eval/rees46"
    assert as_typed(str(work / "docs" / ".." / "out"), cwd=work) == "out"  # normalised first
    assert as_typed(work, cwd=work) == "."
    assert as_typed("out/rel", cwd=work) == "out/rel"  # typed relative already: unchanged


def test_a_path_inside_the_home_is_recorded_from_the_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert as_typed(tmp_path / "me" / "runs" / "x", cwd=tmp_path / "clone") == "~/runs/x"
    # the working folder first: a clone inside the home records its own folders relative to itself
    assert as_typed(tmp_path / "me" / "clone" / "o", cwd=tmp_path / "me" / "clone") == "o"


def test_a_path_outside_both_is_kept_as_given(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    elsewhere = str(tmp_path / "scratch" / "o")
    assert as_typed(elsewhere, cwd=tmp_path / "clone") == elsewhere


def test_a_working_folder_reached_through_a_link_is_recognised_under_either_name(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert as_typed(tmp_path / "real" / "o", cwd=tmp_path / "link") == "o"


def test_every_absolute_argument_is_typed_and_the_rest_kept(tmp_path):
    argv = ["eval", "--dataset", "rees46", "--out", str(tmp_path / "o"), f"--model-dir={tmp_path / 'm'}", "--x=1"]
    assert typed_argv(argv, cwd=tmp_path) == ["eval", "--dataset", "rees46", "--out", "o", "--model-dir=m", "--x=1"]


def test_the_recorded_command_holds_no_folder_of_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = Path.cwd() / ".streamrec" / "eval seeds" / "rees46"
    assert command_line(["eval", "--dataset", "rees46", "--out", str(out)]) == (
        "streamrec eval --dataset rees46 --out '.streamrec/eval seeds/rees46'"
    )
