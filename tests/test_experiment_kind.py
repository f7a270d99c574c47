"""Experiments altlearn logs to say that they hold training runs (MLflow's experiment kind), so that
MLflow's UIs that read the kind show them as machine-learning experiments, not GenAI ones."""

from __future__ import annotations

import mlflow
import pytest

from altlearn.tracking.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, connect


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One store for the module (creating a SQLite store takes seconds); each test its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def test_the_mlflow_ui_knows_the_kind_altlearn_sets():
    """The tag and value are the ones the installed MLflow UI writes when a user picks "Machine
    learning" for an experiment (its bundled JavaScript)."""
    from pathlib import Path

    build = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    bundles = [path.read_text(errors="replace") for path in build.glob("*.js")]
    if not bundles:
        pytest.skip("this MLflow has no bundled UI")
    assert any(f'"{EXPERIMENT_KIND_TAG}"' in text for text in bundles)
    assert any(f'CUSTOM_MODEL_DEVELOPMENT="{EXPERIMENT_KIND}"' in text for text in bundles)


def test_a_created_experiment_has_the_training_kind(uri):
    client, experiment_id = connect(uri, "digits")
    assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_an_existing_experiment_without_a_kind_gets_it(uri):
    made = mlflow.tracking.MlflowClient(tracking_uri=uri).create_experiment("older")
    client, experiment_id = connect(uri, "older")
    assert experiment_id == made
    assert client.get_experiment(made).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_a_kind_already_chosen_is_kept(uri):
    mlflow.tracking.MlflowClient(tracking_uri=uri).create_experiment(
        "mixed", tags={EXPERIMENT_KIND_TAG: "genai_development"}
    )
    client, experiment_id = connect(uri, "mixed")
    assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_a_store_refusing_the_tag_still_gives_the_experiment(uri):
    mlflow.tracking.MlflowClient(tracking_uri=uri).create_experiment("locked")
    client, _ = connect(uri)

    class Refusing:
        def __getattr__(self, name):
            return getattr(client, name)

        def set_experiment_tag(self, *args):
            raise PermissionError("read-only user")

    from altlearn.tracking.store import experiment_id

    assert experiment_id(Refusing(), "locked", None) == client.get_experiment_by_name("locked").experiment_id
