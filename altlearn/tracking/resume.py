"""What `altlearn resume` continues from: a run's logged spec and its newest complete checkpoint.

Every reason a run cannot be resumed is a ResumeError whose message says what to do: no such run,
deleted, finished, still training in a live process, no checkpoint yet, an empty or damaged spec
or checkpoint artifact.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from altlearn.printable import printable
from altlearn.spec_files import MAX_SPEC_BYTES, parse_yaml
from altlearn.tracking.checkpoints import LEGACY_STATE_PATH, file_sha256
from altlearn.tracking.run import CHECKPOINT_TAG
from altlearn.tracking.store import connect, sqlite_path
from altlearn.tracking.tags import OWNER_HOST, OWNER_PID, owner_alive


class ResumeError(Exception):
    """The run cannot be resumed; the message says why and what to do."""


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
    import mlflow
    from mlflow.exceptions import MlflowException

    resumable_run(uri, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path="spec.yaml", dst_path=tmp, tracking_uri=uri
                )
            )
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
    """The trainer state of the run's newest complete checkpoint."""
    import torch

    from altlearn.train import CHECKPOINT_FORMAT

    _, run = resumable_run(uri, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = _download_checkpoint(run, uri, Path(tmp))
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


def _download_checkpoint(run, uri: str, folder: Path) -> Path:
    import mlflow
    from mlflow.exceptions import MlflowException

    run_id = run.info.run_id
    reference = run.data.tags.get(CHECKPOINT_TAG, "").split()
    artifact = reference[0] if len(reference) == 3 else LEGACY_STATE_PATH
    try:
        path = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact, dst_path=str(folder), tracking_uri=uri
            )
        )
    except (MlflowException, OSError):
        if len(reference) == 3:
            raise ResumeError(
                f"run {run_id}'s checkpoint {artifact} is gone from its artifact store "
                f"({run.info.artifact_uri}): was the store copied without its artifacts folder, or "
                f"the folder deleted? Start the run again with altlearn run"
            ) from None
        minutes = run.data.params.get("tracking.checkpoint_minutes", "unknown")
        raise ResumeError(
            f"run {run_id} has no checkpoint to resume from: it stopped before its first one "
            f"(tracking.checkpoint_minutes is {minutes}); start it again with altlearn run"
        ) from None
    if len(reference) == 3 and (
        path.stat().st_size != int(reference[1]) or file_sha256(path) != reference[2]
    ):
        raise ResumeError(
            f"the checkpoint {artifact} of run {run_id} is incomplete or changed ({path.stat().st_size} of "
            f"{reference[1]} bytes, or another checksum); start the run again with altlearn run"
        )
    return path
