"""``--export-study out.db``: a search's trials as an Optuna storage (SQLite), one study per case,
so that ``optuna-dashboard sqlite:///out.db`` shows the search with Optuna's own views.

The store stays the single truth: this is a copy made from it, written afresh each time (a study of
the same name in the file is replaced; the file's other studies are kept). Each trial keeps its
values, distributions (the sweep file's ranges), the objective after each epoch, its state
(complete, pruned, failed, running) and, as user attributes, its MLflow run id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from altlearn.compare.comparison import Report
from altlearn.compare.search import Candidate, CaseChoice
from altlearn.errors import CompareError
from altlearn.spec.axes import AxisRange


def export_study(report: Report, path: Path, sweep_name: str) -> list[str]:
    """Write the report's search into ``path``; the names of the studies written."""
    tuning = report.tuning
    if tuning is None or tuning.mode != "search":
        raise CompareError("--export-study writes a search's trials: give --sweep a sweep with a search")
    try:
        import optuna
    except ImportError:
        raise CompareError("--export-study needs Optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_study_path(path)
    storage = f"sqlite:///{path.resolve()}"
    names = []
    try:
        for case in tuning.cases:
            names.append(_write_case(optuna, storage, case, tuning.direction, sweep_name, tuning.objective))
    except Exception as exc:  # noqa: BLE001 - a file SQLite cannot open, or one of another schema
        raise CompareError(f"--export-study {path}: cannot write an Optuna storage there ({exc})") from None
    report.exported_study = path
    return names


def check_study_path(path: Path) -> None:
    """Refuse at once a path that cannot be a database file (before the store is read)."""
    if path.is_dir() or not path.parent.is_dir():
        raise CompareError(f"--export-study {path}: give a file in an existing folder (e.g. study.db)")


def study_name(sweep_name: str, case: str) -> str:
    return f"{sweep_name}: {case}"


def _write_case(
    optuna, storage: str, case: CaseChoice, direction: str, sweep_name: str, objective: str
) -> str:
    name = study_name(sweep_name, case.case)
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:  # not there yet
        pass
    study = optuna.create_study(study_name=name, storage=storage, direction=direction)
    study.set_user_attr("objective", objective)
    study.set_user_attr("sweep", sweep_name)
    distributions = _distributions(optuna, case)
    for candidate in sorted(case.candidates, key=lambda c: c.number or 0):
        study.add_trial(_trial(optuna, candidate, distributions))
    return name


def _trial(optuna, candidate: Candidate, distributions: dict[str, Any]):
    from optuna.trial import TrialState

    state = {
        "complete": TrialState.COMPLETE,
        "pruned": TrialState.PRUNED,
        "failed": TrialState.FAIL,
    }.get(candidate.state, TrialState.RUNNING if _running(candidate) else TrialState.FAIL)
    params = {k: v for k, v in candidate.values.items() if k in distributions}
    return optuna.trial.create_trial(
        state=state,
        value=candidate.value if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: distributions[k] for k in params},
        intermediate_values={step: value for step, value in candidate.curve if _finite(value)},
        user_attrs={"mlflow_run_id": candidate.runs[0].run_id, "number": candidate.number},
    )


def _running(candidate: Candidate) -> bool:
    return all(run.status == "RUNNING" for run in candidate.runs)


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def _distributions(optuna, case: CaseChoice) -> dict[str, Any]:
    """Each searched path's distribution: the sweep file's range, widened to hold every value a
    trial ran (a space edited between runs of the sweep), or made from the values alone."""
    paths = list(dict.fromkeys(path for c in case.candidates for path in c.values))
    found = {}
    for path in paths:
        values = [c.values[path] for c in case.candidates if path in c.values]
        found[path] = _distribution(optuna, case.axes.get(path), values)
    return found


def _distribution(optuna, axis: AxisRange | None, values: list[Any]):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if axis is not None and axis.kind == "choice" or not numeric:
        choices = list(axis.values) if axis is not None and axis.kind == "choice" else []
        return CategoricalDistribution(choices + [v for v in dict.fromkeys(values) if v not in choices])
    low = min([*values, *(axis.values if axis else ())])
    high = max([*values, *(axis.values if axis else ())])
    if axis is not None and axis.kind == "int_uniform" and all(isinstance(v, int) for v in values):
        return IntDistribution(int(low), int(high))
    log = axis is not None and axis.log and low > 0
    return FloatDistribution(float(low), float(high), log=log)
