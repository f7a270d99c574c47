"""A spec read by ``altlearn.spec_files`` -> a validated, defaulted ``Spec``, and its dump.

Validation collects every problem before reporting, each with its YAML path, the bad value and what
is allowed. Every ``type:`` block (data, each layer, rule, optimizer, schedule) is validated by the
``Params`` model of the component the registry returns, so third-party components get the same
errors as built-ins. Shapes are checked by building the network on torch's meta device (free).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
)

from altlearn import plugins
from altlearn.plugins import PluginError, Registry

# Reading files and overrides lives in spec_files; these names stay importable from here.
from altlearn.spec_files import Problem, SpecError, apply_overrides, load_yaml  # noqa: F401

SECTIONS = (
    "name",
    "seed",
    "description",
    "data",
    "network",
    "rule",
    "optimizer",
    "schedule",
    "train",
    "tracking",
)


# ------------------------------------------------------------------------------------ messages


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


# Keys people put in the wrong section (e.g. the rule's lr when the rule uses an optimizer):
# where each one lives instead.
_HOME_OF_KEY = {
    "lr": "optimizer.lr",
    "momentum": "optimizer.momentum",
    "weight_decay": "optimizer.weight_decay",
    "betas": "optimizer.betas",
    "epochs": "train.epochs",
    "device": "train.device",
    "batch_size": "data.batch_size",
}


def _elsewhere_hint(key: Any, path: str) -> str:
    home = _HOME_OF_KEY.get(str(key))
    if home is None or home.split(".")[0] == path.split(".")[0].split("[")[0]:
        return ""
    return f" ({key!r} belongs in {home})"


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------- fixed sections


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataOptions(_Section):
    """Options every data set has; the trainer applies them the same way to each."""

    batch_size: PositiveInt = Field(128, description="training minibatch size")
    eval_batch_size: PositiveInt = Field(1000, description="batch size for evaluation")
    val_size: NonNegativeInt = Field(
        0, description="examples held out of the training set for validation metrics (0: none)"
    )
    train_subset: PositiveInt | None = Field(
        None, description="use only the first N training examples (quick runs)"
    )
    test_subset: PositiveInt | None = Field(None, description="evaluate on the first N test examples")
    normalize: bool = Field(True, description="standardise inputs with the training set's mean/std")


class TrainOptions(_Section):
    epochs: PositiveInt = 10
    device: Literal["auto", "cpu", "cuda"] = "auto"
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    log_every: PositiveInt = Field(
        50, description="steps between progress updates and non-finite-loss checks (host syncs)"
    )
    threads: PositiveInt | None = Field(None, description="CPU threads for torch (default: torch's)")
    precision: Literal["fp32", "tf32", "bf16"] = Field(
        "fp32", description="fp32; tf32 matmuls (CUDA); bf16 autocast for the step and evaluation"
    )
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = Field(
        "off",
        description="torch.compile the rule's step and evaluation with this mode "
        "(reduce-overhead uses CUDA graphs); true means default",
    )

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_flag(cls, value):
        if value is True:
            return "default"
        if value is False or value is None:
            return "off"
        return value


class TrackingOptions(_Section):
    experiment: str = Field("altlearn", min_length=1)
    run_name: str | None = Field(None, description="default: the spec's name")
    log_model: bool = Field(True, description="log the trained model as an MLflow model")
    alignment_every: NonNegativeInt = Field(
        200, description="steps between update-vs-BP alignment measurements (0: off)"
    )
    checkpoint_minutes: NonNegativeFloat = Field(
        10.0,
        description="minutes between checkpoints of the whole training state, logged to the "
        "run so that `altlearn resume` can continue it (0: after every epoch); the end of training "
        "always writes one",
    )
    tags: dict[str, str] = Field(default_factory=dict)


class TopLevel(_Section):
    name: str = Field(min_length=1)
    seed: int = 0
    description: str | None = None


# ---------------------------------------------------------------------------- resolved spec


@dataclass
class Block:
    """A validated ``type:`` block: the component class and its parsed options."""

    type: str
    component: Any
    params: BaseModel
    package: str = "altlearn"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params.model_dump(mode="json")}


@dataclass
class Spec:
    name: str
    seed: int
    description: str | None
    data: Block
    data_options: DataOptions
    layers: list[Block]
    rule: Block
    optimizer: Block | None  # None when the rule brings its own update
    schedule: Block
    train: TrainOptions
    tracking: TrackingOptions
    source: str | None = None
    packages: dict[str, str] = field(default_factory=dict)  # plugin packages this spec uses

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        if self.description:
            out["description"] = self.description
        out["data"] = {**self.data.as_dict(), **self.data_options.model_dump(mode="json")}
        out["network"] = {"layers": [layer.as_dict() for layer in self.layers]}
        out["rule"] = self.rule.as_dict()
        if self.optimizer is not None:
            out["optimizer"] = self.optimizer.as_dict()
        out["schedule"] = self.schedule.as_dict()
        out["train"] = self.train.model_dump(mode="json")
        out["tracking"] = self.tracking.model_dump(mode="json")
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': [1, {'c': 2}]}} -> {'a.b.0': 1, 'a.b.1.c': 2}: MLflow params, one per leaf."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    out: dict[str, Any] = {}
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if (
            isinstance(value, dict)
            and value
            or isinstance(value, list)
            and value
            and any(isinstance(v, (dict, list)) for v in value)
        ):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


# --------------------------------------------------------------------------- validation


class _Validator:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.problems: list[Problem] = []
        self.packages: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- pydantic errors -> problems
    def pydantic_errors(self, exc: ValidationError, path: str, model: type[BaseModel], owner: str):
        for err in exc.errors():
            loc = err["loc"]
            where = path
            for key in loc:
                where = _join(where, key)
            if err["type"] == "extra_forbidden":
                options = sorted(model.model_fields)
                self.add(
                    where,
                    f"{loc[-1]!r} is not an option of {owner}; "
                    f"{did_you_mean(loc[-1], options)}its options are: "
                    f"{', '.join(options) or '(none)'}",
                )
            elif err["type"] == "missing":
                self.add(where, f"required by {owner} but missing")
            else:
                msg = err["msg"]
                if msg.startswith("Value error, "):
                    msg = msg[len("Value error, ") :]
                self.add(where, f"{_short(err.get('input'))} is invalid: {msg}")

    def model(self, model: type[BaseModel], values: Any, path: str, owner: str):
        if values is None:
            values = {}
        if not isinstance(values, dict):
            self.add(path, f"expected a mapping of options, got {_short(values)}")
            return None
        try:
            return model(**values)
        except ValidationError as exc:
            self.pydantic_errors(exc, path, model, owner)
            return None

    # -- a `type:` block
    def block(
        self,
        values: Any,
        path: str,
        what: str,
        lookup: Callable[[str], tuple[Any, str, str]],
        choices: list[str],
        extra_model: type[BaseModel] | None = None,
    ) -> tuple[Block | None, BaseModel | None]:
        """Validate ``{type: name, **options}``; ``extra_model`` holds options common to the kind."""
        if not isinstance(values, dict):
            self.add(path, f"expected a mapping with a 'type' key, got {_short(values)}")
            return None, None
        options = dict(values)
        type_name = options.pop("type", None)
        if type_name is None:
            self.add(_join(path, "type"), f"missing; choose {_article(what)} {what}: {', '.join(choices)}")
            return None, None
        try:
            component, package, version = lookup(str(type_name))
        except KeyError:
            self.add(
                _join(path, "type"),
                f"{_short(type_name)} is not a known {what}; {did_you_mean(type_name, choices)}"
                f"known: {', '.join(choices)}{self.registry.broken_hint()}",
            )
            return None, None
        except PluginError as exc:
            self.add(_join(path, "type"), str(exc))
            return None, None
        if package != "altlearn":
            self.packages[package] = version
        params_model = component.Params
        common_values = {}
        if extra_model is not None:
            common_values = {k: options.pop(k) for k in list(options) if k in extra_model.model_fields}
        # Report unknown keys against the union of both models so did-you-mean sees every option.
        known = sorted(set(params_model.model_fields) | set(extra_model.model_fields if extra_model else ()))
        for key in [k for k in options if k not in params_model.model_fields]:
            self.add(
                _join(path, key),
                f"{key!r} is not an option of {what} {type_name!r}; "
                f"{did_you_mean(key, known)}its options are: {', '.join(known) or '(none)'}"
                f"{_elsewhere_hint(key, path)}",
            )
            options.pop(key)
        params = self.model(params_model, options, path, f"{what} {type_name!r}")
        common = self.model(extra_model, common_values, path, what) if extra_model else None
        if params is None:
            return None, common
        return Block(str(type_name), component, params, package), common

    def registry_lookup(self, kind: str) -> Callable[[str], tuple[Any, str, str]]:
        def lookup(name: str):
            entry = self.registry.get(kind, name)  # KeyError / PluginError
            component = entry.load()
            params = getattr(component, "Params", None)
            if not (isinstance(params, type) and issubclass(params, BaseModel)):
                # A plugin registered something that is not a component class: its bug, reported
                # at the spec path that uses it, not an AttributeError traceback.
                raise PluginError(
                    f"{kind} {name!r} from package {entry.package} {entry.version} "
                    f"is {component!r}, which has no Params model: not a {kind} class"
                )
            return component, entry.package, entry.version

        return lookup

    @staticmethod
    def table_lookup(table: dict[str, Any]) -> Callable[[str], tuple[Any, str, str]]:
        def lookup(name: str):
            return table[name], "altlearn", ""

        return lookup


def validate(raw: dict[str, Any], registry: Registry | None = None, source: str | None = None) -> Spec:
    """Validate a raw spec mapping; raise :class:`SpecError` listing every problem."""
    from altlearn.optim import OPTIMIZERS, SCHEDULES

    registry = registry or plugins.get_registry()
    v = _Validator(registry)
    raw = dict(raw)
    if source and "name" not in raw:
        raw["name"] = Path(source).stem  # a spec file's name is a fine default run name

    for key in raw:
        if key not in SECTIONS:
            v.add(
                str(key),
                f"unknown section; {did_you_mean(key, list(SECTIONS))}sections are: {', '.join(SECTIONS)}",
            )

    top = v.model(
        TopLevel, {k: raw.get(k) for k in ("name", "seed", "description") if k in raw}, "", "the spec"
    )
    train = v.model(TrainOptions, raw.get("train"), "train", "train")
    tracking = v.model(TrackingOptions, raw.get("tracking"), "tracking", "tracking")

    data = data_options = None
    if "data" not in raw:
        v.add("data", f"missing; choose a data set: {', '.join(registry.names('dataset'))}")
    else:
        data, data_options = v.block(
            raw["data"],
            "data",
            "data set",
            v.registry_lookup("dataset"),
            registry.names("dataset"),
            extra_model=DataOptions,
        )

    layers = _layers(v, raw.get("network"), registry)

    rule = None
    if "rule" not in raw:
        v.add("rule", f"missing; choose a rule: {', '.join(registry.names('rule'))}")
    else:
        # A rule's options may name other rules (GO-UP's source): their packages are used too.
        with plugins.record_lookups() as looked_up:
            rule, _ = v.block(raw["rule"], "rule", "rule", v.registry_lookup("rule"), registry.names("rule"))
        v.packages.update({c.package: c.version for c in looked_up if c.package != "altlearn"})

    optimizer = None
    from altlearn.rules.base import brings_own_update  # torch: only once a spec is validated

    if rule is not None and brings_own_update(rule.component):
        if raw.get("optimizer") is not None:
            v.add(
                "optimizer",
                f"rule {rule.type!r} brings its own update (its lr is a rule option); "
                "remove the optimizer section",
            )
    else:
        optimizer, _ = v.block(
            _default_type(raw.get("optimizer"), "adam"),
            "optimizer",
            "optimizer",
            v.table_lookup(OPTIMIZERS),
            sorted(OPTIMIZERS),
        )
    schedule, _ = v.block(
        _default_type(raw.get("schedule"), "constant"),
        "schedule",
        "schedule",
        v.table_lookup(SCHEDULES),
        sorted(SCHEDULES),
    )

    if data is not None and layers is not None and rule is not None:
        _check_network(v, data, layers, rule)

    if v.problems:
        # Report in the order a reader meets the sections in the file.
        order = {name: i for i, name in enumerate(SECTIONS)}
        v.problems.sort(key=lambda p: order.get(p.path.split(".")[0].split("[")[0], -1))
        raise SpecError(v.problems, source)
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


def _default_type(section: Any, default: str) -> Any:
    """The optimizer and schedule sections have a default type, also when the section exists
    without one: ``-s optimizer.lr=0.01`` on a spec that leaves the optimizer out creates
    ``{lr: 0.01}``, which means "the default optimizer with this lr", not a missing type."""
    if section is None or section == {}:
        return {"type": default}
    if isinstance(section, dict) and "type" not in section:
        return {"type": default, **section}
    return section


def _layers(v: _Validator, network: Any, registry: Registry) -> list[Block] | None:
    if network is None:
        v.add("network", "missing; give network.layers, a list of {type: ...} layers")
        return None
    if not isinstance(network, dict):
        v.add("network", f"expected a mapping with 'layers', got {_short(network)}")
        return None
    for key in network:
        if key != "layers":
            v.add(
                _join("network", key),
                f"unknown key; {did_you_mean(key, ['layers'])}the network section has only 'layers'",
            )
    items = network.get("layers")
    if not isinstance(items, list) or not items:
        v.add("network.layers", f"expected a non-empty list of layers, got {_short(items)}")
        return None
    blocks = []
    for index, item in enumerate(items):
        block, _ = v.block(
            item, f"network.layers[{index}]", "layer", v.registry_lookup("layer"), registry.names("layer")
        )
        blocks.append(block)
    return blocks if all(b is not None for b in blocks) else None


def _check_network(v: _Validator, data: Block, layers: list[Block], rule: Block) -> None:
    """Build the network on the meta device: catches shape errors and rule restrictions for free."""
    from altlearn.network import NetworkError, build_network

    try:
        info = data.component.info(data.params)
    except Exception as exc:  # noqa: BLE001 - a plugin's data set; report, do not crash
        v.add("data", f"cannot describe data set {data.type!r}: {exc}")
        return
    try:
        network, out_shape = build_network(layers, info.input_shape, device="meta")
    except NetworkError as exc:
        v.add(f"network.layers[{exc.index}]", str(exc))
        return
    if getattr(rule.component, "network_outputs_scores", True) and out_shape != (info.num_classes,):
        v.add(
            "network.layers",
            f"the last layer must output {info.num_classes} class scores for "
            f"{data.type}, but the network outputs shape {out_shape}",
        )
    try:
        found = [(index, message) for index, message in rule.component.check_network(network, rule.params)]
    except Exception as exc:  # noqa: BLE001 - a plugin's bug: name it, do not crash validation
        v.add(
            "rule.type",
            f"rule {rule.type!r} (package {rule.package}) failed to check the network: "
            f"{type(exc).__name__}: {exc} (check_network must return [(layer index or None, "
            "message), ...] and must not compute on the meta-device network)",
        )
        return
    for index, message in found:
        path = "network" if index is None else f"network.layers[{index}]"
        v.add(path, f"rule {rule.type!r}: {message}")


def load_spec_text(text: str, source: str, registry: Registry | None = None) -> Spec:
    """Validate a spec held as YAML text (e.g. the resolved spec logged in an MLflow run)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError([Problem("", f"not valid YAML: {exc}")], source) from None
    return validate(raw, registry, source=source)


def load_spec(path: str | Path, overrides: list[str] | None = None, registry: Registry | None = None) -> Spec:
    """Read, override and validate a spec file."""
    raw = load_yaml(path)
    try:
        apply_overrides(raw, overrides or [])
    except SpecError as exc:
        exc.source = str(path)
        raise
    return validate(raw, registry, source=str(path))
