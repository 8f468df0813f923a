"""No committed file names a folder of the machine it was written on: a home, a temporary folder or the checkout
itself, as an absolute path. Commands in the docs and in docs/results/*.json are what a user would type (relative
folders); the tools record them so (streamrec/tools/paths.py). Every file git tracks is read, this one included:
the patterns are built from parts, so that they do not match themselves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SLASH = "/"
# the first folders of an absolute path that is one machine's: homes (Linux, macOS, root's), temporary folders
# (Linux; macOS's per-user ones) and the folder the checkouts of this project live in
FOLDERS = ("home", "root", "tmp", "work", "Users", SLASH.join(("private", "var")), SLASH.join(("var", "folders")))
MACHINE_PATH = re.compile(
    # a slash that starts a path: not inside a word, a URL, a relative path (../x) or a variable (${X}/x, $x/y)
    r"(?<![\w.~$}/-])"
    + SLASH
    + "(?:"
    + "|".join(re.escape(folder) for folder in FOLDERS)
    + ")"
    + SLASH
    # a Windows home: a drive, one backslash (text) or two (JSON), Users and a backslash
    + r"|\b[A-Za-z]:\\{1,2}"
    + "Users"
    + r"\\"
)

# (file, the text of the match's line that makes it legitimate): none is needed today. Container paths (/app,
# /var/lib/neo4j, /opt, /run/secrets, /etc/streamrec) are not in FOLDERS, so the deploy files need no entry; an
# entry here must say why the folder is not one machine's.
ALLOWED: set[tuple[str, str]] = set()


def tracked_text_files() -> dict[str, str]:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=False, text=True, timeout=60
    )
    assert listed.returncode == 0, f"this test reads the files git tracks: git ls-files failed: {listed.stderr}"
    texts = {}
    for name in filter(None, listed.stdout.split("\0")):
        path = REPO / name
        if not path.is_file():  # deleted in the working tree, not yet in the index
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        texts[name] = data.decode("utf-8", errors="replace")
    return texts


def machine_paths(text: str) -> list[tuple[int, str]]:
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), 1)
        if MACHINE_PATH.search(line) is not None
    ]


def test_the_pattern_finds_the_machine_paths_and_leaves_the_others():
    home, tmp, work = (SLASH + folder + SLASH for folder in ("home", "tmp", "work"))
    found = [
        f"--out {tmp}ev/wiki",
        f'"model_dir": "{work}main/.streamrec/models"',
        f"cd {home}me/streamrec",
        f"`{SLASH}Users{SLASH}me/x`",
        SLASH.join(("", "private", "var", "folders", "x")),
        "C:" + "\\" + "Users" + "\\" + "me",
        '"C:' + "\\\\" + "Users" + "\\\\" + 'me"',
    ]
    kept = [
        "--out .streamrec/ev/wiki",
        f"../fresh{tmp}x",  # relative
        f'install "$work{SLASH}root{SLASH}usr/bin/promtool"',  # a variable's folder
        f"https://example.org{work}x",  # a URL's path
        f"{SLASH}var{SLASH}lib/neo4j {SLASH}app {SLASH}opt/x {SLASH}run/secrets",  # container paths
        f"~{tmp}x",
    ]
    assert [line for line in found if not MACHINE_PATH.search(line)] == []
    assert [line for line in kept if MACHINE_PATH.search(line)] == []


def test_no_tracked_file_holds_an_absolute_path_of_a_home_a_temporary_folder_or_the_checkout():
    texts = tracked_text_files()
    assert "README.md" in texts and any(name.startswith("docs/results/") for name in texts)
    found = [
        f"{name}:{number}: {line[:160]}"
        for name, text in sorted(texts.items())
        for number, line in machine_paths(text)
        if not any(name == allowed and snippet in line for allowed, snippet in ALLOWED)
    ]
    assert found == [], (
        "absolute folders of a machine in committed files (write what a user would type: a folder relative to "
        "the checkout, ~/..., or a variable):\n" + "\n".join(found)
    )
