"""How fast does the command line start? Wall time of `altlearn plugins` and `altlearn --help`.

    python benchmarks/startup.py [--runs 7]

Each command runs as a fresh process (the console script of this environment, with every installed
plugin loading), several times; the median wall time is compared with the acceptance target. One
extra run under ``python -X importtime`` lists which heavy modules got imported: it must be neither
torch nor mlflow (plugins register "module:attr" strings, imported only when a spec uses them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 1.5
HEAVY = ("torch", "mlflow", "numpy", "pandas", "sklearn", "pydantic", "yaml")
FORBIDDEN = ("torch", "mlflow")
COMMANDS = (("plugins",), ("--help",))


def console_script() -> list[str]:
    script = Path(sys.executable).parent / "altlearn"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "altlearn.cli.commands"]


def wall_times(args: tuple[str, ...], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run([*console_script(), *args], capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"altlearn {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return times


def imported_modules(args: tuple[str, ...]) -> tuple[set[str], float]:
    """Top-level packages the command imported, and the seconds its imports took in total."""
    script = console_script()
    target = script[1:] if script[0] == sys.executable else script  # "-m altlearn.cli.commands" or the file
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *target, *args], capture_output=True, text=True
    )
    tops, total_us = set(), 0
    for line in result.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # not an import line, or the header
        name = fields[2].strip()
        tops.add(name.split(".")[0])
        if len(fields[2]) - len(fields[2].lstrip()) == 1:  # imported by the program itself, not nested
            total_us += int(fields[1])
    return tops, total_us / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (median reported)")
    args = parser.parse_args()

    selection = os.environ.get("ALTLEARN_PLUGINS", "all (unset)")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, ALTLEARN_PLUGINS={selection}, "
        f"{args.runs} runs each, target {TARGET_SECONDS:.1f} s"
    )
    failed = False
    for command in COMMANDS:
        wall_times(command, 1)  # warm the file-system cache and .pyc files
        times = wall_times(command, args.runs)
        median = statistics.median(times)
        tops, import_seconds = imported_modules(command)
        heavy = sorted(m for m in tops if m in HEAVY)
        forbidden = sorted(m for m in tops if m in FORBIDDEN)
        verdict = "ok" if median <= TARGET_SECONDS and not forbidden else "FAIL"
        failed |= verdict == "FAIL"
        print(
            f"altlearn {' '.join(command):<8} median {median:.3f} s (min {min(times):.3f}, "
            f"max {max(times):.3f}); imports {import_seconds:.3f} s; heavy modules imported: "
            f"{', '.join(heavy) or 'none'}; torch/mlflow: {', '.join(forbidden) or 'none'} -> {verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
