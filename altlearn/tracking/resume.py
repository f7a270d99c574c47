"""What `altlearn resume` continues from: a run's logged spec and its newest intact checkpoint.

A run names its last two checkpoints in tags, each with its size and SHA-256 (tracking/checkpoints).
The newest whose file matches its tag is the one resumed from; a damaged newer one (a short or
changed file, or one gone from the store) is skipped with a note saying so.

Every reason a run cannot be resumed is a ResumeError whose message says what to do: no such run,
deleted, finished, still training in a live process, no checkpoint yet, no intact checkpoint, an
empty or damaged spec artifact.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from altlearn.errors import ResumeError
from altlearn.spec.files import MAX_SPEC_BYTES, parse_yaml
from altlearn.text import printable
from altlearn.tracking.checkpoints import LEGACY_STATE_PATH, file_sha256, reference_epoch
from altlearn.tracking.recorder import CHECKPOINT_PREVIOUS_TAG, CHECKPOINT_TAG
from altlearn.tracking.store import connect, quiet_downloads, sqlite_path
from altlearn.tracking.tags import OWNER_HOST, OWNER_PID, owner_alive


def resumable_run(uri: str, run_id: str):
    """A client and the run, if it may be resumed now."""
    from mlflow.exceptions import MlflowException

    db_path = sqlite_path(uri)
    if db_path is not None and not db_path.exists():
        # Do not create an empty store in a folder the user did not train in.
        raise ResumeError(
            f"there is no MLflow database {printable(db_path)}: resume in the folder the run was "
            "started from, or give its --tracking-uri"
        )
    client, _ = connect(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ResumeError(
            f"no run {printable(repr(run_id))} in {printable(uri)} (give the run ID from `mlflow ui` or "
            "from the line `altlearn run` printed, and the same --tracking-uri)"
        ) from None
    if run.info.lifecycle_stage != "active":
        raise ResumeError(f"run {run_id} is deleted; restore it in the MLflow UI first")
    if run.info.status == "FINISHED":
        stopped = run.data.tags.get("altlearn.stopped")
        if stopped:  # to train on, a new run: the stop would only be met again
            raise ResumeError(
                f"run {run_id} finished: {stopped}; there is nothing to resume (to train further, "
                "start a new run with another train.stop_when or none)"
            )
        raise ResumeError(f"run {run_id} finished; there is nothing to resume")
    if run.info.status == "RUNNING":
        _refuse_if_alive(run, uri)
    return client, run


def _refuse_if_alive(run, uri: str) -> None:
    """Two processes training one run would log every step twice."""
    tags, run_id = run.data.tags, run.info.run_id
    alive = owner_alive(tags)
    host, pid = printable(tags.get(OWNER_HOST, "?")), printable(tags.get(OWNER_PID, "?"))
    if alive:
        raise ResumeError(
            f"run {run_id} is still training (process {pid} on this machine); stop it first "
            f"(kill {pid}: it ends KILLED with a checkpoint) or wait for it to end"
        )
    if alive is None:
        raise ResumeError(
            f"run {run_id} is RUNNING, trained by process {pid} on {host}, which this machine cannot "
            f"check; resume it there, or if that process is gone, mark the run KILLED first: python -c "
            f"\"import mlflow; mlflow.MlflowClient('{printable(uri)}').set_terminated('{run_id}', 'KILLED')\""
        )


def logged_spec(uri: str, run_id: str) -> str:
    """The run's resolved spec (YAML text), checked to be a non-empty mapping."""
    from mlflow.exceptions import MlflowException

    resumable_run(uri, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = Path(_download(run_id=run_id, artifact_path="spec.yaml", dst_path=tmp, tracking_uri=uri))
            if path.stat().st_size > MAX_SPEC_BYTES:  # a logged spec is data from a shared store
                raise OSError(f"{path.stat().st_size} bytes, more than any spec ({MAX_SPEC_BYTES})")
            text = path.read_text()
        except (MlflowException, OSError, UnicodeDecodeError) as exc:
            raise ResumeError(f"run {run_id}'s spec artifact spec.yaml cannot be read ({exc})") from None
    try:
        parsed = parse_yaml(text)  # bounded, as spec files are
    except yaml.YAMLError as exc:
        raise ResumeError(
            f"run {run_id}'s spec artifact spec.yaml is not a readable spec ({printable((str(exc).splitlines() or ['?'])[0])})"
        ) from None
    if not isinstance(parsed, dict):
        what = "empty" if not text.strip() else f"not a mapping ({type(parsed).__name__})"
        raise ResumeError(
            f"run {run_id}'s spec artifact spec.yaml is {what}: it was damaged (e.g. the disk filled as it "
            "was written), so the run cannot be rebuilt; its params hold the spec's values: start a new "
            "run with altlearn run"
        )
    return text


def load_checkpoint(uri: str, run_id: str) -> dict:
    """The trainer state of the run's newest intact checkpoint."""
    import torch

    from altlearn.training.trainer import CHECKPOINT_FORMAT

    _, run = resumable_run(uri, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = _intact_checkpoint(run, uri, Path(tmp))
        try:
            # weights_only: tensors and plain containers only, so a checkpoint on a shared server
            # cannot run code on the machine that resumes it.
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
                found = state.get("format") if isinstance(state, dict) else "?"
                raise ValueError(f"format {found}, expected {CHECKPOINT_FORMAT} (another altlearn version?)")
        except Exception as exc:  # noqa: BLE001 - a damaged file can fail in many ways
            raise ResumeError(
                f"the checkpoint of run {run_id} cannot be used ({exc}); start the run again with altlearn run"
            ) from None
    return state


def _intact_checkpoint(run, uri: str, folder: Path) -> Path:
    """The newest tagged checkpoint whose file matches its tag, downloaded into ``folder``. A file
    that matches was written whole and synced before its tag (tracking/durable): one that does not
    was damaged after (a repaired file system, a disk that lost its cache, a hand)."""
    tags = run.data.tags
    references = [tags[t].split() for t in (CHECKPOINT_TAG, CHECKPOINT_PREVIOUS_TAG) if tags.get(t)]
    references = [r for r in references if len(r) == 3]
    if not references:
        return _legacy_checkpoint(run, uri, folder)
    damaged: list[tuple[int | None, str]] = []  # (epoch, what is wrong) of each newer checkpoint skipped
    for artifact, size, sha256 in references:
        epoch = reference_epoch(artifact)
        path, problem = _check(run, uri, folder, artifact, int(size), sha256)
        if problem is None:
            for skipped, why in damaged:
                _note(f"the checkpoint of epoch {skipped} {why}: resuming from epoch {epoch}")
            return path
        damaged.append((epoch, problem))
    listed = "; ".join(f"{artifact} {why}" for (artifact, _, _), (_, why) in zip(references, damaged))
    raise ResumeError(
        f"run {run.info.run_id} has no intact checkpoint to resume from: {listed} (artifact store "
        f"{run.info.artifact_uri}). Was the store copied without its artifacts folder, or its file "
        "system repaired after a crash? Start the run again with altlearn run"
    )


def _check(run, uri: str, folder: Path, artifact: str, size: int, sha256: str) -> tuple[Path, str | None]:
    """The artifact downloaded into ``folder``, and None if it matches its tag, else what is wrong
    with it."""
    from mlflow.exceptions import MlflowException

    path = folder / artifact
    try:
        path = Path(
            _download(run_id=run.info.run_id, artifact_path=artifact, dst_path=str(folder), tracking_uri=uri)
        )
        found = path.stat().st_size
        if found != size:
            return path, f"is damaged ({found} bytes, expected {size})"
        if file_sha256(path) != sha256:
            return path, f"is damaged ({found} bytes as expected, but not those written: another SHA-256)"
    except (MlflowException, OSError):
        return path, "is gone from its artifact store"
    return path, None


def _note(text: str) -> None:
    # as runs.py shows the notes of Trainer.restore, so that all of a resume's notes look alike
    import click

    click.echo(click.style("note: ", fg="yellow", bold=True) + text, err=True)


def _legacy_checkpoint(run, uri: str, folder: Path) -> Path:
    """A run without checkpoint tags: altlearn before tagged checkpoints, or none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return Path(
            _download(
                run_id=run.info.run_id,
                artifact_path=LEGACY_STATE_PATH,
                dst_path=str(folder),
                tracking_uri=uri,
            )
        )
    except (MlflowException, OSError):
        minutes = run.data.params.get("tracking.checkpoint_minutes", "unknown")
        raise ResumeError(
            f"run {run.info.run_id} has no checkpoint to resume from: it stopped before its first one "
            f"(tracking.checkpoint_minutes is {minutes}; an interrupt writes one only after a completed "
            "epoch); start it again with altlearn run"
        ) from None


def _download(**where) -> str:
    import mlflow

    with quiet_downloads():
        return mlflow.artifacts.download_artifacts(**where)
