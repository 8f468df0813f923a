"""Where the time goes, from deploy/profiling/profile_bench.sh's recordings: the busiest frames of each process.

py-spy's raw output (one folded stack and its sample count per line): samples waiting in a poll, select or a pipe
are idle and left out. JFR: the execution samples (`jfr print`), and the threads' CPU load, which shows time
outside Java code too (the JIT compiler, garbage collection).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

IDLE = ("select (", "poll (", "wait (", "_recv (", "recv_bytes", "_wait_for_tstate_lock", "epoll", "acquire (")


def python_profile(path: Path, top: int) -> list[str]:
    inclusive, busy = Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(word in frames[-1] for word in IDLE):
            continue
        busy += int(count)
        for frame in dict.fromkeys(f.split(" (")[0] + " (" + f.rsplit("/", 1)[-1] for f in frames):
            inclusive[frame] += int(count)
    return [f"{count / busy:6.1%}  {frame}" for frame, count in inclusive.most_common(top)]


def java_profile(path: Path, top: int) -> list[str]:
    printed = subprocess.run(
        ["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth", "64", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    inclusive, samples = Counter(), 0
    for sample in printed.split("jdk.ExecutionSample")[1:]:
        frames = re.findall(r"^\s+([\w$.<>]+)\(", sample, re.M)
        if frames:
            samples += 1
            inclusive.update(set(frames))
    threads = subprocess.run(
        ["jfr", "print", "--events", "jdk.ThreadCPULoad", str(path)], capture_output=True, text=True, check=True
    ).stdout
    load: dict[str, list[float]] = {}
    for event in threads.split("jdk.ThreadCPULoad")[1:]:
        user, system = re.search(r"user = ([\d.]+)%", event), re.search(r"system = ([\d.]+)%", event)
        thread = re.search(r'eventThread = "([^"]+)"', event)
        if user and system and thread:
            load.setdefault(thread.group(1), []).append(float(user.group(1)) + float(system.group(1)))
    busiest = sorted(((sum(v) / len(v), name) for name, v in load.items()), reverse=True)[:5]
    lines = [f"{share:6.2f}% of the machine  thread {name}" for share, name in busiest]
    return lines + [f"{count / samples:6.1%}  {frame}" for frame, count in inclusive.most_common(top)]


def main(folder: str, top: int = 25) -> None:
    for path in sorted(Path(folder).iterdir()):
        if path.suffix in (".txt", ".jfr"):
            print(f"== {path.stem}")
            print("\n".join(python_profile(path, top) if path.suffix == ".txt" else java_profile(path, top)))


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
