"""The entry point altlearn loads: registers the rules by "module:attr" path, importing nothing heavy.

``from altlearn import hookimpl`` (not ``altlearn.api``) on purpose: altlearn.api imports torch, and
this module is imported every time ``altlearn plugins`` or ``altlearn --help`` runs.
"""

from altlearn import hookimpl


@hookimpl
def altlearn_register_rules(register):
    register(
        "signsym",
        "altlearn_signsym.rules:SignSymmetry",
        summary="sign-concordant feedback sign(W)*|B| (Liao, Leibo & Poggio 2016)",
    )
    register(
        "signsym_brsf",
        "altlearn_signsym.rules:BatchwiseRandomSignSymmetry",
        summary="sign-concordant feedback, magnitudes redrawn every batch (Liao et al. 2016)",
    )
