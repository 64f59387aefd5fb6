"""The command line: parse with click, call a command function, map errors to exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from devloop import __version__
from devloop import completion as complete
from devloop.errors import EXIT_INTERRUPTED, EXIT_USAGE, DevloopError


@dataclass(frozen=True)
class Options:
    """Options every command shares, set on the group."""

    directory: Path  # the project: where its devloop.yaml is (or that file, from -f)
    output: str  # text | json
    here: Path = Path(".")  # -C: where devloop was started; `init` writes there


def _profile_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-p",
        "--profile",
        "profiles",
        multiple=True,
        metavar="PROFILE",
        shell_complete=complete.profiles,
        help="Apply this profile (repeatable). Default: the profiles whose activation matches.",
    )(f)


def _format_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--output",
        "fmt",
        type=click.Choice(["text", "json"]),
        default=None,
        help="text for people, json for one event per line (default: the group's --output).",
    )(f)


def _want_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    # Not click's version_option, which exits before --verbose (given after it) is parsed.
    if value:
        ctx.meta["devloop.version"] = True


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    invoke_without_command=True,
    no_args_is_help=True,
)
@click.option(
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_want_version,
    help="Print devloop's version (with --verbose: the Docker Engine's and the cluster's too).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="With --version: also ask the Docker Engine and the kube context for their versions.",
)
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Run as if devloop was started in DIR.",
    metavar="DIR",
)
@click.option(
    "-f",
    "--file",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Use this config (default: devloop.yaml here, else the nearest in a parent directory).",
)
@click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="How to report: text for people, json for one event per line.",
)
@click.pass_context
def cli(
    ctx: click.Context, directory: Path, config_file: Path | None, output: str, verbose: bool
) -> None:
    """devloop: code, see it running, code again - in milliseconds.

    Hot-syncs changed files into running containers, or rebuilds and redeploys,
    from one devloop.yaml, on the local Docker engine or any Kubernetes cluster.
    """
    if ctx.meta.get("devloop.version"):
        click.echo(f"devloop, version {__version__}")
        if verbose:
            for line in _peer_versions(directory):
                click.echo(line)
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        ctx.fail("Missing command.")
    if not directory.is_dir():
        raise click.BadParameter(f"'{directory}' is not a directory", param_hint="-C")
    _OUTPUT["format"] = output
    here = directory.resolve()
    ctx.obj = Options(directory=_project_dir(here, config_file), output=output, here=here)


def _project_dir(directory: Path, config_file: Path | None) -> Path:
    """Where the config is: `-f FILE` (relative to -C), else the nearest devloop.yaml at or above
    `directory`; `directory` itself when there is none (init writes one there)."""
    from devloop.config.discover import nearest
    from devloop.model.project import CONFIG_NAME

    if config_file is not None:
        path = (directory / config_file).resolve()
        if not path.is_file():
            raise click.BadParameter(f"'{config_file}' is not a file", param_hint="-f")
        # a file named devloop.yaml is its directory's config: every command finds it there
        return path.parent if path.name == CONFIG_NAME else path
    found = nearest(directory)
    if found is None or found == directory:
        return directory
    click.echo(f"using {found / CONFIG_NAME}", err=True)
    return found


# the output format the command settled on, read by the error boundary in `run`
_OUTPUT: dict[str, str] = {}


def _peer_versions(directory: Path) -> list[str]:
    """What the engine and the cluster devloop would talk to say they are (each probed with a
    short timeout; imported here so that a plain --version stays fast)."""
    from devloop import config, doctor

    try:
        project = config.load(directory) if directory.is_dir() else None
    except DevloopError:
        project = None  # no (valid) devloop.yaml here: the current kube context
    engine, client = doctor.docker_engine()
    if client is not None:
        client.close()
    return [f"{c.name}: {c.detail}" for c in (engine, doctor.kube(project))]


def _opts(ctx: click.Context, fmt: str | None = None) -> Options:
    o: Options = ctx.obj
    _OUTPUT["format"] = fmt or o.output
    return Options(o.directory, fmt or o.output, o.here)


@cli.command()
@_profile_option
@click.option(
    "-o",
    "--output",
    "dest",
    default="-",
    metavar="DIR|-",
    help="Write one multi-document YAML to stdout (-), or one file per object into DIR.",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="SERVICE=REF",
    help="Use REF as SERVICE's image instead of the computed tag (repeatable).",
)
@click.option(
    "--build-report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pin the image digests recorded by `devloop build --report FILE`.",
)
@click.option("--validate", is_flag=True, help="Check every object against the Kubernetes schemas.")
@click.option(
    "--kube-version", default=None, metavar="X.Y", help="Kubernetes version for --validate."
)
@click.argument("services", nargs=-1, shell_complete=complete.services)
@click.pass_context
def render(
    ctx: click.Context,
    profiles: tuple[str, ...],
    dest: str,
    images: tuple[str, ...],
    build_report: Path | None,
    validate: bool,
    kube_version: str | None,
    services: tuple[str, ...],
) -> None:
    """Print the manifests, with pinned image references, for GitOps."""
    from devloop.commands import render as cmd

    overrides = {}
    for item in images:
        name, sep, ref = item.partition("=")
        if not sep or not name or not ref:
            raise click.BadParameter(f"'{item}' is not SERVICE=REF", param_hint="--image")
        overrides[name] = ref
    ctx.exit(
        cmd.run(
            _opts(ctx).directory,
            profiles=profiles,
            dest=dest,
            overrides=overrides,
            build_report=build_report,
            validate=validate,
            kube_version=kube_version,
            services=services,
            here=_opts(ctx).here,
        )
    )


@cli.command()
@_profile_option
@click.option(
    "--push", is_flag=True, help="Push the images (default: only when `registry` is set)."
)
@_format_option
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write a JSON build report (image and digest per service) for `render --build-report`.",
)
@click.argument("services", nargs=-1, shell_complete=complete.services)
@click.pass_context
def build(
    ctx: click.Context,
    profiles: tuple[str, ...],
    push: bool,
    fmt: str | None,
    report: Path | None,
    services: tuple[str, ...],
) -> None:
    """Build the images (skipping those already built), push or load them."""
    from devloop.commands import build as cmd

    opts = _opts(ctx, fmt)
    ctx.exit(
        cmd.run(
            opts.directory,
            profiles=profiles,
            services=services,
            push=push,
            fmt=opts.output,
            report=report,
        )
    )


def _context_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--context",
        default=None,
        metavar="NAME",
        help="Kube context to deploy to (naming it here also allows a non-local one).",
    )(f)


@cli.command()
@_profile_option
@_format_option
@_context_option
@click.option("--keep", is_flag=True, help="Leave the containers running on exit.")
@click.option(
    "--watcher",
    type=click.Choice(["auto", "inotify", "watchfiles"]),
    default="auto",
    show_default=True,
    envvar="DEVLOOP_WATCHER",
    help="auto: inotify read directly on Linux, watchfiles elsewhere.",
)
@click.option(
    "--trigger",
    type=click.Choice(["auto", "manual"]),
    default=None,
    help="auto: act on every change; manual: changes wait for a trigger (key t). Default: each "
    "service's `trigger:` in devloop.yaml (auto).",
)
@click.option(
    "--plan",
    "show_plan",
    is_flag=True,
    help="Print what would be watched, synced and rebuilt; start nothing.",
)
@click.option(
    "--ui/--no-ui",
    default=True,
    show_default=True,
    help="Serve the web dashboard on 127.0.0.1 (its URL is printed).",
)
@click.option(
    "--ui-port",
    type=click.IntRange(1, 65535),
    default=None,
    metavar="PORT",
    help="The dashboard's port (default: the first free one from 10350).",
)
@click.option(
    "--local",
    "local",
    default=None,
    metavar="SERVICE",
    shell_complete=complete.services,
    help="Run SERVICE as a local process, bridged to the others (env, names, its traffic).",
)
@click.option(
    "--command",
    "local_command",
    default=None,
    metavar="CMD",
    help="With --local: the shell command to run (default: local.command in devloop.yaml).",
)
@click.option(
    "--print-env",
    is_flag=True,
    help="With --local: print the service's pod env as export lines and exit.",
)
@click.option("--show-secrets", is_flag=True, help="With --print-env: show values from Secrets.")
@click.option(
    "--env-urls",
    is_flag=True,
    help="With --local: set <SERVICE>_HOST/<SERVICE>_PORT for every other service.",
)
@click.option(
    "--intercept-header",
    default=None,
    metavar="NAME=VALUE",
    help="With --local: only HTTP/1.x requests carrying this header reach the local process.",
)
@click.option(
    "--relay-base",
    default=None,
    metavar="IMAGE",
    help="With --local: the image the relay is built FROM (default devloop/python:3).",
)
@click.option(
    "--no-hosts", is_flag=True, help="With --local: never write /etc/hosts, even as root."
)
@click.argument("services", nargs=-1, shell_complete=complete.services)
@click.pass_context
def dev(
    ctx: click.Context,
    profiles: tuple[str, ...],
    fmt: str | None,
    context: str | None,
    keep: bool,
    watcher: str,
    trigger: str | None,
    show_plan: bool,
    ui: bool,
    ui_port: int | None,
    local: str | None,
    local_command: str | None,
    print_env: bool,
    show_secrets: bool,
    env_urls: bool,
    intercept_header: str | None,
    relay_base: str | None,
    no_hosts: bool,
    services: tuple[str, ...],
) -> None:
    """Build, deploy, then sync or rebuild on every change; logs and ports; Ctrl-C cleans up."""
    from devloop.commands import local as local_cmd

    if (print_env or local_command or env_urls or intercept_header or relay_base) and not local:
        raise click.UsageError(
            "--print-env, --command, --env-urls, --intercept-header and "
            "--relay-base go with --local SERVICE"
        )
    if print_env:
        assert local is not None
        ctx.exit(
            local_cmd.print_env(
                _opts(ctx).directory,
                local,
                profiles=profiles,
                show_secrets=show_secrets,
                context=context,
            )
        )
    if show_plan:
        ctx.invoke(
            plan_,
            profiles=profiles,
            fmt=fmt,
            services=services,
            local=local,
            local_command=local_command,
            intercept_header=intercept_header,
            env_urls=env_urls,
        )
    from devloop.bridge.intercept import Options as LocalOptions
    from devloop.bridge.intercept import parse_header
    from devloop.commands import dev as cmd

    opts = _opts(ctx, fmt)
    bridge = (
        cmd.Local(
            local,
            LocalOptions(
                command=local_command,
                header=parse_header(intercept_header),
                env_urls=env_urls,
                use_hosts=not no_hosts,
            ),
            relay_base,
        )
        if local
        else None
    )
    ctx.exit(
        cmd.run(
            opts.directory,
            profiles=profiles,
            services=services,
            output=opts.output,
            keep=keep,
            context=context,
            watcher=watcher,
            ui=ui,
            ui_port=ui_port,
            trigger=trigger,
            local=bridge,
        )
    )


@cli.command(name="run")
@_profile_option
@_format_option
@_context_option
@click.option(
    "--timeout", type=float, default=None, metavar="SECONDS", help="How long to wait for health."
)
@click.option(
    "--push/--no-push", default=None, help="Push the images (default: when `registry` is set)."
)
@click.argument("services", nargs=-1, shell_complete=complete.services)
@click.pass_context
def run_(
    ctx: click.Context,
    profiles: tuple[str, ...],
    fmt: str | None,
    context: str | None,
    timeout: float | None,
    push: bool | None,
    services: tuple[str, ...],
) -> None:
    """One shot for CI: build, push, deploy, wait until healthy; exit 1 with a diagnosis if not."""
    from devloop.commands import run as cmd

    opts = _opts(ctx, fmt)
    ctx.exit(
        cmd.run(
            opts.directory,
            profiles=profiles,
            services=services,
            output=opts.output,
            context=context,
            timeout=timeout,
            push=push,
        )
    )


@cli.command()
@_profile_option
@_format_option
@_context_option
@click.option("--images", is_flag=True, help="Remove the images devloop built for it too.")
@click.pass_context
def delete(
    ctx: click.Context,
    profiles: tuple[str, ...],
    fmt: str | None,
    context: str | None,
    images: bool,
) -> None:
    """Remove everything devloop created for this project."""
    from devloop.commands import delete as cmd

    opts = _opts(ctx, fmt)
    ctx.exit(
        cmd.run(
            opts.directory, profiles=profiles, output=opts.output, context=context, images=images
        )
    )


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite devloop.yaml (and manifests) if they exist.")
@click.option(
    "--manifests", is_flag=True, help="Write editable manifests from the web/worker archetypes."
)
@click.option(
    "--target",
    default=None,
    metavar="STAGE",
    help="Deploy this stage of the Dockerfiles that have it.",
)
@click.pass_context
def init(ctx: click.Context, force: bool, manifests: bool, target: str | None) -> None:
    """Write devloop.yaml from the Dockerfiles here, with sync rules inferred from COPY/ADD."""
    from devloop.commands import init as cmd

    ctx.exit(cmd.run(_opts(ctx).here, force=force, manifests=manifests, target=target))


@cli.command(name="plan")
@_profile_option
@_format_option
@click.option("--local", default=None, metavar="SERVICE", help="Also say what --local would do.")
@click.option("--command", "local_command", default=None, metavar="CMD", hidden=True)
@click.option("--intercept-header", default=None, metavar="NAME=VALUE", hidden=True)
@click.option("--env-urls", is_flag=True, hidden=True)
@click.argument("services", nargs=-1, shell_complete=complete.services)
@click.pass_context
def plan_(
    ctx: click.Context,
    profiles: tuple[str, ...],
    fmt: str | None,
    services: tuple[str, ...],
    local: str | None = None,
    local_command: str | None = None,
    intercept_header: str | None = None,
    env_urls: bool = False,
) -> None:
    """Print what `dev` would watch, ignore, sync and rebuild, and the inotify watches it needs."""
    from devloop.commands import plan as cmd

    opts = _opts(ctx, fmt)
    ctx.exit(
        cmd.run(
            opts.directory,
            profiles=profiles,
            services=services,
            output=opts.output,
            local=cmd.LocalPlan(local, local_command, intercept_header, env_urls)
            if local
            else None,
        )
    )


@cli.command()
@_profile_option
@_format_option
@_context_option
@click.pass_context
def doctor(
    ctx: click.Context, profiles: tuple[str, ...], fmt: str | None, context: str | None
) -> None:
    """Check the Docker engine, kube context, registry, inotify limits and images; print fixes."""
    from devloop.commands import doctor as cmd

    opts = _opts(ctx, fmt)
    ctx.exit(cmd.run(opts.directory, profiles=profiles, context=context, output=opts.output))


@cli.command()
@click.option(
    "--events", is_flag=True, help="The schema of the `--output json` event stream instead."
)
def schema(events: bool) -> None:
    """Print the JSON Schema of devloop.yaml (for yaml-language-server and editors)."""
    if events:
        import json

        from devloop.output import events_schema

        click.echo(json.dumps(events_schema(), indent=2))
        return
    from devloop.config.schema import json_schema

    click.echo(json_schema(), nl=False)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the one place errors become messages and exit codes."""
    sys.exit(run(argv))


def _fatal(message: str, code: int) -> int:
    """Say why the command stopped: on stderr for people, and as a `fatal` event on stdout
    under `--output json` so a tool reading the stream never gets an empty one."""
    click.echo(message, err=True)
    if _OUTPUT.get("format") == "json":
        return _fatal_event(message.removeprefix("error: "), code)
    return code


def _fatal_event(message: str, code: int) -> int:
    from devloop.model.events import Fatal
    from devloop.output import JsonSink

    JsonSink(sys.stdout)(Fatal(message=message, exit_code=code))
    return code


def run(argv: list[str] | None = None) -> int:
    _OUTPUT.clear()
    try:
        # without standalone mode, click returns a command's ctx.exit(code) instead of raising it
        code = cli.main(args=argv, prog_name="devloop", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
        if _OUTPUT.get("format") == "json":
            return _fatal_event(exc.format_message(), code)
        return code
    except (KeyboardInterrupt, click.exceptions.Abort):
        return _fatal("interrupted", EXIT_INTERRUPTED)
    except DevloopError as exc:
        return _fatal(f"error: {exc}", exc.exit_code)
    except BrokenPipeError:  # `devloop render | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code if isinstance(code, int) else 0
