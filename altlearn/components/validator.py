"""The machinery that validates one ``{type: ...}`` block, or one fixed section, into problems.

Every block (data, each layer, rule, optimizer, schedule, and any block nested in a component's
options with :func:`altlearn.components.ref.ComponentRef`) goes through :meth:`Validator.block`: the registry
finds the component, its ``Params`` model parses the options, and every mistake becomes a
:class:`Problem` with its YAML path, the bad value and what is allowed. Third-party components get
exactly the errors built-ins get.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from altlearn.components import values
from altlearn.components.validated import VALIDATOR_CONTEXT, Block, BlockList
from altlearn.components.values import Count
from altlearn.errors import PluginError, Problem
from altlearn.registry import registry as plugins
from altlearn.registry.registry import KIND_NOUNS, Registry

if TYPE_CHECKING:
    from altlearn.components.ref import Reference

from altlearn.text import article, did_you_mean, elsewhere_hint, glued_key, invalid, join, key_hint, short

#: pydantic's error types of a number's bounds, which a nan fails without being out of them
_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
#: pydantic error type of a nested block whose problems the validator has already recorded
_REPORTED = "altlearn_already_reported"
#: type of a PydanticCustomError whose message is the whole problem, not a reason after "X is invalid:"
WORDED = "altlearn_worded"

#: what a component of each kind must have besides Params (checked when a spec names it, so a
#: plugin's mistake is reported at the spec path instead of failing mid-training)
_REQUIRED_ATTRIBUTE = {
    "optimizer": "build",
    "schedule": "factor",
    "loss": "build",
    "layer": "build",
    "network": "layers",
}


def pydantic_problems(exc: ValidationError, path: str, model: type[BaseModel], owner: str, unknown=None):
    """``model``'s errors at ``path`` as Problems at their YAML paths, values spelled as YAML;
    ``unknown(loc)`` words a key the model does not take (default: not an option of ``owner``)."""
    options, problems = sorted(model.model_fields), []
    for err in [e for e in exc.errors() if e["type"] != _REPORTED]:
        kind, loc, value = err["type"], err["loc"], err.get("input")
        message = invalid(value, kind, err["msg"])
        if kind == "extra_forbidden" and unknown:
            message = unknown(loc)
        elif kind == "extra_forbidden":
            message = (
                f"{loc[-1]!r} is not an option of {owner}; {key_hint(loc[-1], options)}"
                f"its options are: {', '.join(options) or '(none)'}"
            )
        elif kind in ("missing", WORDED):
            message = err["msg"] if kind == WORDED else f"required by {owner} but missing"
        elif kind in _BOUNDS and isinstance(value, float) and math.isnan(value):
            message = f"{short(value)} is invalid: Input should be a finite number"  # nan compares false
        problems.append(Problem(_where(path, loc, kind == "invalid_key"), message))
    return problems


def _where(path: str, loc: tuple, key_error: bool) -> str:
    # pydantic follows a mapping's key it refused with "[key]" (a model's extra key: the error
    # invalid_key); write it .key, even a number, which join() would write as a list index
    where = path
    for i, key in enumerate(loc):
        is_key = loc[i + 1 : i + 2] == ("[key]",) or (key_error and i == len(loc) - 1)
        where = where if key == "[key]" else join(where, str(key) if is_key else key)
    return where


class ListItemOptions(BaseModel):
    """Options any block in a list of blocks has, besides its component's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repeat: Count = Field(1, description="stands for this many copies of the block, in a row")


def _size(block: Block) -> int:
    """Layers a block stands for: itself and every layer in its nested lists (a residual's body)."""
    nested = [value for value in vars(block.params).values() if isinstance(value, BlockList)]
    return 1 + sum(sum(_size(b) for b in blocks) for blocks in nested)


@dataclass
class _Scope:
    """What a nested block needs from the model being validated around it: the validator and the
    path of that model (pydantic tells the field's name, not where the model sits in the YAML)."""

    validator: Validator
    path: str

    def reference(self, reference: Reference, value: Any, field_name: str | None) -> Block:
        return self.validator.reference(reference, value, join(self.path, field_name or "?"))

    def reference_list(self, reference: Reference, value: Any, field_name: str | None) -> BlockList:
        return self.validator.reference_list(reference, value, join(self.path, field_name or "?"))

    def model(self, model: type[BaseModel], values: Any, key: str, owner: str) -> BaseModel | None:
        """``model`` parsed from the mapping at ``key`` below this scope, or None with its problems
        recorded at their own paths (then end the validation with :meth:`reported`)."""
        return self.validator.model(model, values, join(self.path, key), owner)

    @staticmethod
    def reported() -> None:
        """Fail the model being validated with an error the validator skips (already recorded)."""
        raise PydanticCustomError(_REPORTED, "reported by the spec validator")


