"""A spec: YAML in, a validated spec with every default filled in out.

- ``files``: reading YAML safely (bounded size, depth and numbers; duplicate keys refused) and
  ``--set`` overrides;
- ``model``: the pydantic models of the fixed sections (data, train, tracking, the top level) and
  ``Spec`` itself;
- ``network``: the network section, built and probed on the meta device;
- ``feasibility``: size bounds (parameters, activations) found before anything is allocated;
- ``stopping``: ``train.stop_when``;
- ``load``: ``validate``, ``load_spec`` and ``load_spec_text``, which collect every problem at once;
- ``keys``: the stable hash of a configuration, ``options_text`` and ``docs_tables``: how options
  are described to people (``altlearn options``, docs/spec.md).

Each ``{type: ...}`` block is validated by the Params of the component the registry returns,
through :class:`altlearn.components.validator.Validator`.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from altlearn.spec.files import apply_overrides, load_yaml, parse_yaml
    from altlearn.spec.load import load_spec, load_spec_text, validate
    from altlearn.spec.model import Spec

__all__ = ["Spec", "apply_overrides", "load_spec", "load_spec_text", "load_yaml", "parse_yaml", "validate"]


def __getattr__(name: str) -> Any:
    """The names above, each imported on first use. Loading a spec imports torch (its network is
    built on the meta device); ``altlearn options`` reads only ``options_text`` and must not pay."""
    if name in ("apply_overrides", "load_yaml", "parse_yaml"):
        from altlearn.spec import files

        return getattr(files, name)
    if name in ("load_spec", "load_spec_text", "validate"):
        from altlearn.spec import load

        return getattr(load, name)
    if name == "Spec":
        from altlearn.spec import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
