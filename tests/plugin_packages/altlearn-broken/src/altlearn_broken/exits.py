"""Imports fine, but its hook calls sys.exit while registering: altlearn must survive that too."""

import sys

from altlearn import hookimpl


@hookimpl
def altlearn_register_layers(register):
    register("exit_layer", "altlearn_broken.exits:Nothing")
    sys.exit(3)
