"""Artifacts on the disk before a tag vouches for them, and resume past a damaged checkpoint.

The case behind this: a run's file system went read-only on an ext4 error and was repaired; its
spec.yaml and both checkpoint files were then 0 bytes while the store's tag named the epoch-8
checkpoint, and `altlearn resume` could not continue. A lost page cache cannot be caused from a
test, so the tests take the two halves apart: every artifact is fsynced (file and folders) before
its tag is written, seen by watching ``os.fsync`` and the store's writes in order; and a checkpoint
file damaged on the disk after its tag (truncated to 0 bytes as the repaired file system left it,
or changed) is skipped by resume in a real process, which continues from the one before.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import fake_rules
import mlflow
import pytest
from click.testing import CliRunner
from test_faults import (
    EPOCHS,
    assert_resumes_to_the_end,
    fault_spec,
    finish,
    only_run,
    pause_spec,
    read_only,
    resume,
    start_child,
    steps,
    wait_for,
    write_spec,
)

from altlearn.cli.commands import main
from altlearn.registry import registry as plugins

INTERRUPTED_IN_EPOCH_4 = 150  # 45 steps per epoch: checkpoints of epochs 1, 2 and 3 are written


@pytest.fixture
def with_fake_rules(monkeypatch):
    registry = plugins.build_registry(extra_plugins=[(fake_rules, "altlearn-test-fakes", "9.9")])
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)


def checkpoint_file(tmp_path: Path, epoch: int) -> Path:
    (found,) = (tmp_path / "mlartifacts").rglob(f"trainer_state-epoch{epoch:04d}.pt")
    return found


def interrupted_run(tmp_path: Path, in_child: bool) -> tuple[str, str]:
    """A run stopped by Ctrl-C in epoch 4, as a separate process or in this one: (uri, run id)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = write_spec(tmp_path, fault_spec({"type": "interrupt", "at_step": INTERRUPTED_IN_EPOCH_4}))
    if in_child:
        code, output = finish(start_child(["run", str(spec), "--tracking-uri", uri, "-q"]))
    else:
        result = CliRunner().invoke(main, ["run", str(spec), "--tracking-uri", uri, "-q"])
        code, output = result.exit_code, result.output
    assert code == 130 and "continue it after epoch 3" in output, output
    client, run = only_run(uri)
    # the last two checkpoints are kept, each named by a tag
    assert run.data.tags["altlearn.checkpoint"].startswith("checkpoint/trainer_state-epoch0003.pt ")
    assert run.data.tags["altlearn.checkpoint_previous"].startswith("checkpoint/trainer_state-epoch0002.pt ")
    files = sorted(a.path for a in client.list_artifacts(run.info.run_id, "checkpoint"))
    assert files == ["checkpoint/trainer_state-epoch0002.pt", "checkpoint/trainer_state-epoch0003.pt"]
    return uri, run.info.run_id


# ------------------------------------------------------------------ synced before the tag


def test_every_artifact_is_synced_with_its_folders_before_the_write_that_vouches_for_it(
    tmp_path, monkeypatch
):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("names the synced files through /proc/self/fd")
    events: list[tuple[str, object]] = []
    real_fsync = os.fsync

    def fsync(fd):
        real_fsync(fd)
        events.append(("synced", os.readlink(f"/proc/self/fd/{fd}")))

    client_class = mlflow.tracking.MlflowClient
    real_log_batch, real_terminated = client_class.log_batch, client_class.set_terminated

    def log_batch(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        events.extend(("tagged", t.value) for t in tags if t.key == "altlearn.checkpoint")
        return real_log_batch(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    def set_terminated(self, run_id, status=None, end_time=None):
        events.append(("ended", status))
        return real_terminated(self, run_id, status, end_time)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(client_class, "log_batch", log_batch)
    monkeypatch.setattr(client_class, "set_terminated", set_terminated)
    spec = fault_spec({"type": "bp"}, log_model=True)
    spec["train"]["epochs"] = 2
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, ["run", str(write_spec(tmp_path, spec)), "--tracking-uri", uri, "-q"])
    assert result.exit_code == 0, result.output
    _, run = only_run(uri)
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))

    def first(event) -> int:
        assert event in events, (event, events)
        return events.index(event)

    tags = [value for kind, value in events if kind == "tagged"]
    assert [t.split()[0] for t in tags] == [f"checkpoint/trainer_state-epoch000{e}.pt" for e in (1, 2)]
    for tag in tags:
        copy = artifacts / tag.split()[0]
        # the file's data, then its name in each folder down from the store (the run's folders
        # are new with its first artifact), all before the tag that names it
        for synced in (copy, copy.parent, artifacts, artifacts.parent, artifacts.parents[1]):
            assert first(("synced", str(synced))) < first(("tagged", tag)), synced
    # the spec before any checkpoint names the run resumable; the weights and the model before
    # the run is ended FINISHED
    assert first(("synced", str(artifacts / "spec.yaml"))) < first(("tagged", tags[0]))
    ended = first(("ended", "FINISHED"))
    assert first(("synced", str(artifacts / "checkpoint" / "state_dict.pt"))) < ended
    model_files = [p for k, p in events[:ended] if k == "synced" and p.endswith("/artifacts/MLmodel")]
    assert model_files and "/models/" in model_files[0]


