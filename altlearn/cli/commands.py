"""The ``altlearn`` command. Heavy imports (torch, mlflow) happen inside the commands that need them.

Exit codes: :class:`altlearn.errors.ExitCode`. An AltlearnError ends a command through
``reports_errors`` (cli/support.py), so the commands catch none of them themselves.
"""

from __future__ import annotations

import click

from altlearn.cli.many_runs import compare, sweep
from altlearn.cli.support import SET_HELP, exit_with, fail, interruptible, reports_errors, tracking_uri_option
from altlearn.registry.registry import KIND_NOUNS, KINDS
from altlearn.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="altlearn")
def main() -> None:
    """Train networks with learning rules other than backprop, from one YAML spec.

    \b
    altlearn run specs/mnist_mlp_bp.yaml            train and log to MLflow
    altlearn run SPEC -s rule.type=fa -s optimizer.lr=0.001
    altlearn resume RUN_ID                          continue an interrupted run
    altlearn sweep specs/sweeps/mnist_rules.yaml    many runs: rules x settings x seeds
    altlearn validate SPEC                          report every mistake at once
    altlearn render SPEC                            print the spec with all defaults
    altlearn plugins                                every component and the package providing it
    altlearn options rule dfa                       one component's options
    altlearn compare --experiment digits --out cmp  rules side by side: table, figures, report
    mlflow ui                                       compare runs (in the folder you ran from)
    """


