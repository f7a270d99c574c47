"""The sweep file's grammar and the trials it makes: every problem at once, each naming the sweep
file, the configuration and the place in the file; nothing runs and no MLflow store is made."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sweep_helpers import DIGITS_BASE, write_sweep

from altlearn.cli.commands import main
from altlearn.errors import SweepError
from altlearn.spec.load import load_spec_text
from altlearn.sweep.trials import load_trials


def test_three_kinds_of_mistakes_are_reported_together_with_exit_2_and_no_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(
        tmp_path,
        {
            "name": "mistakes",
            "set": {"rule.feedback_init": "uniform"},  # an FA/DFA option: meaningless for bp
            "cases": [{"rule.type": "bp"}, {"rule.type": "dfa", "optimzer.lr": 0.1}],
            "grid": {"optimizer.lr": "0.1"},
            "seeds": [0, 1],
            "workers": 2,
        },
    )
    result = CliRunner().invoke(main, ["sweep", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("  - ")]
    assert all(str(path) in line for line in lines)  # each names the sweep file
    text = result.output
    assert "workers: unknown key" in text
    assert "grid.optimizer.lr: expected a non-empty list of values" in text
    # the case, where in the file the value came from, what is wrong, and what is allowed
    assert (
        "cases[0] (rule.type=bp): set.rule.feedback_init: 'feedback_init' is not an option of rule 'bp'"
        in text
    )
    assert (
        "cases[1] (rule.type=dfa, optimzer.lr=0.1): cases[1].optimzer.lr: optimzer: unknown section; " in text
    )
    assert "did you mean 'optimizer'?" in text
    assert text.count("feedback_init' is not an option") == 1  # once, not once per seed
    assert not (tmp_path / "mlflow.db").exists()  # no MLflow run opened, no store made


def test_a_mistake_in_the_base_spec_names_the_base_file(tmp_path):
    base = {**DIGITS_BASE, "train": {"epochs": 0}}
    path = write_sweep(tmp_path, {"name": "bad-base", "cases": [{"rule.type": "bp"}]}, base)
    with pytest.raises(SweepError) as error:
        load_trials(path)
    assert "cases[0] (rule.type=bp): base base.yaml: train.epochs: 0 is invalid" in error.value.report()


def test_a_sweep_file_that_cannot_be_read_is_reported_as_that(tmp_path):
    with pytest.raises(SweepError) as error:
        load_trials(tmp_path / "nope.yaml")
    assert error.value.report() == f"no such file: {tmp_path / 'nope.yaml'}"
    (tmp_path / "bad.yaml").write_text("name: [\n")
    with pytest.raises(SweepError) as error:
        load_trials(tmp_path / "bad.yaml")
    assert error.value.report().startswith(f"{tmp_path / 'bad.yaml'}: line 2, column 1: not valid YAML")


def test_a_base_file_that_is_not_there_is_one_problem_not_also_a_missing_base(tmp_path):
    path = write_sweep(tmp_path, {"name": "no-base", "cases": [{"rule.type": "bp"}]})
    path.write_text(path.read_text().replace("base: base.yaml", "base: nope.yaml"))
    with pytest.raises(SweepError) as error:
        load_trials(path)
    assert [str(p) for p in error.value.problems] == [
        f"base: nope.yaml: no such file: {tmp_path / 'nope.yaml'}"
    ]
    # the same for a case's own base, with no base at the top
    path.write_text("name: no-base\ncases:\n  - {base: nope.yaml, rule.type: bp}\n")
    with pytest.raises(SweepError) as error:
        load_trials(path)
    assert [str(p) for p in error.value.problems] == [
        f"cases[0].base: nope.yaml: no such file: {tmp_path / 'nope.yaml'}"
    ]
    # and a base given nowhere is the one problem
    path.write_text("name: no-base\ncases:\n  - {base: base.yaml, rule.type: bp}\n  - {rule.type: fa}\n")
    with pytest.raises(SweepError) as error:
        load_trials(path)
    assert [p.path for p in error.value.problems] == ["base"]
    assert "unless every case has its own base" in error.value.problems[0].message


def test_a_mistake_made_by_set_on_the_command_line_is_blamed_on_it(tmp_path):
    path = write_sweep(tmp_path, {"name": "cli", "set": {"train.epochs": 2}, "cases": [{"rule.type": "bp"}]})
    with pytest.raises(SweepError) as error:
        load_trials(path, ["train.epochs=0"])
    assert "cases[0] (rule.type=bp): --set train.epochs=0: 0 is invalid" in error.value.report()
    assert "set.train.epochs" not in error.value.report() and "base base.yaml" not in error.value.report()


def test_the_sweep_files_own_problems_spell_values_as_yaml(tmp_path):
    path = write_sweep(
        tmp_path, {"name": "spelling", "grid": {"optimizer.lr": [None, None]}, "seeds": [True]}
    )
    with pytest.raises(SweepError) as error:
        load_trials(path)
    text = error.value.report()
    assert "a value appears twice in [null, null]" in text
    assert "got [true]" in text and "None" not in text and "True" not in text


def _problems(path) -> dict[str, str]:
    with pytest.raises(SweepError) as error:
        load_trials(path)
    return {p.path: p.message for p in error.value.problems}


def test_the_sweep_files_keys_are_checked_like_a_specs_with_did_you_mean_at_every_level(tmp_path):
    space = {"optimizer.lr": {"unifrom": [0.1, 1]}, "data.batch_size": {"int_uniform": [1.5, 64]}}
    sweep = {"name": "typos", "random": {"trials": 2, "sed": 1, "space": space}, "resorces": {"cpus": 1}}
    problems = _problems(write_sweep(tmp_path, sweep))
    assert problems["resorces"].startswith("unknown key; did you mean 'resources'? keys: name, ")
    assert problems["random.sed"] == "unknown key; did you mean 'seed'? keys: trials, seed, space"
    assert problems["random.space.optimizer.lr.unifrom"].startswith("unknown key; did you mean 'uniform'?")
    assert problems["random.space.data.batch_size.int_uniform[0]"].startswith("1.5 is invalid: ")


def test_every_number_of_the_sweep_file_is_finite_and_in_range(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = {
        "name": "numbers",
        "random": {"trials": 2, "seed": 2**64, "space": {"optimizer.lr": {"uniform": [0.1, float("inf")]}}},
        "seeds": [0, 2**70],
        "resources": {"cpus": float("nan"), "gpus": float("inf")},
    }
    path = write_sweep(tmp_path, sweep)
    problems = _problems(path)
    assert problems["resources.cpus"] == ".nan is invalid: Input should be a finite number"
    assert problems["resources.gpus"] == ".inf is invalid: Input should be a finite number"
    assert problems["random.space.optimizer.lr.uniform[1]"].startswith(".inf is invalid: ")
    assert "signed 64 bits" in problems["random.seed"] and "signed 64 bits" in problems["seeds[1]"]
    result = CliRunner().invoke(main, ["sweep", str(path), "--dry-run"])  # refused, not run to a crash
    assert result.exit_code == 2 and "Traceback" not in result.output
    problems = _problems(write_sweep(tmp_path, {"name": "shares", "resources": {"cpus": 0, "gpus": 1e-9}}))
    assert problems["resources.cpus"] == "0 is invalid: Input should be greater than 0"
    assert problems["resources.gpus"].endswith("a trial takes 0 GPUs or at least 0.01 of one")


def test_every_text_of_the_sweep_file_is_bounded_text(tmp_path):
    from altlearn.components.values import MAX_RUN_NAME, MAX_TAG_VALUE

    sweep = {"name": "n" * (MAX_RUN_NAME + 1), "description": {"a": "mapping"}, "experiment": ""}
    problems = _problems(write_sweep(tmp_path, sweep))
    assert problems["name"].endswith(f"is invalid: String should have at most {MAX_RUN_NAME} characters")
    assert problems["description"] == "{'a': 'mapping'} is invalid: Input should be a valid string"
    assert problems["experiment"] == "'' is invalid: String should have at least 1 character"
    problems = _problems(write_sweep(tmp_path, {"name": "long", "description": "d" * (MAX_TAG_VALUE + 1)}))
    assert problems["description"].endswith(f"at most {MAX_TAG_VALUE} characters")


def test_a_label_too_long_is_blamed_on_the_label_and_long_names_still_make_run_names(tmp_path):
    from altlearn.components.values import MAX_RUN_NAME

    cases = [{"label": "x" * (MAX_RUN_NAME + 1), "rule.type": "fa"}, {"rule.type": "bp"}]
    with pytest.raises(SweepError) as error:
        load_trials(write_sweep(tmp_path, {"name": "long-label", "cases": cases}))
    assert [p.path for p in error.value.problems] == ["cases[0].label"]
    assert "tracking.run_name" not in error.value.report()
    # a label at the bound: the trial's run name (its label first, then its seed; the sweep's name
    # is its parent run's) is cut to what MLflow keeps
    cases = [{"label": "x" * MAX_RUN_NAME, "rule.type": "fa"}, {"rule.type": "bp"}]
    _, trials = load_trials(write_sweep(tmp_path, {"name": "n" * MAX_RUN_NAME, "cases": cases, "seeds": 1}))
    assert [t.spec.tracking.run_name for t in trials][1] == "rule.type=bp, seed 0"
    assert len(trials[0].spec.tracking.run_name) == MAX_RUN_NAME
    assert trials[0].label == "x" * MAX_RUN_NAME and trials[0].spec.tracking.run_name.endswith("..., seed 0")


def test_two_cases_with_one_label_are_an_error_naming_the_second_label(tmp_path):
    cases = [{"label": "bp", "rule.type": "bp"}, {"label": "fa", "rule.type": "fa"}, {"label": "bp"}]
    problems = _problems(write_sweep(tmp_path, {"name": "labels", "cases": cases}))
    assert problems["cases[2].label"].startswith("'bp' is the label of cases[0] too;")


def test_a_million_point_grid_is_refused_at_once_without_making_a_configuration(tmp_path, monkeypatch):
    import time

    from altlearn.spec import load
    from altlearn.sweep import trials

    def never(*args, **kwargs):
        raise AssertionError("a configuration was made or validated")

    monkeypatch.setattr(trials, "configurations", never)
    monkeypatch.setattr(load, "validate", never)
    monkeypatch.chdir(tmp_path)
    grid = {f"network.layers[{i}].p": [n / 10 for n in range(10)] for i in range(6)}
    path = write_sweep(tmp_path, {"name": "huge", "grid": grid})
    started = time.monotonic()
    result = CliRunner().invoke(main, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert time.monotonic() - started < 20  # it used to validate a million trials (hours)
    assert "the sweep makes 1,000,000 trials (grid.network.layers[0].p: 10 values x " in result.output
    assert "more than the bound max_trials (100,000)" in result.output


@pytest.mark.parametrize(
    "sweep, factor",
    [
        ({"seeds": 10**9}, "seeds: 1,000,000,000 seeds"),  # it used to end in a MemoryError
        ({"random": {"trials": 10**9, "space": {"optimizer.lr": {"uniform": [0.1, 1]}}}}, "random.trials"),
        (
            {"cases": [{"rule.type": "fa"}, {"rule.type": "bp"}], "seeds": 3, "max_trials": 5},
            "cases: 2 cases",
        ),
    ],
)
def test_the_trial_count_is_bounded_naming_the_bound_and_each_factor(tmp_path, sweep, factor):
    with pytest.raises(SweepError) as error:
        load_trials(write_sweep(tmp_path, {"name": "many", **sweep}))
    [problem] = error.value.problems
    assert factor in problem.message and "max_trials" in problem.message


def test_max_trials_lowers_or_raises_the_bound_up_to_its_ceiling(tmp_path):
    from altlearn.sweep.grammar import MAX_TRIALS_CEILING

    assert len(load_trials(write_sweep(tmp_path, {"name": "m", "seeds": 2, "max_trials": 2}))[1]) == 2
    problems = _problems(write_sweep(tmp_path, {"name": "m", "max_trials": MAX_TRIALS_CEILING + 1}))
    assert problems["max_trials"].endswith(f"less than or equal to {MAX_TRIALS_CEILING}")


def test_cases_grid_and_seeds_multiply_and_keys_are_stable(tmp_path):
    path = write_sweep(
        tmp_path,
        {
            "name": "product",
            "set": {"train.epochs": 1},
            "cases": [
                {"label": "bp", "rule": {"type": "bp"}},
                {"rule": {"type": "dfa", "feedback_init": "uniform"}},
            ],
            "grid": {"optimizer.lr": [0.001, 0.003]},
            "seeds": 3,
        },
    )
    _, trials = load_trials(path)
    assert len(trials) == 2 * 2 * 3
    assert [t.seed for t in trials[:4]] == [0, 0, 0, 0]  # seed-major: every configuration early
    assert trials[0].label == "bp, optimizer.lr=0.001"
    assert trials[2].spec.rule.params.feedback_init == "uniform"
    assert trials[0].spec.train.epochs == 1 and trials[0].spec.optimizer.params.lr == 0.001
    assert len({t.key for t in trials}) == 12 and len({t.group_key for t in trials}) == 4
    assert {t.group_key for t in trials if t.label == "bp, optimizer.lr=0.001"} == {trials[0].group_key}
    again = load_trials(path)[1]
    assert [t.key for t in again] == [t.key for t in trials]  # the same file, the same keys
    changed = load_trials(path, ["train.epochs=2"])[1]  # -s changes what trials compute
    assert not {t.key for t in changed} & {t.key for t in trials}


def test_random_draws_are_seeded_within_their_ranges_and_shared_by_cases(tmp_path):
    space = {"optimizer.lr": {"log_uniform": [1.0e-4, 1.0e-2]}, "data.batch_size": {"choice": [32, 64]}}
    sweep = {
        "name": "random",
        "cases": [{"rule.type": "bp"}, {"rule.type": "fa"}],
        "random": {"trials": 5, "seed": 7, "space": space},
    }
    path = write_sweep(tmp_path, sweep)
    _, trials = load_trials(path)
    assert len(trials) == 10
    rates = [t.spec.optimizer.params.lr for t in trials]
    assert all(1.0e-4 <= lr <= 1.0e-2 for lr in rates)
    assert len(set(rates)) == 5  # five draws, the same five for both cases
    assert {t.spec.data_options.batch_size for t in trials} <= {32, 64}
    assert [t.key for t in load_trials(path)[1]] == [t.key for t in trials]
    path.write_text(path.read_text().replace("seed: 7", "seed: 8"))
    assert [t.spec.optimizer.params.lr for t in load_trials(path)[1]] != rates


def test_a_case_may_bring_its_own_base_and_an_inline_base_works(tmp_path):
    path = write_sweep(
        tmp_path, {"name": "bases", "cases": [{"base": DIGITS_BASE | {"seed": 3}}, {"rule.type": "fa"}]}
    )
    _, trials = load_trials(path)
    assert trials[0].spec.seed == 3 and trials[1].spec.rule.type == "fa"


def test_two_configurations_that_resolve_to_one_spec_are_an_error(tmp_path):
    path = write_sweep(tmp_path, {"name": "twice", "cases": [{"rule.type": "bp"}, {"optimizer.lr": 0.003}]})
    with pytest.raises(SweepError, match=r"cases\[1\] .*resolves to the same spec as cases\[0\]"):
        load_trials(path)


def test_dry_run_lists_trials_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, {"name": "dry", "grid": {"optimizer.lr": [0.001, 0.003]}, "seeds": [0, 1]})
    result = CliRunner().invoke(main, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "4 trials: 2 configurations x 2 seeds" in result.output
    keys = [t.key for t in load_trials(path)[1]]
    assert all(key in result.output for key in keys)
    assert "optimizer.lr=0.003" in result.output
    assert not (tmp_path / "mlflow.db").exists()
    single = write_sweep(tmp_path, {"name": "one", "grid": {"optimizer.lr": [0.001, 0.003]}})
    result = CliRunner().invoke(main, ["sweep", str(single), "--dry-run"])
    assert "2 trials: 2 configurations x 1 seed\n" in result.output


def test_default_workers_share_the_cores_and_gpu_trials_need_a_gpu(tmp_path, monkeypatch):
    from altlearn.errors import SweepUsageError
    from altlearn.sweep import engines
    from altlearn.sweep.sweep_file import Resources

    monkeypatch.setattr(engines, "cpu_cores", lambda: 8)
    path = write_sweep(tmp_path, {"name": "cores", "set": {"train.threads": 2}, "seeds": 2})
    specs = [t.spec for t in load_trials(path)[1]]
    resources = engines.trial_resources(specs, Resources(), workers=None)
    assert (resources.cpus, resources.gpus) == (2, 0)
    assert len(engines.local_slots(resources, None)) == 4  # 8 cores // 2 threads
    unthreaded = [t.spec for t in load_trials(path, ["train.threads=null"])[1]]
    assert engines.trial_resources(unthreaded, Resources(), workers=2).threads == 4  # an equal share
    gpu = engines.trial_resources(specs, Resources(gpus=0.5), workers=None)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    slots = engines.local_slots(gpu, None)
    assert [s["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "0", "1", "1"]  # two trials per GPU
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    with pytest.raises(SweepUsageError, match="torch sees none"):
        engines.local_slots(gpu, None)


def test_engine_options_that_do_not_fit_the_engine_are_user_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, {"name": "options"})
    result = CliRunner().invoke(main, ["sweep", str(path), "--address", "auto"])
    assert result.exit_code == 2 and "--address is for --engine ray" in result.output
    result = CliRunner().invoke(main, ["sweep", str(path), "--engine", "ray", "--workers", "2"])
    assert result.exit_code == 2 and "--workers is for --engine local" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_a_sweep_is_continued_by_name_may_grow_but_not_change_its_finished_trials_unless_fresh(tmp_path):
    from altlearn.errors import SweepUsageError
    from altlearn.sweep.record import open_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = write_sweep(tmp_path, {"name": "again", "seeds": [0, 1]})
    sweep, trials = load_trials(path)
    first = open_sweep(uri, sweep, trials, fresh=False)
    started = []
    for trial in trials:  # both trials have started: each has its child run
        tags = {
            "altlearn.sweep": first.run_id,
            "altlearn.trial_key": trial.key,
            "altlearn.group": trial.label,
        }
        started.append(first.client.create_run(first.experiment_id, tags=tags).info.run_id)
        first.client.log_param(started[-1], "seed", trial.seed)
    first.client.set_terminated(first.run_id, "KILLED")
    again = open_sweep(uri, sweep, trials, fresh=False)
    assert again.continued and again.run_id == first.run_id
    assert again.client.get_run(first.run_id).info.status == "RUNNING"
    again.client.set_terminated(first.run_id, "KILLED")

    grown_path = write_sweep(tmp_path, {"name": "again", "seeds": [0, 1, 2]})  # one more seed
    grown_sweep, grown = load_trials(grown_path)
    assert {t.key for t in trials} < {t.key for t in grown}
    record = open_sweep(uri, grown_sweep, grown, fresh=False)
    assert record.continued and record.run_id == first.run_id
    assert record.client.get_run(first.run_id).data.tags["altlearn.n_trials"] == "3"
    record.client.set_terminated(first.run_id, "KILLED")

    changed = load_trials(path, ["train.epochs=3"])[1]  # the trials it ran are not in this file
    record.client.set_terminated(started[1], "FINISHED")
    with pytest.raises(SweepUsageError, match="1 finished trial.*no longer makes.*another name.*--fresh"):
        open_sweep(uri, sweep, changed, fresh=False)
    # trials that never finished (a configuration fixed after it failed) leave the sweep instead
    record.client.set_terminated(started[1], "FAILED")
    fixed = open_sweep(uri, sweep, changed, fresh=False)
    assert fixed.continued and fixed.run_id == first.run_id
    assert fixed.dropped == (f"{trials[0].label} seed 0", f"{trials[0].label} seed 1")
    assert all("altlearn.superseded" in fixed.client.get_run(r).data.tags for r in started)
    fixed.client.set_terminated(first.run_id, "KILLED")
    again = open_sweep(uri, sweep, changed, fresh=False)
    assert again.dropped == ()  # left once, not again
    again.client.set_terminated(first.run_id, "KILLED")
    again.client.set_terminated(started[1], "FINISHED")  # superseded, yet finished: it still counts
    with pytest.raises(SweepUsageError, match="1 finished trial.*no longer makes"):
        open_sweep(uri, sweep, changed, fresh=False)
    fresh = open_sweep(uri, sweep, changed, fresh=True)
    assert not fresh.continued and fresh.run_id != first.run_id


def test_trial_keys_count_only_values_that_differ_from_their_defaults(tmp_path):
    """A default written out or left out is the same trial, so an option that a later version adds
    with a default leaves every key, and a sweep can be continued across the upgrade."""
    plain = load_trials(write_sweep(tmp_path, {"name": "k"}))[1][0]
    explicit = {"rule.type": "bp", "network.layers[1].init": "default", "tracking.checkpoint_minutes": 10.0}
    written = load_trials(write_sweep(tmp_path, {"name": "k", "set": explicit}))[1][0]
    other = load_trials(write_sweep(tmp_path, {"name": "k", "set": {"network.layers[1].init": "zeros"}}))[1][
        0
    ]
    assert written.key == plain.key and written.group_key == plain.group_key
    assert other.key != plain.key
    checkpointing = load_trials(
        write_sweep(tmp_path, {"name": "k", "set": {"tracking.checkpoint_minutes": 1}})
    )
    assert checkpointing[1][0].key == plain.key  # how often it checkpoints is not what it computes


def test_the_shipped_sweep_is_valid_every_rule_times_three_seeds():
    shipped = Path(__file__).resolve().parents[1] / "specs" / "sweeps" / "mnist_rules.yaml"
    _, trials = load_trials(shipped)
    assert len(trials) == 18
    assert sorted({t.spec.rule.type for t in trials}) == ["bp", "dfa", "fa", "ff", "goup", "ifa"]
    assert {t.seed for t in trials} == {0, 1, 2}
    assert all(t.spec.train.threads == 1 and t.spec.data_options.train_subset == 20000 for t in trials)


SHIPPED_SWEEPS = sorted((Path(__file__).resolve().parents[1] / "specs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_SWEEPS, ids=lambda p: p.name)
def test_every_shipped_sweep_validates_and_runs_its_trials_one_thread_each(path):
    _, trials = load_trials(path)
    assert trials and len({t.key for t in trials}) == len(trials)
    assert all(t.spec.train.threads == 1 for t in trials)  # two trials side by side on 2 cores
    for trial in trials:  # a worker rebuilds its trial from the rendered YAML: it must read back
        again = load_spec_text(trial.spec.to_yaml(), source=f"trial {trial.key}")
        assert again.to_dict() == trial.spec.to_dict()
    assert path.read_text().startswith(f"# altlearn sweep specs/sweeps/{path.name}\n")


def test_the_nokland_sweep_starts_fa_and_dfa_from_zero_weights_as_the_author_did():
    path = next(p for p in SHIPPED_SWEEPS if p.name == "nokland2016.yaml")
    _, trials = load_trials(path)
    assert len(trials) == 36  # 3 depths x bp / fa / dfa, 3x800 dfa to the code's stop, 2 dropout dfa, 3 seeds
    dropout = {t.label: (t.spec.schedule.type, t.spec.train.epochs) for t in trials if "dropout" in t.label}
    assert dropout == {"2x800 dropout dfa": ("constant", 300), "2x800 dropout dfa halving": ("step", 200)}
    stop = {
        (t.spec.train.epochs, t.spec.train.stop_when, t.spec.train.stop_smoothing)
        for t in trials
        if "stop" in t.label
    }
    assert stop == {(299, "train_accuracy >= 0.9999", 0.75)}
    assert {t.spec.train.stop_when for t in trials if "stop" not in t.label} == {None}
    for trial in trials:
        linear = [b.params for b in trial.spec.layers if b.type == "linear"]
        zeros = {p.init == "zeros" for p in linear}
        assert zeros == ({False} if trial.spec.rule.type == "bp" else {True}), trial.label


def test_progress_is_a_live_table_on_a_terminal_and_plain_lines_otherwise(tmp_path):
    import io

    from rich.console import Console

    from altlearn.sweep.adapter import RunOutcome
    from altlearn.sweep.display import SweepDisplay
    from altlearn.sweep.jobs import Event
    from altlearn.sweep.record import Plan

    path = write_sweep(
        tmp_path, {"name": "shown", "cases": [{"label": "bp", "rule.type": "bp"}, {"rule.type": "fa"}]}
    )
    plans = [Plan(t, "start") for t in load_trials(path)[1]]
    events = [
        Event(0, "started", epoch=0, epochs=2),
        Event(0, "epoch", epoch=1, epochs=2, test_accuracy=0.875),
        Event(1, "done", outcome=RunOutcome(None, "FAILED", "the training loss became nan\nmore", 1)),
    ]
    plain = io.StringIO()
    display = SweepDisplay(plans, stream=plain)
    for event in events:
        display.update(event)
    assert plain.getvalue().splitlines() == [
        "[1/2] bp, seed 0: started",
        "[1/2] bp, seed 0: epoch 1/2: test acc 87.50%",
        "[2/2] rule.type=fa, seed 0: FAILED: the training loss became nan",
    ]
    live = SweepDisplay(plans, stream=io.StringIO())
    for event in events:
        live.update(event)
    screen = io.StringIO()
    Console(file=screen, width=120).print(live._table())
    text = screen.getvalue()
    assert "1 running, 1 failed" in text
    row = next(line for line in text.splitlines() if " bp " in line)
    assert "running" in row and "1/2" in row and "87.50%" in row
    # a finished trial's note is how train.stop_when ended it, and nothing else
    stopped = RunOutcome(
        "r1", "FINISHED", "test accuracy 90.00%; MLflow run r1", 0, stop_note="stopped after epoch 1 of 2: x"
    )
    shown = io.StringIO()
    finished = SweepDisplay(plans, stream=shown)
    finished.update(Event(0, "epoch", epoch=1, epochs=2, test_accuracy=0.9))
    finished.update(Event(0, "done", outcome=stopped))
    assert (
        shown.getvalue().splitlines()[-1]
        == "[1/2] bp, seed 0: FINISHED: test acc 90.00%: stopped after epoch 1 of 2: x"
    )


def test_the_sweeps_own_writes_wait_out_a_momentary_sqlite_refusal():
    from altlearn.sweep.locks import retry_while_locked

    calls = []

    def write():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "written"

    assert retry_while_locked(write) == "written" and len(calls) == 3
    with pytest.raises(ValueError, match="other"):  # any other error is not waited for
        retry_while_locked(lambda: (_ for _ in ()).throw(ValueError("other")))
    with pytest.raises(RuntimeError, match="locked"):  # and a lock that never goes gives up
        retry_while_locked(lambda: (_ for _ in ()).throw(RuntimeError("database is locked")), seconds=1)


def test_a_case_pattern_matches_a_label_exactly_a_case_of_a_grid_or_as_a_shell_pattern():
    from altlearn.sweep.trial_filter import matches

    assert matches("network.layers[1].out_features=16", "network.layers[1].out_features=16")
    assert matches("bp, optimizer.lr=0.001", "bp") and not matches("bpx, optimizer.lr=0.001", "bp")
    assert matches("3x800 dfa", "3x800 *") and matches("2x800 dropout dfa", "*dfa")
    assert not matches("3x800 dfa", "3X800 *")  # case-sensitive, as the labels are


def test_the_sweeps_run_reads_finished_only_when_every_trial_is():
    from altlearn.sweep.summary import LATER, NOT_STARTED, TrialResult, parent_status

    def results(*statuses):
        return [TrialResult(None, s, None, None, None, False) for s in statuses]

    assert parent_status(results("FINISHED", "FINISHED"), interrupted=False) == "FINISHED"
    assert parent_status(results("FINISHED", LATER), interrupted=False) == "KILLED"
    assert parent_status(results("FINISHED", "KILLED"), interrupted=False) == "KILLED"  # to resume
    assert parent_status(results("FINISHED", "FAILED", LATER), interrupted=False) == "FAILED"
    assert parent_status(results("FINISHED", NOT_STARTED), interrupted=True) == "KILLED"


def test_a_trial_left_for_later_waits_whatever_its_old_run_says():
    """A store kept mid-training holds RUNNING runs; a selection that leaves such a trial for later
    must not read it as a vanished process (FAILED): it waits."""
    from types import SimpleNamespace

    from altlearn.sweep.record import Plan
    from altlearn.sweep.summary import LATER, _result, parent_status

    def run(status):
        return SimpleNamespace(
            info=SimpleNamespace(status=status, run_id=status.lower()),
            data=SimpleNamespace(tags={}, metrics={}),
        )

    for old in ("RUNNING", "KILLED", "FAILED"):
        waiting = _result(Plan(None, "later"), None, [run(old)])
        assert waiting.status == LATER and waiting.run_id == old.lower()
        done = _result(Plan(None, "skip"), None, [run("FINISHED")])
        assert parent_status([done, waiting], interrupted=False) == "KILLED"


def test_a_failed_trials_one_line_note_names_its_first_spec_problem():
    from altlearn.sweep.display import brief

    spec_error = (
        "x.yaml: 2 problems in the spec\n  - data.val_size: 100000 leaves no training examples\n"
        "  - optimizer.lr: 0 is invalid"
    )
    assert brief(spec_error) == (
        "x.yaml: 2 problems in the spec: data.val_size: 100000 leaves no training examples (+1 more)"
    )
    assert (
        brief("the training loss became nan at epoch 3\nTraceback: ...")
        == "the training loss became nan at epoch 3"
    )
    assert brief(None) == brief("") == ""


def test_every_run_records_the_configuration_key_its_sweep_trial_would_have():
    """`altlearn run` of a trial's spec tags the run with the trial's group key, so compare can keep
    a plain run and a sweep's seeds of the same configuration together (altlearn.spec.keys)."""
    from altlearn.spec.keys import spec_keys
    from altlearn.tracking.tags import _tags

    path = next(p for p in SHIPPED_SWEEPS if p.name == "nokland2016.yaml")
    _, trials = load_trials(path)
    for trial in trials[:3]:
        assert spec_keys(trial.spec) == (trial.key, trial.group_key)
        assert _tags(trial.spec)["altlearn.group_key"] == trial.group_key
    assert len({t.group_key for t in trials}) == 12 and len({t.key for t in trials}) == 36


def test_workers_beyond_what_the_machine_runs_are_cut_to_a_bound():
    from altlearn.sweep.engines import MAX_WORKERS_PER_FIT, TrialResources, cpu_cores, local_slots

    slots = local_slots(TrialResources(cpus=1, gpus=0), 10**12)  # no MemoryError: a bounded list
    assert len(slots) == cpu_cores() * MAX_WORKERS_PER_FIT
    assert len(local_slots(TrialResources(cpus=1, gpus=0), 2)) == 2
