"""`altlearn` in a child process, with the test rules of fake_rules.py installed.

Fault tests need a real second process: one that holds a store lock, loses its folder's write
permission, or outlives a tracking server, while the test process watches from outside.
Usage: python fault_child.py run SPEC --tracking-uri URI ... (or sweep FILE ...: the sweep's
worker processes have the test rules too)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fake_rules  # noqa: E402

from altlearn.registry import registry as plugins  # noqa: E402

_registry = plugins.build_registry(extra_plugins=[(fake_rules, "altlearn-test-fakes", "9.9")])
plugins.get_registry = lambda: _registry

from altlearn.cli.commands import main  # noqa: E402

# Guarded: a sweep's spawned workers run this file again (as __mp_main__) to get the fake rules,
# and must not start the command a second time.
if __name__ == "__main__":
    main(sys.argv[1:], prog_name="altlearn")
