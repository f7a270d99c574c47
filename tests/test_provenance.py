"""Run tags that say where a run was trained: the CPU model and the altlearn commit."""

import shutil
import subprocess

import pytest

from altlearn.tracking.provenance import COMMIT_TAG, CPU_TAG, cpu_model, provenance_tags, source_commit

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(where, *args):
    return subprocess.run(["git", "-C", str(where), *args], check=True, capture_output=True, text=True).stdout


@needs_git
def test_the_commit_of_a_clean_and_of_a_changed_work_tree(tmp_path):
    (tmp_path / "rule.py").write_text("x = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "rule.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD").strip()
    assert source_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("untracked files do not make it dirty\n")
    assert source_commit(tmp_path) == head
    (tmp_path / "rule.py").write_text("x = 2\n")
    assert source_commit(tmp_path) == head + "-dirty"


def test_no_commit_outside_a_work_tree(tmp_path):
    assert source_commit(tmp_path) is None


def test_the_tags_name_this_machines_cpu():
    tags = provenance_tags()
    assert tags[CPU_TAG] == cpu_model() and tags[CPU_TAG]
    assert tags["host.cpus"].isdigit()
    assert COMMIT_TAG not in tags or len(tags[COMMIT_TAG].removesuffix("-dirty")) == 40
