"""Artifacts that are on the disk, data and name, before a tag vouches for them.

MLflow's local artifact store copies a file into place (a temporary file renamed over the
destination) and never fsyncs it. After a crash, or a file system that went read-only on an error
and was repaired, the name can be on the disk while the data is not: a run was seen with its
spec.yaml and both checkpoint files 0 bytes long while the store's tag named the epoch-8 checkpoint.

So every artifact altlearn logs goes through ``log_artifact_durably``: once it returns, the copy's
data is flushed to the disk (``fsync``) and so is its name in each folder on the way down from the
artifact store (a folder's ``fsync`` makes the entries in it durable, and MLflow creates the
experiment's, the run's and the ``checkpoint/`` folder lazily). A write the disk refuses there (EIO,
EROFS) fails the artifact before any tag names it. Only then do callers set the tag.

Only a store on this machine's file system (``file://`` or a path, as altlearn's default
``./mlartifacts``) is synced here. A store behind a tracking server (``mlflow-artifacts:``) or a
cloud bucket is written by that server or service, whose durability is its own.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path, PurePosixPath

#: Folders above a run's artifact folder that MLflow may have just created for it (the layout is
#: <store>/<experiment>/<run>/artifacts): their entries are synced too, best effort.
_FOLDERS_ABOVE_RUN = 3


def local_artifact_dir(artifact_uri: str | None) -> Path | None:
    """The folder of a run's (or model's) artifacts, when the store is a local file system."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    if not artifact_uri:
        return None
    repository = get_artifact_repository(artifact_uri)
    if isinstance(repository, LocalArtifactRepository):
        return Path(repository.artifact_dir).absolute()
    return None


def log_artifact_durably(
    client, run_id: str, artifact_uri: str | None, local_file: Path, folder: str | None
) -> None:
    """``client.log_artifact``, then the copy in the store and its folders synced to the disk."""
    client.log_artifact(run_id, str(local_file), folder)
    root = local_artifact_dir(artifact_uri)
    if root is None:
        return
    copy = root / folder / local_file.name if folder else root / local_file.name
    _sync_file(copy)
    sync_folders(copy.parent, root)


def log_text_durably(client, run_id: str, artifact_uri: str | None, text: str, artifact_file: str) -> None:
    """``client.log_text`` made durable: the text as the artifact ``artifact_file``."""
    name = PurePosixPath(artifact_file)
    folder = str(name.parent) if str(name.parent) != "." else None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name.name
        path.write_text(text, encoding="utf-8")
        log_artifact_durably(client, run_id, artifact_uri, path, folder)


def sync_tree(folder: Path) -> None:
    """Every file and folder under ``folder`` (a logged MLflow model's artifacts), then the
    folders above it as ``log_artifact_durably`` does above a run's."""
    for here, _, files in os.walk(folder, topdown=False):  # a folder after its contents
        for name in files:
            _sync_file(Path(here) / name)
        _sync_folder(Path(here))
    sync_folders(folder, folder)


def sync_folders(folder: Path, root: Path) -> None:
    """``folder`` and each folder above it up to ``root`` (all required: the artifact's own path),
    then a few more above ``root`` that MLflow may have created for a new run or experiment (best
    effort: those may be older than the run and not ours to open)."""
    folder, root = folder.absolute(), root.absolute()
    if not folder.is_relative_to(root):
        raise ValueError(f"{folder} is not inside the artifact folder {root}")
    while True:
        _sync_folder(folder)
        if folder == root:
            break
        folder = folder.parent
    for above in list(root.parents)[:_FOLDERS_ABOVE_RUN]:
        try:
            _sync_folder(above)
        except OSError:
            break


def _sync_file(path: Path) -> None:
    # fsync through a read-only descriptor flushes the file's data all the same (POSIX and Linux).
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_folder(path: Path) -> None:
    if os.name == "nt":
        return  # Windows cannot open a folder to flush it; NTFS journals names itself
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    except OSError as exc:
        # Some file systems (FUSE, CIFS) cannot sync a folder at all and say so; the data was
        # synced above, and nothing more can be done there. Any other error (EIO) is a failure.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(descriptor)