@main.command()
@click.argument("spec_path", metavar="SPEC")
@click.option("-s", "--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@tracking_uri_option()
@click.option("-q", "--quiet", is_flag=True, help="no progress output")
@interruptible
@reports_errors
def run(spec_path: str, overrides: tuple[str, ...], tracking_uri: str | None, quiet: bool) -> None:
    """Train the spec's network with its rule and log the run to MLflow."""
    from altlearn.runs import train_spec
    from altlearn.spec.load import load_spec
    from altlearn.tracking.store import tracking_uri as resolve_uri
    from altlearn.training.build import flush_denormals

    flush_denormals()  # before torch starts its worker threads: they keep the flag they start with
    spec = load_spec(spec_path, list(overrides))
    if overrides and spec.tracking.run_name is None:
        # the MLflow run says what -s changed: a run of digits_bp.yaml under -s rule.type=fa is
        # no 'digits-bp' run
        spec = _named_after(spec, overrides)
    exit_with(train_spec(spec, uri=resolve_uri(tracking_uri), quiet=quiet))


def _named_after(spec, overrides: tuple[str, ...]):
    """``spec`` whose run is named after it and the overrides, e.g. ``digits-bp [rule.type=fa]``
    (the tracking section validated again, not the whole spec)."""
    import dataclasses

    from altlearn.components.values import MAX_RUN_NAME
    from altlearn.spec.model import TrackingOptions

    run_name = f"{spec.name} [{', '.join(overrides)}]"
    if len(run_name) > MAX_RUN_NAME:
        run_name = run_name[: MAX_RUN_NAME - 4] + "...]"
    tracking = TrackingOptions.model_validate({**spec.tracking.model_dump(), "run_name": run_name})
    return dataclasses.replace(spec, tracking=tracking)


@main.command()
@click.argument("run_id")
@tracking_uri_option("of the run")
@click.option("-q", "--quiet", is_flag=True, help="no progress output")
@interruptible
@reports_errors
def resume(run_id: str, tracking_uri: str | None, quiet: bool) -> None:
    """Continue an interrupted or failed run from its last checkpoint, in the same MLflow run.

    The run's logged spec is used as it is; training goes on from the last checkpointed epoch with
    the same data order and random streams, so the result equals an uninterrupted run's.
    """
    from altlearn.runs import train_spec
    from altlearn.spec.load import load_spec_text
    from altlearn.tracking.resume import logged_spec
    from altlearn.tracking.store import tracking_uri as resolve_uri
    from altlearn.training.build import flush_denormals

    flush_denormals()  # before torch starts its worker threads (see altlearn run)
    uri = resolve_uri(tracking_uri)
    spec_text = logged_spec(uri, run_id)
    # A SpecError here is e.g. a plugin rule that is no longer installed.
    spec = load_spec_text(spec_text, source=f"the spec logged in run {run_id}")
    exit_with(train_spec(spec, uri=uri, quiet=quiet, resume_run_id=run_id))


@main.command()
@click.argument("spec_path", metavar="SPEC")
@click.option("-s", "--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@reports_errors
def validate(spec_path: str, overrides: tuple[str, ...]) -> None:
    """Check a spec and report every problem at once (exit code 2 if any)."""
    from altlearn.spec.load import load_spec
    from altlearn.text import printable

    spec = load_spec(spec_path, list(overrides))
    layers = ", ".join(b.type for b in spec.layers)
    epochs = f"{spec.train.epochs} epoch{'s' if spec.train.epochs != 1 else ''}"
    if spec.train.stop_when:
        smoothing = spec.train.stop_smoothing
        epochs = f"up to {epochs}, until {spec.train.stop_when}" + (
            f" (smoothed {smoothing:g})" if smoothing else ""
        )
    click.echo(
        f"{printable(spec_path)}: ok: {spec.data.type}, rule {spec.rule.type}, {len(spec.layers)} layers "
        f"({layers}), {epochs}"
    )


@main.command()
@click.argument("spec_path", metavar="SPEC")
@click.option("-s", "--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@reports_errors
def render(spec_path: str, overrides: tuple[str, ...]) -> None:
    """Print the resolved spec: every default filled in, overrides applied."""
    from altlearn.spec.load import load_spec

    click.echo(load_spec(spec_path, list(overrides)).to_yaml(), nl=False)


@main.command()
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.argument("name")
@reports_errors
def options(kind: str, name: str) -> None:
    """Show the options of one component: its spec keys, types, defaults and meaning.

    \b
    altlearn options rule dfa
    altlearn options layer conv2d
    altlearn options optimizer adam
    """
    from altlearn.registry.registry import get_registry
    from altlearn.spec.options_text import default_value, type_text, yaml_text

    registry = get_registry()
    try:
        entry = registry.get(kind, name)
        component = entry.load()
    except KeyError:
        fail(f"no {kind} {name!r}; known: {', '.join(registry.names(kind))}{registry.broken_hint()}")
    params = getattr(component, "Params", None)
    if params is None:
        fail(f"{kind} {name!r} from package {entry.package} {entry.version} has no Params model")
    fields = params.model_fields
    click.echo(
        f"{kind} {name} (from {entry.package} {entry.version}): "
        f"{len(fields)} option{'s' if len(fields) != 1 else ''}"
    )
    for key, info in fields.items():
        default = "required" if info.is_required() else f"default {yaml_text(default_value(info))}"
        click.echo(f"  {key}: {type_text(info)}, {default}")
        if info.description:
            click.echo(f"      {info.description}")
    if kind == "rule":
        from altlearn.optim.param_groups import parts_of

        parts = parts_of(component, None)
        if parts:  # what optimizer.groups may name besides the network's layers
            click.echo("parts an optimizer group may name (optimizer.groups: [{params: PART, ...}]):")
            for part, meaning in parts.items():
                click.echo(f"  {part}: {meaning}")


@main.command()
@click.option("-v", "--verbose", is_flag=True, help="show the tracebacks of broken plugins")
def plugins(verbose: bool) -> None:
    """List every component (rules, data sets, layers, optimizers, schedules, losses, network
    architectures) with the package that provides it."""
    from altlearn.registry.registry import PLUGIN_SELECTION_ENV, get_registry

    registry = get_registry()
    # A name several packages register is listed once per package, by the name to write for it.
    rows = {kind: registry.listing(kind) for kind in KINDS}
    # One width per column across all kinds, fitted to the longest name and "package version", so
    # every row lines up, third-party ones too.
    listed = [row for kind in KINDS for row in rows[kind]]
    name_width = max((len(name) for name, _ in listed), default=0)
    width = max((len(f"{c.package} {c.version}") for _, c in listed), default=0)
    for kind in KINDS:
        click.echo(click.style(_plural(KIND_NOUNS[kind]), bold=True))
        for name, c in rows[kind]:
            click.echo(f"  {name:<{name_width}}  {c.package + ' ' + c.version:<{width}}  {c.summary}")
    for conflict in registry.conflicts:  # a plugin beside a built-in is a note; two plugins, a conflict
        label = "note: " if conflict.builtin else "conflict: "
        click.echo(
            click.style(label, fg="yellow", bold=True) + f"{KIND_NOUNS[conflict.kind]} {conflict.message()}"
        )
    if registry.broken:
        click.echo(click.style("broken plugins", bold=True, fg="red"))
        for b in registry.broken:
            click.echo(f"  {b.package} {b.version} (entry point {b.name!r}): {b.error}")
            if verbose:
                click.echo("    " + b.details.replace("\n", "\n    "))
    if registry.left_out:
        click.echo(f"left out by {PLUGIN_SELECTION_ENV}: {', '.join(registry.left_out)}")
    if registry.unmatched_selection:
        click.echo(
            click.style("warning: ", fg="yellow", bold=True) + f"{PLUGIN_SELECTION_ENV} "
            f"names no installed plugin: {', '.join(registry.unmatched_selection)} (give "
            "an entry-point name or a package name)"
        )
    click.echo(f"(choose which plugins load with {PLUGIN_SELECTION_ENV}=name,name or none)")


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith("s") else "s")


main.add_command(compare)
main.add_command(sweep)


if __name__ == "__main__":
    main()
