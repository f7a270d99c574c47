"""The plugin registry: every component (rule, data set, layer, network, optimizer, schedule, loss)
by name, from altlearn's own modules and from installed plugin packages alike.

- ``hookspecs``: the plugin contract, one ``altlearn_register_*`` hook per kind of component;
- ``registry``: the one PluginManager, entry-point loading (each plugin in its own try/except),
  broken plugins;
- ``names``: a component, loaded lazily from its ``"module:attr"`` target, and which one a plain or
  qualified (``package:name``) name means when several packages register that name;
- ``builtins``: altlearn's own components, registered through the same hooks as a plugin's;
- ``exit_guard``: a plugin that calls ``sys.exit`` while it loads is reported, not obeyed.

Nothing here imports torch: ``altlearn plugins`` lists everything without loading a component.
"""

from altlearn.registry.hookspecs import hookimpl
from altlearn.registry.names import Component
from altlearn.registry.registry import (
    KIND_NOUNS,
    KINDS,
    PLUGIN_SELECTION_ENV,
    Registry,
    build_registry,
    get_registry,
    reset_registry,
)

__all__ = [
    "KINDS",
    "KIND_NOUNS",
    "PLUGIN_SELECTION_ENV",
    "Component",
    "Registry",
    "build_registry",
    "get_registry",
    "hookimpl",
    "reset_registry",
]
