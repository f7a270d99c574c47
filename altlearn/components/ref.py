"""A ``{type: ...}`` block, resolved: :class:`Block`; and :func:`ComponentRef`, which declares that a
component's option is itself such a block (GO-UP's gradient source, the training loss).

A component option declared with ``ComponentRef`` is validated like any top-level block: by the
same validator, at its own YAML path (``rule.source.feedback_init``), with the same errors, and the
package of every plugin it names is recorded on the run. Inside the spec a bare name is short for
``{type: name}``. The field's value is a :class:`Block` (component class plus validated params)::

    class Params(altlearn.api.Params):
        source: Block = ComponentRef("rule", default="bp", description="...")

    source = params.source.component(params.source.params, context)  # a rule built from its block

``ComponentRef(kind, many=True)`` declares a non-empty list of such blocks (a residual block's
``layers``), each validated at its own path (``network.layers[3].layers[1]``); any item may carry
``repeat: N``, which stands for N copies of it (:class:`BlockList` remembers where each copy came
from). ``optional=True`` lets the option be left out or null (a residual's ``activation``).

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from altlearn.components.validated import VALIDATOR_CONTEXT, Block, BlockList
from altlearn.components.validator import resolve_reference, resolve_reference_list

#: accepts(component class) -> None if it may be used here, else the reason it may not
Accepts = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Reference:
    """The marker ``ComponentRef`` puts on a field: which kind of component it names."""

    kind: str
    accepts: Accepts | None = None
    #: what the component is for, in messages: "gradient source" reads better than "rule"
    role: str | None = None
    many: bool = False  # a list of blocks, not one
    optional: bool = False  # null (or absent) means none

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.with_info_plain_validator_function(
            self._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(_dump, info_arg=True),
        )

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> dict:
        block = {"type": "object", "description": f"a {{type: ...}} block naming a {self.kind}"}
        return {"type": "array", "items": block} if self.many else block

    def _validate(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        if value is None and self.optional:
            return None
        if self.many:
            return self._validate_list(value, info)
        if isinstance(value, Block):
            # Already resolved (by a spec validator, or built by the caller): it must still fit.
            problem = None if self.accepts is None else self.accepts(value.component)
            if problem:
                raise ValueError(
                    f"{self.kind} {value.type!r} cannot be the {self.role or self.kind}: it {problem}"
                )
            return value
        context = info.context or {}
        validator = context.get(VALIDATOR_CONTEXT)
        if validator is not None:
            # Inside a spec: report at the nested path, in the spec's own words (already reported
            # problems raise an error the validator knows to skip).
            return validator.reference(self, value, info.field_name)
        return resolve_reference(self, value)  # built in Python: the process-wide registry

    def _validate_list(self, value: Any, info: core_schema.ValidationInfo) -> BlockList:
        if isinstance(value, list) and value and all(isinstance(item, Block) for item in value):
            single = Reference(self.kind, self.accepts, self.role)
            return (
                value
                if isinstance(value, BlockList)
                else BlockList([single._validate(b, info) for b in value])
            )
        validator = (info.context or {}).get(VALIDATOR_CONTEXT)
        if validator is not None:
            return validator.reference_list(self, value, info.field_name)
        return resolve_reference_list(self, value)


def _dump(value: Any, info: Any = None) -> Any:
    explicit = bool(info is not None and info.exclude_defaults)  # nested blocks follow their parent
    if isinstance(value, Block):
        return value.as_dict(explicit)
    if isinstance(value, list):
        return [_dump(item, info) for item in value]
    return value


def ComponentRef(  # noqa: N802 - reads as the type it declares, like pydantic's Field
    kind: str,
    *,
    default: str | dict[str, Any] | None = None,
    accepts: Accepts | None = None,
    role: str | None = None,
    description: str | None = None,
    many: bool = False,
    optional: bool = False,
) -> Any:
    """A field whose value is a ``{type: ...}`` block of component ``kind`` (rule, loss, ...).

    ``default`` is a type name (or a whole block); None makes the option required. ``accepts``
    narrows which components of that kind fit (its message says why one does not); ``role`` names
    the option's job in messages ("gradient source"). ``many``: a non-empty list of blocks;
    ``optional``: the option defaults to null, meaning none.
    """
    if isinstance(default, str):
        default = {"type": default}
    extra: dict[str, Any] = {} if default is None else {"default": default, "validate_default": True}
    if optional and default is None:
        extra = {"default": None}
    field = Field(description=description, **extra)
    field.metadata.append(Reference(kind, accepts, role, many, optional))
    return field


def reference_of(field_info: Any) -> Reference | None:
    """The :class:`Reference` of a model field, or None for an ordinary option."""
    return next((m for m in field_info.metadata if isinstance(m, Reference)), None)
