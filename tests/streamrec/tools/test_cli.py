import tomllib
from pathlib import Path

import pytest

from streamrec.tools.cli import main

REPO = Path(__file__).resolve().parents[3]


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"streamrec {version}"
