"""The README's two commands stay what CI and a new user actually run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _command_after(heading: str) -> str:
    readme = (ROOT / "README.md").read_text()
    after = readme[readme.index(heading) :]
    block = re.search(r"```bash\n(.*?)\n```", after, re.S)
    assert block, f"no bash block after {heading!r} in README.md"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"the command after {heading!r} must be one line a user can paste"
    return lines[0]


def test_ci_runs_the_readme_test_command_verbatim():
    command = _command_after("**Set up and run the tests**")
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci_lines, ".ci/run must run the README's test command exactly as written"
    assert "pytest" in command


def test_main_job_installs_the_cpu_torch_before_altlearn_and_runs_a_shipped_spec():
    command = _command_after("**Set up and run the main job**")
    assert command.index("torch==2.13.0") < command.index("pip install -e .")
    spec = re.search(r"altlearn run (\S+\.yaml)", command)
    assert spec and (ROOT / spec.group(1)).is_file()
