"""What a validated spec is: its fixed sections' options, :class:`Spec`, and its dump.

``altlearn.spec.load`` builds a ``Spec`` from YAML; everything else (trainer, tracking) reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from altlearn.components.ref import Block, ComponentRef
from altlearn.components.validated import VALIDATOR_CONTEXT
from altlearn.components.values import (
    MAX_EXPERIMENT_NAME,
    MAX_RUN_NAME,
    Count,
    Fraction,
    NonNegativeCount,
    NonNegativeReal,
    PositiveReal,
    Seed,
    Tags,
    ThreadCount,
)
from altlearn.spec.stopping import FORM, StopCondition

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


# ------------------------------------------------------------------------- fixed sections


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AugmentOptions(_Section):
    """``data.augment``: random changes to each training image, drawn anew every epoch."""

    translate: NonNegativeCount = Field(
        0,
        description="shift each training image by a random whole number of pixels in "
        "[-translate, translate], drawn per image and axis; the uncovered border is black "
        "(0: no shift; at most half the image's smaller side)",
    )
    hflip: bool = Field(False, description="mirror each training image left-right with probability 0.5")


class DataOptions(_Section):
    """Options every data set has; the trainer applies them the same way to each."""

    batch_size: Count = Field(128, description="training minibatch size")
    eval_batch_size: Count = Field(
        1000, description="evaluation batch size (memory only; results do not depend on it)"
    )
    val_size: NonNegativeCount = Field(
        0,
        description="examples held out of the training split (seeded) for val_* metrics (0: none); "
        "taken out of train_subset when that is set: train_subset 50000 and val_size 10000 train on "
        "40000",
    )
    train_subset: Count | None = Field(
        None,
        description="use only the first N training examples (quick runs); val_size is held out of these N",
    )
    test_subset: Count | None = Field(None, description="evaluate on the first N test examples")
    normalize: bool = Field(
        True, description="standardise each channel with the training split's mean and std"
    )
    augment: AugmentOptions = Field(
        AugmentOptions.model_validate({}),  # frozen: one shared default is safe
        description="augmentation of the training batches (images only; never validation or test)",
    )

    @field_validator("augment", mode="before")
    @classmethod
    def _augment(cls, value: Any, info: ValidationInfo) -> Any:
        # Parsed by the spec's validator when there is one, so that a mistake is reported at
        # data.augment.<option> against augment's own options (not against the data options).
        scope = (info.context or {}).get(VALIDATOR_CONTEXT)
        if scope is None or isinstance(value, AugmentOptions):
            return value
        parsed = scope.model(AugmentOptions, value, "augment", "data.augment")
        if parsed is None:
            scope.reported()
        return parsed


class TrainOptions(_Section):
    epochs: Count = Field(10, description="passes over the training split")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA if present, else the CPU")
    loss: Block = ComponentRef(
        "loss",
        default="cross_entropy",
        description="the training loss, e.g. mse or {type: cross_entropy, label_smoothing: 0.1}",
    )
    evaluate_test: bool = Field(
        True,
        description="evaluate the test split after each epoch (test_* metrics); a sweep's search "
        "trials set it false, so that no choice of configuration ever looks at the test set",
    )
    log_every: Count = Field(
        50, description="steps between progress updates and divergence checks (the only host syncs)"
    )
    threads: ThreadCount | None = Field(None, description="CPU threads for torch (default: torch's)")
    clip_grad_norm: PositiveReal | None = Field(
        None,
        description="before each optimizer step, scale the update signal (.grad) of every parameter "
        "it steps down to this total L2 norm when above it: one norm over all layers, for ff's "
        "layer-local objectives too; logs the epoch's mean norm before clipping (grad_norm) and "
        "the share of steps clipped (clipped_fraction, weighted by batch size like every metric)",
    )
    stop_when: str | None = Field(
        None,
        description="end training before train.epochs once an epoch metric crosses a bound, e.g. "
        "'train_accuracy >= 0.9999' or 'val_loss <= 0.05' (read after each epoch's evaluation; "
        "the run is FINISHED and says why it stopped)",
    )
    stop_smoothing: Fraction = Field(
        0.0,
        description="stop_when reads the metric's exponential mean over epochs, "
        "m = s * m + (1 - s) * value from the first epoch's value (0: each epoch's own)",
    )
    precision: Literal["fp32", "tf32", "bf16"] = Field(
        "fp32",
        description="fp32; tf32: TF32 matmuls and convolutions on CUDA; bf16: autocast of the step "
        "and evaluation",
    )
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = Field(
        "off",
        description="torch.compile the rule's step and evaluation with this mode "
        "(reduce-overhead uses CUDA graphs); true means default; see docs/performance.md",
    )

    @field_validator("stop_when", mode="before")
    @classmethod
    def _stop_condition(cls, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected text: {FORM}")
        return str(StopCondition.parse(value))  # its plain spelling

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_flag(cls, value: Any) -> Any:
        if value is True:
            return "default"
        if value is False or value is None:
            return "off"
        return value


class TrackingOptions(_Section):
    experiment: str = Field(
        "altlearn",
        min_length=1,
        max_length=MAX_EXPERIMENT_NAME,
        description="MLflow experiment; put runs you want to compare in one",
    )
    run_name: str | None = Field(
        None,
        max_length=MAX_RUN_NAME,
        description="default: the spec's name, and after it the -s overrides of altlearn run",
    )
    log_model: bool = Field(True, description="log the trained model (an MLflow PyTorch model)")
    alignment_every: NonNegativeCount = Field(
        200,
        description="steps between measurements of the angle between the rule's update and the "
        "true gradient (0: off)",
    )
    checkpoint_minutes: NonNegativeReal = Field(
        10.0,
        description="minutes between checkpoints of the whole training state, logged to the "
        "run so that `altlearn resume` can continue it (0: after every epoch); the end of training "
        "always writes one",
    )
    tags: Tags = Field(
        default_factory=dict,
        description="extra MLflow tags of the run; keys of letters, digits, _ - . : and spaces (not "
        "paths), values up to 8000 characters",
    )


class TopLevel(_Section):
    name: str = Field(min_length=1, max_length=MAX_RUN_NAME)  # the run name by default
    seed: Seed = 0
    description: str | None = None


# ---------------------------------------------------------------------------- resolved spec


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

    def to_dict(self, explicit: bool = False) -> dict[str, Any]:
        """The resolved spec, every default filled in; with ``explicit``, only the values that
        differ from their defaults (what identifies a sweep's trial: an option a later altlearn
        adds, with a default, leaves it the same)."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        if self.description:
            out["description"] = self.description

        def dump(section: BaseModel) -> dict[str, Any]:
            return section.model_dump(mode="json", exclude_defaults=explicit)

        out["data"] = {**self.data.as_dict(explicit), **dump(self.data_options)}
        out["network"] = {"layers": [layer.as_dict(explicit) for layer in self.layers]}
        out["rule"] = self.rule.as_dict(explicit)
        if self.optimizer is not None:
            out["optimizer"] = self.optimizer.as_dict(explicit)
        out["schedule"] = self.schedule.as_dict(explicit)
        out["train"] = dump(self.train)
        out["tracking"] = dump(self.tracking)
        return out

    def to_yaml(self) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        architecture = getattr(self.layers, "architecture", None)
        if architecture is None:
            return text
        # The layers below are what the network is; say where they came from (a comment, so the
        # resolved spec still validates to the same layers).
        written = yaml.safe_dump(architecture.as_dict(), default_flow_style=True, width=1000).strip()
        return text.replace("\nnetwork:\n", f"\n# network: {written}, expanded:\nnetwork:\n", 1)


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
