from altlearn import hookimpl


@hookimpl
def altlearn_register_rules(register):
    register("signsym", "altlearn_dupe.plugin:NotARule", summary="clashes with altlearn-signsym")
    register("bp", "altlearn_dupe.plugin:NotARule", summary="clashes with a built-in")
    register("dupe_only", "altlearn_dupe.plugin:NotARule", summary="a name nobody else has")


class NotARule:
    pass
