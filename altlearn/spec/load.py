"""A spec read by ``altlearn.spec.files`` -> a validated, defaulted :class:`~altlearn.spec.model.Spec`.

Validation collects every problem before reporting, each with its YAML path, the bad value and what
is allowed. Every ``type:`` block (data, each layer, rule, optimizer, schedule, and blocks nested in
their options) is validated by :class:`altlearn.components.validator.Validator` with the ``Params`` model of
the component the registry returns, so third-party components get the same errors as built-ins.
Shapes are checked by building the network on torch's meta device (:mod:`altlearn.spec.network`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel

from altlearn.components.ref import Block
from altlearn.components.validator import Validator
from altlearn.errors import Problem, SpecError
from altlearn.optim.param_groups import check_groups
from altlearn.registry import registry as plugins
from altlearn.registry.registry import KIND_NOUNS, Registry
from altlearn.spec import feasibility
from altlearn.spec.files import apply_overrides, load_yaml, parse_yaml
from altlearn.spec.model import SECTIONS, DataOptions, Spec, TopLevel, TrackingOptions, TrainOptions
from altlearn.spec.network import check_network, data_info, network_layers
from altlearn.spec.stopping import StopCondition, unlikely_metric
from altlearn.text import closest, did_you_mean

if TYPE_CHECKING:
    from altlearn.components.base import DataInfo

#: the type a section has when the spec leaves it out
_DEFAULT_TYPE = {"optimizer": "adam", "schedule": "constant"}


def validate(raw: dict[str, Any], registry: Registry | None = None, source: str | None = None) -> Spec:
    """Validate a raw spec mapping; raise :class:`SpecError` listing every problem."""
    v = Validator(registry or plugins.get_registry())
    raw = dict(raw)
    if source and "name" not in raw:
        raw["name"] = Path(source).stem  # a spec file's name is a fine default run name
    read_as = _check_sections(v, raw)
    for section, key in read_as.items():
        raw[section] = raw.pop(key)
    top_values = {k: raw.get(k) for k in ("name", "seed", "description") if k in raw}
    top = _typed(TopLevel, v.model(TopLevel, top_values, "", "the spec"))
    train = _typed(TrainOptions, v.model(TrainOptions, raw.get("train"), "train", "train"))
    tracking = _typed(TrackingOptions, v.model(TrackingOptions, raw.get("tracking"), "tracking", "tracking"))
    data, shared = _required_block(v, raw, "data", "dataset", common=DataOptions)
    data_options = _typed(DataOptions, shared)
    info = None if data is None else data_info(v, data)
    layers = network_layers(v, raw.get("network"), info)
    rule, _ = _required_block(v, raw, "rule", "rule")
    optimizer = _optimizer(v, raw.get("optimizer"), rule)
    schedule, _ = v.block(_default_type(raw.get("schedule"), "schedule"), "schedule", "schedule")
    shapes_checked = False  # the network built (on the meta device) and its checks ran
    if data is not None and info is not None and layers is not None and rule is not None:
        network = check_network(v, info, data, layers, rule, data_options)
        shapes_checked = network is not None
        if network is not None and optimizer is not None:
            check_groups(v, network, layers, rule, optimizer)
    if data is not None and data_options is not None:
        _check_data(v, data, data_options, info)
    if train is not None:
        _check_stop(v, train, data_options)
    v.problems = [_at_written_key(problem, read_as) for problem in v.problems]
    _raise_problems(v, source, shapes_unchecked=not shapes_checked and raw.get("network") is not None)
    # Each part is None only with a problem recorded, and raise_problems has raised for those.
    assert top and train and tracking and data and data_options and rule and schedule and layers is not None
    return Spec(
        name=top.name,
        seed=top.seed,
        description=top.description,
        data=data,
        data_options=data_options,
        layers=layers,
        rule=rule,
        optimizer=optimizer,
        schedule=schedule,
        train=train,
        tracking=tracking,
        source=source,
        packages=v.packages,
    )


def _check_sections(v: Validator, raw: dict[str, Any]) -> dict[str, Any]:
    """Report unknown sections; return {section: key} for the misspelt ones read as the section
    they resemble (one the spec does not have), so that their contents are checked in the same
    round instead of after the user fixed the name."""
    read_as: dict[str, Any] = {}  # the key as YAML gave it (1: or on: are not text)
    for key in raw:
        if key in SECTIONS:
            continue
        close = closest(key, list(SECTIONS))
        if close and close not in raw and close not in read_as:
            read_as[close] = key
            guess = f"did you mean {close!r}? (its contents are checked as {close}'s) "
        else:
            guess = did_you_mean(key, list(SECTIONS))
        v.add(str(key), f"unknown section; {guess}sections are: {', '.join(SECTIONS)}")
    return read_as


def _at_written_key(problem: Problem, read_as: dict[str, Any]) -> Problem:
    """``problem`` with its path under the misspelt key the spec wrote, where it was read as a section."""
    for section, key in read_as.items():
        if problem.path == section or problem.path.startswith((f"{section}.", f"{section}[")):
            return Problem(f"{key}{problem.path[len(section) :]}", problem.message)
    return problem


def _raise_problems(v: Validator, source: str | None, shapes_unchecked: bool) -> None:
    try:
        v.raise_problems(source, SECTIONS)
    except SpecError as exc:
        if shapes_unchecked:
            # the shapes need a built network: without this, a fixed spec's next round of errors
            # would break the promise of every mistake at once
            exc.note = "the network's shapes, output and rule limits are checked once these are fixed"
        raise


_Model = TypeVar("_Model", bound=BaseModel)


def _typed(model: type[_Model], parsed: BaseModel | None) -> _Model | None:
    """What the validator parsed with ``model`` (it returns a plain BaseModel), typed as ``model``."""
    return parsed if isinstance(parsed, model) else None


def _check_data(v: Validator, data: Block, data_options: DataOptions, info: DataInfo | None) -> None:
    """The data options against the data set: val_size against its size, augment against its
    examples (images only, shifts up to half their side)."""
    from altlearn.data.augment import augment_problem  # torch: only once a spec is validated

    v.problems += feasibility.data_problems(data, data_options)
    augment = data_options.augment
    if info is not None and (why := augment_problem(augment.translate, augment.hflip, info.input_shape)):
        v.add(f"data.{why[0]}", why[1])


def _check_stop(v: Validator, train: TrainOptions, data_options: DataOptions | None) -> None:
    """train.stop_when against the rest of the spec: its metric must be one the run can log."""
    if train.stop_when is None:
        if train.stop_smoothing:
            v.add("train.stop_smoothing", "smooths train.stop_when's metric, and train.stop_when is not set")
        return
    if data_options is None:
        return  # the data section has its own problem
    condition = StopCondition.parse(train.stop_when)
    validation = data_options.val_size > 0
    if condition.metric.startswith("val_") and not validation:
        v.add("train.stop_when", "a val_ metric needs a validation split: set data.val_size")
    elif condition.metric.startswith("test_") and not train.evaluate_test:
        v.add("train.stop_when", "a test_ metric is logged only with train.evaluate_test: true")
    elif why := unlikely_metric(condition, validation, train.clip_grad_norm is not None):
        v.add("train.stop_when", why)


def _required_block(
    v: Validator, raw: dict[str, Any], section: str, kind: str, common: type[BaseModel] | None = None
) -> tuple[Block | None, BaseModel | None]:
    if section not in raw:
        v.add(section, f"missing; choose a {KIND_NOUNS[kind]}: {', '.join(v.registry.names(kind))}")
        return None, None
    return v.block(raw[section], section, kind, common=common)


def _optimizer(v: Validator, section: Any, rule: Block | None) -> Block | None:
    """The optimizer block; None when the rule brings its own update (then there must be none)."""
    from altlearn.rules.base import brings_own_update  # torch: only once a spec is validated

    if rule is not None and brings_own_update(rule.component):
        if section is not None:
            v.add(
                "optimizer",
                f"rule {rule.type!r} brings its own update (its lr is a rule option); "
                "remove the optimizer section",
            )
        return None
    return v.block(_default_type(section, "optimizer"), "optimizer", "optimizer")[0]


def _default_type(section: Any, kind: str) -> Any:
    """The optimizer and schedule sections have a default type, also when the section exists
    without one: ``-s optimizer.lr=0.01`` on a spec that leaves the optimizer out creates
    ``{lr: 0.01}``, which means "the default optimizer with this lr", not a missing type."""
    default = _DEFAULT_TYPE[kind]
    if section is None or section == {}:
        return {"type": default}
    if isinstance(section, dict) and "type" not in section:
        return {"type": default, **section}
    return section


def load_spec_text(text: str, source: str, registry: Registry | None = None) -> Spec:
    """Validate a spec held as YAML text (e.g. the resolved spec logged in an MLflow run)."""
    try:
        raw = parse_yaml(text)  # bounded: a logged spec is data from a shared store
    except yaml.YAMLError as exc:
        raise SpecError([Problem("", f"not valid YAML: {exc}")], source) from None
    return validate(raw, registry, source=source)


def load_spec(path: str | Path, overrides: list[str] | None = None, registry: Registry | None = None) -> Spec:
    """Read, override and validate a spec file."""
    raw = load_yaml(path)
    try:
        apply_overrides(raw, overrides or [], registry)
        return validate(raw, registry, source=str(path))
    except SpecError as exc:  # the problems' paths are the spec's: say when -s had a hand in them
        exc.source = f"{path} with its -s overrides" if overrides else str(path)
        raise
