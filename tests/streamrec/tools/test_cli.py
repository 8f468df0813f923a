import argparse
import tomllib
from pathlib import Path

import pytest

from streamrec.tools.cli import build_parser, command_line, main
from streamrec.tools.commands._options import DEVICES

REPO = Path(__file__).resolve().parents[3]


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"streamrec {version}"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser, _ = build_parser()
    chooser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(chooser.choices)


def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The lines --help prints for one option, unwrapped."""
    formatter = parser._get_formatter()
    formatter.add_argument(action)
    return " ".join(formatter.format_help().split())


def _needs_a_stated_default(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    """Options a user may leave out and that take a value: --help must say what they are then."""
    in_required_group = any(
        action in group._group_actions for group in parser._mutually_exclusive_groups if group.required
    )
    return (
        bool(action.option_strings)
        and action.help != argparse.SUPPRESS
        and action.nargs != 0
        and not action.required
        and not in_required_group
    )


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_of_every_command_shows_its_default_in_help(name):
    parser = _subcommands()[name]
    for action in parser._actions:
        if _needs_a_stated_default(parser, action):
            assert "default" in _help_of(parser, action), f"{name} {action.option_strings[0]} hides its default"


def test_the_default_is_appended_once_where_the_help_does_not_say_it():
    train = " ".join(_subcommands()["train"].format_help().split())
    assert "--seed SEED (default: 0)" in train and "--epochs EPOCHS (default: 5)" in train
    recommend = _subcommands()["recommend"].format_help()
    assert recommend.count("default") == 2  # --top-k and --url state theirs; nothing is added


def test_train_eval_and_bench_refresh_share_one_device_option():
    choices = {
        name: next(a.choices for a in _subcommands()[name]._actions if "--device" in a.option_strings)
        for name in ("train", "eval", "bench-refresh")
    }
    assert all(tuple(c) == DEVICES for c in choices.values())


@pytest.mark.parametrize("name", ["produce", "demo", "train", "eval"])
def test_every_command_with_a_progress_bar_can_hide_it(name):
    args = _subcommands()[name].parse_args(
        ["--no-progress"]
        + (["--dataset", "ml-100k"] if name != "demo" else [])
        + (["--out", "x"] if name in ("train", "eval") else [])
    )
    assert args.no_progress is True


@pytest.mark.parametrize("name", ["produce", "demo", "train", "eval"])
def test_the_first_n_events_are_chosen_with_limit_everywhere(name):
    parser = _subcommands()[name]
    options = {flag for action in parser._actions if action.help != argparse.SUPPRESS for flag in action.option_strings}
    assert "--limit" in options and "--max-events" not in options


def test_an_old_option_name_still_works_with_a_warning_and_is_hidden(capsys):
    train = _subcommands()["train"]
    args = train.parse_args(["--dataset", "ml-100k", "--out", "x", "--max-events", "50"])
    assert args.limit == 50
    assert "--max-events is deprecated, use --limit" in capsys.readouterr().err
    assert "--max-events" not in train.format_help()
    assert _subcommands()["recommend"].parse_args(["u1", "--k", "5"]).top_k == 5
    assert _subcommands()["demo"].parse_args(["--warmup", "10"]).warmup_events == 10


def test_bench_refresh_help_names_the_folder_it_writes_to():
    from streamrec.tools.commands import bench_reads, bench_refresh

    assert f"<STREAMREC_HOME>/{bench_refresh.OUT_FOLDER})" in _subcommands()["bench-refresh"].format_help()
    assert f"<STREAMREC_HOME>/{bench_reads.OUT_FOLDER})" in _subcommands()["bench-reads"].format_help()
    assert (bench_refresh.OUT_FOLDER, bench_reads.OUT_FOLDER) == ("bench", "bench-reads")


def test_the_command_line_is_what_a_user_types_again():
    assert (
        command_line(["eval", "--events-csv", "my events.csv", "--out", "o"])
        == "streamrec eval --events-csv 'my events.csv' --out o"
    )


def test_eval_on_a_csv_too_small_to_split_says_so_and_exits_2(tmp_path, monkeypatch, capsys):
    csv = tmp_path / "tiny.csv"
    csv.write_text("user_id,item_id,type,ts\nu1,i1,click,1000\nu2,i2,click,2000\nu1,i2,click,3000\n")
    monkeypatch.setenv("STREAMREC_HOME", str(tmp_path / "home"))
    code = main(["eval", "--events-csv", str(csv), "--models", "pop", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        f"streamrec eval: {csv} has 3 events, too few to split 70/15/15 into train, validation and "
        "test: at least 6 are needed"
    ]
    assert not (tmp_path / "out").exists()


def test_eval_runs_every_model_by_default_and_its_help_names_each():
    from model_server.evaluation import registry

    models = next(a for a in _subcommands()["eval"]._actions if a.dest == "models")
    assert models.default == "all"
    named = {name.strip(" .") for name in models.help.split(":", 1)[1].split(",")}
    assert named == set(registry.MODELS)  # a model added to the registry is named in --help too


@pytest.mark.parametrize(
    "command, option",
    [
        ("eval", "--batch-size"),
        ("eval", "--train-batch-size"),
        ("train", "--batch-size"),
        ("train", "--eval-batch-size"),
    ],
)
def test_a_batch_of_no_events_is_refused_in_one_line(command, option, capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser()[0].parse_args([command, "--dataset", "wikipedia", "--out", "o", option, "0"])
    assert stopped.value.code == 2
    assert "'0': give a whole number of events, 1 or more" in capsys.readouterr().err