class Validator:
    """Collects the problems of one spec and the plugin packages its blocks come from."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.problems: list[Problem] = []
        self.packages: dict[str, str] = {}  # plugin package -> version, for the run's tags

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- a fixed set of options (a section, or a component's Params)
    def model(self, model: type[BaseModel], values: Any, path: str, owner: str) -> BaseModel | None:
        """``model`` parsed from ``values``, or None with its problems recorded under ``path``."""
        if values is None:
            values = {}
        if not isinstance(values, dict):
            self.add(path, f"expected a mapping of options, got {short(values)}")
            return None
        try:
            return model.model_validate(values, context={VALIDATOR_CONTEXT: _Scope(self, path)})
        except ValidationError as exc:
            self.problems += pydantic_problems(exc, path, model, owner)
            return None

    # -- a `type:` block
    def block(
        self,
        values: Any,
        path: str,
        kind: str,
        common: type[BaseModel] | None = None,
        reference: Reference | None = None,
    ) -> tuple[Block | None, BaseModel | None]:
        """Validate ``{type: name, **options}`` naming a component of ``kind``, or the name alone
        for the component with its defaults (``rule: fa``, ``loss: mse``, a layer ``relu``).

        ``common`` holds options every component of the kind has (data sets' batch_size...);
        ``reference`` is set for a block nested in another component's options.
        """
        # A bad bare name's path is the option itself, since the file has no `type` key.
        shorthand = isinstance(values, str)
        type_path = path if shorthand else join(path, "type")
        if shorthand:
            values = {"type": values}
        what = KIND_NOUNS[kind]
        if not isinstance(values, dict):
            self.add(
                path,
                f"expected {article(what)} {what}'s name or a mapping with a 'type' key, got {short(values)}",
            )
            return None, None
        options = dict(values)
        type_name = options.pop("type", None)
        if type_name is None:  # {type:linear} is one key 'type:linear': the hint, not the choices
            glued = next((hint.removesuffix("; ") for k in options if (hint := glued_key(k, ["type"]))), "")
            choices = f"choose {article(what)} {what}: {', '.join(self.choices(kind, reference))}"
            self.add(type_path, f"missing; {glued or choices}")
            return None, None
        found = self._component(kind, str(type_name), type_path, reference)
        if found is None:
            return None, None
        component, package, version = found
        owner = f"{what} {type_name!r}"
        common_values = {k: options.pop(k) for k in list(options) if common and k in common.model_fields}
        # "lr belongs in optimizer.lr" helps at the top; inside a nested block it usually belongs
        # to the block around it (GO-UP's lr), so no hint there.
        self._unknown_keys(options, component.Params, common, path, owner, hint=reference is None)
        params = self.model(component.Params, options, path, owner)
        shared = self.model(common, common_values, path, what) if common else None
        if params is None:
            return None, shared
        if package != "altlearn":
            self.packages[package] = version
        return Block(str(type_name), component, params, package, version), shared

    def _unknown_keys(
        self,
        options: dict,
        params: type[BaseModel],
        common: type[BaseModel] | None,
        path: str,
        owner: str,
        hint: bool = True,
    ) -> None:
        """Report (and drop) keys neither model knows, against the union of both models' options
        so that did-you-mean sees every option."""
        known = sorted(set(params.model_fields) | set(common.model_fields if common else ()))
        for key in [k for k in options if k not in params.model_fields]:
            self.add(
                join(path, key),
                f"{key!r} is not an option of {owner}; {key_hint(key, [*known, 'type'])}its options are: "
                f"{', '.join(known) or '(none)'}{elsewhere_hint(key, path) if hint else ''}",
            )
            options.pop(key)

    def _component(
        self, kind: str, name: str, type_path: str, reference: Reference | None
    ) -> tuple[Any, str, str] | None:
        """(class, package, version) of the named component, or None with the problem recorded."""
        what = KIND_NOUNS[kind]
        try:
            component, package, version = self.load(kind, name)
        except KeyError:
            choices = self.choices(kind, reference)
            self.add(
                type_path,
                f"{short(name)} is not a known {what}; {did_you_mean(name, choices)}"
                f"known: {', '.join(choices)}{self.registry.broken_hint()}",
            )
            return None
        except PluginError as exc:
            self.add(type_path, str(exc))
            return None
        problem = reference.accepts(component) if reference and reference.accepts else None
        if problem and reference:  # a problem comes only from a reference
            role = reference.role or what
            self.add(
                type_path,
                f"{what} {name!r} cannot be the {role}: it {problem}; "
                f"usable: {', '.join(self.choices(kind, reference))}",
            )
            return None
        return component, package, version

    def load(self, kind: str, name: str) -> tuple[Any, str, str]:
        """The component class, package and version; KeyError or PluginError saying why not."""
        entry = self.registry.get(kind, name)
        component = entry.load()
        params = getattr(component, "Params", None)
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            # A plugin registered something that is not a component class: its bug, reported
            # at the spec path that uses it, not an AttributeError traceback.
            raise PluginError(
                f"{kind} {name!r} from package {entry.package} {entry.version} "
                f"is {component!r}, which has no Params model: not a {kind} class"
            )
        needed = _REQUIRED_ATTRIBUTE.get(kind)
        if needed and not callable(getattr(component, needed, None)):
            raise PluginError(
                f"{kind} {name!r} from package {entry.package} {entry.version} has no "
                f"{needed}() method, which every {KIND_NOUNS[kind]} needs"
            )
        return component, entry.package, entry.version

    def choices(self, kind: str, reference: Reference | None = None) -> list[str]:
        """The names a block of ``kind`` may use here (only those the reference accepts)."""
        names = [name for name, _ in self.registry.listing(kind)]  # clashing names qualified
        if reference is None or reference.accepts is None:
            return names
        usable = []
        for name in names:
            try:
                component = self.registry.load(kind, name)
            except (PluginError, KeyError):
                continue  # a broken plugin: reported where a spec names it
            if reference.accepts(component) is None:
                usable.append(name)
        return usable

    # -- a block nested in a component's options
    def reference(self, reference: Reference, value: Any, path: str) -> Block:
        """The nested block at ``path``, for pydantic; its problems are recorded here."""
        block, _ = self.block(value, path, reference.kind, reference=reference)
        if block is None:
            raise PydanticCustomError(_REPORTED, "reported by the spec validator")
        return block

    def block_list(
        self, items: Any, path: str, kind: str, reference: Reference | None = None
    ) -> BlockList | None:
        """A non-empty list of ``kind`` blocks at ``path``, each item's ``repeat: N`` expanded into
        N copies; None (problems recorded) if any item is wrong."""
        if not isinstance(items, list) or not items:
            self.add(path, f"expected a non-empty list of {KIND_NOUNS[kind]} blocks, got {short(items)}")
            return None
        if len(items) > values.MAX_LAYERS:  # before validating any: each costs a probe later
            self.add(path, f"{len(items)} layers; altlearn takes at most {values.MAX_LAYERS}")
            return None
        blocks, origins, complete, size = [], [], True, 0
        for index, item in enumerate(items):
            block, shared = self.block(item, join(path, index), kind, ListItemOptions, reference)
            if block is None or not isinstance(shared, ListItemOptions):  # None: problems recorded
                complete = False
                continue
            # Bound the expansion before doing it: repeat: 10**9 must be an error, not a full memory.
            size += shared.repeat * _size(block)
            if size > values.MAX_LAYERS:
                self.add(
                    join(path, index),
                    f"makes the list stand for more than {values.MAX_LAYERS} "
                    "layers (repeats and nested blocks counted), the most altlearn takes",
                )
                return None
            blocks += [block] * shared.repeat  # blocks are immutable: each copy builds its own module
            origins += [(index, copy, shared.repeat) for copy in range(shared.repeat)]
        return BlockList(blocks, origins) if complete else None

    def reference_list(self, reference: Reference, value: Any, path: str) -> BlockList:
        """The nested list of blocks at ``path``, for pydantic; its problems are recorded here."""
        blocks = self.block_list(value, path, reference.kind, reference)
        if blocks is None:
            raise PydanticCustomError(_REPORTED, "reported by the spec validator")
        return blocks

    def raise_problems(self, source: str | None, order: tuple[str, ...]) -> None:
        """SpecError listing every problem, in the order a reader meets the sections."""
        from altlearn.errors import SpecError

        if self.problems:
            rank = {name: i for i, name in enumerate(order)}
            self.problems.sort(key=lambda p: rank.get(p.path.split(".")[0].split("[")[0], -1))
            raise SpecError(self.problems, source)


def resolve_reference(reference: Reference, value: Any) -> Block:
    """A nested block given in Python (``GoUpParams(source={"type": "dfa"})``), resolved with the
    process-wide registry; ValueError listing its problems."""
    validator = Validator(plugins.get_registry())
    block, _ = validator.block(value, "", reference.kind, reference=reference)
    if block is None:
        raise ValueError("; ".join(str(p) for p in validator.problems))
    return block


def resolve_reference_list(reference: Reference, value: Any) -> BlockList:
    """A nested list of blocks given in Python, resolved like :func:`resolve_reference`."""
    validator = Validator(plugins.get_registry())
    blocks = validator.block_list(value, "", reference.kind, reference)
    if blocks is None:
        raise ValueError("; ".join(str(p) for p in validator.problems))
    return blocks