def test_a_checkpoint_the_disk_cannot_sync_is_never_tagged(tmp_path, monkeypatch, with_fake_rules):
    """An fsync that fails (EIO: the error an ext4 file system gives before it turns read-only)
    fails the checkpoint: the tag stays on the previous one, and the run resumes from it. The
    error is injected: a disk that fails on cue is not available to a test."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("names the synced files through /proc/self/fd")
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("trainer_state-epoch0002.pt"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(
        main, ["run", str(write_spec(tmp_path, fault_spec({"type": "bp"}))), "--tracking-uri", uri, "-q"]
    )
    assert result.exit_code == 1, result.output
    assert (
        "writing the checkpoint of epoch 2 failed" in result.output and "Input/output error" in result.output
    )
    client, run = only_run(uri)
    assert run.info.status == "FAILED" and "Input/output error" in run.data.tags["altlearn.error"]
    assert run.data.tags["altlearn.checkpoint_epoch"] == "1"
    assert run.data.tags["altlearn.checkpoint"].startswith("checkpoint/trainer_state-epoch0001.pt ")
    files = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")]
    assert files == ["checkpoint/trainer_state-epoch0001.pt"]  # the unsynced copy is deleted
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert_resumes_to_the_end(uri, run.info.run_id)


# ------------------------------------------------------------ resume past a damaged checkpoint


def test_resume_skips_a_newest_checkpoint_left_empty_and_says_so(tmp_path):
    uri, run_id = interrupted_run(tmp_path, in_child=True)
    newest = checkpoint_file(tmp_path, 3)
    size = newest.stat().st_size
    os.truncate(newest, 0)  # what the repaired file system left of a file it never wrote out
    code, output = finish(start_child(["resume", run_id, "--tracking-uri", uri, "-q"]))
    assert code == 0, output
    assert "Downloading artifacts" not in output  # MLflow's progress bars stay out of altlearn's notes
    assert (
        f"note: the checkpoint of epoch 3 is damaged (0 bytes, expected {size}): resuming from epoch 2"
        in output
    )
    client, run = only_run(uri)
    assert run.info.status == "FINISHED" and "altlearn.error" not in run.data.tags
    assert steps(client, run_id) == list(range(1, EPOCHS + 1))  # epoch 3 trained again, logged once
    # epoch 3's file was written again, whole; the tags name the last two good ones
    assert run.data.tags["altlearn.checkpoint"].startswith("checkpoint/trainer_state-epoch0004.pt ")
    assert (
        run.data.tags["altlearn.checkpoint_previous"]
        == f"checkpoint/trainer_state-epoch0003.pt {size} "
        + (run.data.tags["altlearn.checkpoint_previous"].split()[2])
    )
    assert checkpoint_file(tmp_path, 3).stat().st_size == size
    files = sorted(a.path for a in client.list_artifacts(run_id, "checkpoint"))
    assert files == [
        "checkpoint/state_dict.pt",
        "checkpoint/trainer_state-epoch0003.pt",
        "checkpoint/trainer_state-epoch0004.pt",
    ]


def test_resume_skips_a_newest_checkpoint_changed_after_its_tag(tmp_path, with_fake_rules):
    uri, run_id = interrupted_run(tmp_path, in_child=False)
    newest = checkpoint_file(tmp_path, 3)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the size still matches
    newest.write_bytes(bytes(data))
    result = resume(uri, run_id)
    assert result.exit_code == 0, result.output
    assert (
        f"note: the checkpoint of epoch 3 is damaged ({len(data)} bytes as expected, but not those "
        "written: another SHA-256): resuming from epoch 2"
    ) in result.output
    client, run = only_run(uri)
    assert run.info.status == "FINISHED" and steps(client, run_id) == list(range(1, EPOCHS + 1))


def test_resume_without_an_intact_checkpoint_says_what_to_do(tmp_path, with_fake_rules):
    uri, run_id = interrupted_run(tmp_path, in_child=False)
    os.truncate(checkpoint_file(tmp_path, 3), 0)
    checkpoint_file(tmp_path, 2).unlink()
    result = resume(uri, run_id)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"run {run_id} has no intact checkpoint to resume from" in result.output
    assert "checkpoint/trainer_state-epoch0003.pt is damaged (0 bytes, expected" in result.output
    assert "checkpoint/trainer_state-epoch0002.pt is gone from its artifact store" in result.output
    assert "Start the run again with altlearn run" in result.output
    _, run = only_run(uri)
    assert run.info.status == "KILLED"  # untouched


# ----------------------------------------------------------- the artifact store turns read-only


def test_an_artifact_folder_turning_read_only_fails_the_run_and_resume_works_once_writable(
    tmp_path, with_fake_rules
):
    """Only the artifacts lose write access (the store's database beside them keeps it), so the
    failure is recorded: FAILED, with the reason, the checkpoint tag still on the last good one."""
    store, handshake = tmp_path / "store", tmp_path / "handshake"
    store.mkdir()
    handshake.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    child = start_child(
        ["run", str(write_spec(handshake, pause_spec(handshake))), "--tracking-uri", uri, "-q"]
    )
    wait_for(handshake / "ready", child)  # paused in epoch 2, epoch 1's checkpoint written
    with read_only(store / "mlartifacts"):
        (handshake / "go").write_text("")
        code, output = finish(child)
        assert code == 1, output
        assert "Traceback" not in output and "writing the checkpoint of epoch 2 failed" in output, output
        assert "Read-only file system" in output or "Permission denied" in output, output
        client, run = only_run(uri)
        assert run.info.status == "FAILED"
        assert "writing the checkpoint of epoch 2" in run.data.tags["altlearn.error"]
        assert run.data.tags["altlearn.checkpoint_epoch"] == "1"
        assert steps(client, run.info.run_id) == [1, 2]
    # write access back (the mount is gone): the run continues from epoch 1's checkpoint
    assert_resumes_to_the_end(uri, run.info.run_id)
