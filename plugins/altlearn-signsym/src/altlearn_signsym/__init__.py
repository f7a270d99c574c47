"""altlearn-signsym: sign-symmetry feedback rules for altlearn.

Importing this package (or its ``plugin`` module, which altlearn loads at start-up) imports no torch;
the rules live in :mod:`altlearn_signsym.rules` and are imported only when a spec uses them.
"""

from importlib import metadata

try:
    __version__ = metadata.version("altlearn-signsym")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
