"""The ``harvest`` command line: the one boundary where errors become exit codes.

Expected failures (bad config, unreadable journal) print one line and exit non-zero;
only a bug shows a traceback.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from agent import __version__
from agent.config import AgentConfig, ConfigInvalid, load_config, resolve_config_path
from agent.errors import FatalError, HarvestError
from agent.secrets.redact import redact


class _OperatorOrder(TyperGroup):
    """Commands listed in the order an operator needs them: is my data safe, act, check, set up."""

    ORDER = ("status", "watch", "pause", "resume", "retry", "rescan", "doctor", "inspect", "config", "login",
             "run", "scan", "service")  # fmt: skip

    def list_commands(self, ctx: Any) -> list[str]:  # typer's (vendored) click.Context
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: self.ORDER.index(name) if name in self.ORDER else len(self.ORDER))


app = typer.Typer(
    cls=_OperatorOrder,
    name="harvest",
    help="Harvest agent: settle, checksum and archive instrument acquisitions as verified BagIt datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no type placeholders on flags, paragraphs wrapped as text
)
config_app = typer.Typer(help="Check or show the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
service_app = typer.Typer(help="Run as an operating-system service.", no_args_is_help=True)
app.add_typer(service_app, name="service")

VerboseOption = Annotated[bool, typer.Option("--verbose", help="Log at debug level.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: $HARVEST_CONFIG, then the platform default)."),
]


def _fail(error: HarvestError) -> typer.Exit:
    typer.echo(redact(f"harvest: {error}"), err=True)
    return typer.Exit(error.exit_code)


def _load(config_path: Path | None) -> AgentConfig:
    try:
        return load_config(resolve_config_path(config_path))
    except FatalError as error:
        raise _fail(error) from None


def _setup_logging(config: AgentConfig, verbose: bool) -> None:
    from agent.observe.logsetup import setup_logging

    setup_logging(config, verbose=verbose)
    if config.process.priority == "low":
        from agent.controls.priority import lower_priority

        logging.getLogger("agent").debug("process priority lowered: %s", lower_priority())


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"harvest-agent {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Harvest agent command line."""
    # A name that is not UTF-8 (a Latin-1 file from an SMB mount) prints as \xNN, never a crash.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _install_signal_handlers(stop: Any) -> None:
    def handle(signal_number: int, frame: FrameType | None) -> None:
        logging.getLogger("agent").info("received signal %d: stopping at the next safe point", signal_number)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@app.command(short_help="Run the agent in the foreground (the service runs this).")
def run(config_path: ConfigOption = None, verbose: VerboseOption = False) -> None:
    """Run the agent in the foreground until SIGTERM/SIGINT (resumes where it left off)."""
    from agent.engine import Engine

    config = _load(config_path)
    _setup_logging(config, verbose)
    try:
        engine = Engine(config)
        _install_signal_handlers(engine.stop_event)
        engine.run()
    except HarvestError as error:
        raise _fail(error) from None


@app.command(short_help="Harvest what is there now, deliver it, then exit.")
def scan(
    config_path: ConfigOption = None,
    root: Annotated[list[Path] | None, typer.Option("--root", help="Only this watched root (repeatable).")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Harvest what is there now: settle, deliver, close its datasets, then exit.

    Exit 0 if everything is verified at every destination, 1 if any item failed, 2 for a config error.
    """
    from agent.engine import Engine
    from agent.observe.scan_summary import summarize

    config = _load(config_path)
    if root:
        wanted = {path.absolute() for path in root}
        rules = [rule for rule in config.watch if rule.path.absolute() in wanted]
        if not rules:
            known = ", ".join(str(rule.path) for rule in config.watch)
            raise _fail(FatalError(f"--root must name a watched root; configured: {known}"))
        config = config.model_copy(update={"watch": rules})
    _setup_logging(config, verbose)
    try:
        engine = Engine(config, oneshot=True)
        _install_signal_handlers(engine.stop_event)
        engine.run()
        summary = summarize(config)
    except HarvestError as error:
        raise _fail(error) from None
    typer.echo(summary.text)
    raise typer.Exit(0 if summary.ok else 1)


@app.command(short_help="Is my data safe? One screen; exit 0/1/2.")
def status(
    config_path: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole report as JSON, for scripts.")] = False,
) -> None:
    """Show whether data is safe at the archive: agent, destinations, datasets, errors.

    Exit 0 healthy, 1 degraded (a destination paused, data waiting over a day), 2 down
    (agent not running, or a file or delivery failed): usable as a monitoring check.
    """
    from rich.console import Console

    from agent.observe.status import build_status
    from agent.observe.status_view import status_view

    config = _load(config_path)
    try:
        report = build_status(config.state_dir)
    except HarvestError as error:
        raise _fail(error) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        console = Console()
        console.print(status_view(report, width=console.width))
    raise typer.Exit(report["health"]["code"])


@app.command(short_help="The status screen, live (Ctrl-C leaves).")
def watch(
    config_path: ConfigOption = None,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.", min=0.2)] = 2.0,
) -> None:
    """The status screen, live (Ctrl-C to leave; the agent keeps running)."""
    from agent.observe.watch_view import watch_status

    config = _load(config_path)
    watch_status(config.state_dir, interval)


def _control(config_path: Path | None, command: str, arguments: dict[str, Any]) -> None:
    from agent.controls.channel import send_command

    config = _load(config_path)
    try:
        reply = send_command(config.state_dir, command, {k: v for k, v in arguments.items() if v is not None})
    except HarvestError as error:
        raise _fail(error) from None
    message = str(reply.get("message", ""))
    if reply.get("ok"):
        typer.echo(message)
        raise typer.Exit(0)
    typer.echo(redact(f"harvest: {message}"), err=True)  # the agent said no: an error like any other
    raise typer.Exit(1)


@app.command(short_help="Hold uploads (all destinations, or one).")
def pause(
    destination: Annotated[str | None, typer.Argument(help="Destination name (default: all).")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Stop starting uploads (a transfer in progress stops at its next checkpoint); hashing goes on."""
    _control(config_path, "pause", {"destination": destination})


@app.command(short_help="Resume uploads held by pause.")
def resume(
    destination: Annotated[str | None, typer.Argument(help="Destination name (default: all).")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Resume uploads paused with `harvest pause`."""
    _control(config_path, "resume", {"destination": destination})


@app.command(short_help="Try failed files and deliveries again now.")
def retry(
    item: Annotated[str | None, typer.Argument(help="A failed file (path) or a dataset key.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Retry everything that failed.")] = False,
    config_path: ConfigOption = None,
) -> None:
    """Try failed files and deliveries again now, and probe paused destinations at once."""
    if (item is None) == (not failed):
        raise _fail(FatalError("give either ITEM or --failed"))
    _control(config_path, "retry", {"item": item})


@app.command(short_help="Look through the watched folders now.")
def rescan(
    root: Annotated[str | None, typer.Argument(help="A watched root (path or name; default: all).")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Scan the watched folders now (finds files whose events were missed)."""
    _control(config_path, "rescan", {"root": root})


@app.command(short_help="Check the setup: folders, destinations, clock, limits.")
def doctor(config_path: ConfigOption = None) -> None:
    """Check config, folders, state dir, destinations (write/read/delete), clock, keyring, watch limits.

    Every problem comes with a fix hint. Exit 1 if any check fails (warnings do not fail).
    """
    from agent.cli.doctor import render_checks, run_checks

    path = resolve_config_path(config_path)
    checks = run_checks(path)
    typer.echo(render_checks(checks))
    raise typer.Exit(1 if any(check.level == "fail" for check in checks) else 0)


@app.command(short_help="Show the metadata the agent extracts from files.")
def inspect(
    files: Annotated[list[Path], typer.Argument(help="Files to read (header only).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print the normalised metadata the agent extracts from each file.

    Exit 1 if a file cannot be read or is truncated (it lacks bytes its headers declare)."""
    from rich.console import Console

    from agent.extract import extract_metadata
    from agent.observe.inspect_view import render_metadata

    console = Console()
    failed = False
    for path in files:
        try:
            if not path.is_file():
                raise FileNotFoundError(path)
            metadata = extract_metadata(path)
        except OSError as error:
            reason = error.strerror or "not a readable file"
            typer.echo(f"harvest: {path}: {reason}", err=True)
            failed = True
            continue
        if as_json:
            typer.echo(metadata.model_dump_json())
        else:
            render_metadata(console, str(path), metadata)
        failed = failed or (metadata.completeness is not None and metadata.completeness.state == "truncated")
    if failed:
        raise typer.Exit(1)


@app.command(short_help="Store a destination secret in the OS keyring.")
def login(
    name: Annotated[str, typer.Argument(help="The credential name used in the config (credential: NAME).")],
) -> None:
    """Store a destination secret in the OS keyring, typed without echo.

    tus: the bearer token; S3: ACCESS_KEY_ID:SECRET_ACCESS_KEY; SFTP: a password or a private key file path.
    """
    import getpass

    from agent.secrets import credentials

    secret = getpass.getpass(f"secret for {name} (not shown): ")
    if not secret:
        raise _fail(FatalError("nothing entered; the keyring was not changed"))
    key_path = Path(secret).expanduser()
    if len(secret) < 4096 and key_path.is_file() and "PRIVATE KEY" in key_path.read_text(errors="replace")[:200]:
        secret = key_path.read_text()  # an SFTP private key given by its path
    try:
        credentials.store(name, secret)
    except HarvestError as error:
        raise _fail(error) from None
    typer.echo(f"stored credential {name!r} in the OS keyring (service {credentials.KEYRING_SERVICE!r})")


@config_app.command("check", short_help="Validate a config file (file:line errors).")
def config_check(file: Annotated[Path, typer.Argument(help="The config file to validate.")]) -> None:
    """Validate a config file; print every problem with file:line and key path."""
    try:
        config = load_config(file)
    except ConfigInvalid as error:
        for problem in error.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(2) from None
    except FatalError as error:
        raise _fail(error) from None
    typer.echo(
        f"{file}: OK (instrument {config.instrument.id}, {len(config.watch)} watched root(s),"
        f" {len(config.destinations)} destination(s))"
    )


@config_app.command("show", short_help="Print the effective config, secrets redacted.")
def config_show(config_path: ConfigOption = None) -> None:
    """Print the effective config (defaults filled in, paths resolved) with secrets redacted."""
    from agent.config.show import effective_yaml

    typer.echo(effective_yaml(_load(config_path)), nl=False)


@service_app.command("render", short_help="Print or write the systemd drop-in for the config.")
def service_render(
    config_path: ConfigOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Folder to write harvest-agent.service.d/paths.conf into.")
    ] = None,
) -> None:
    """Print (or write) the systemd drop-in that makes the watched roots read-only for the service."""
    from agent.cli.service import DROP_IN_NAME, render_drop_in

    text = render_drop_in(_load(config_path))
    if output is None:
        typer.echo(text, nl=False)
        return
    target = output / DROP_IN_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {target}; run `systemctl daemon-reload` and restart harvest-agent")


def entry_point() -> None:
    # The pipeline allocates many short-lived objects without cycles (a reconcile, two per
    # file): with Python's default threshold the cyclic collector ran every 700 of them, and
    # took 0.15 s of a 1M-file reconcile's 3.6 s (bench/bench_reconcile.py).
    gc.set_threshold(50_000, 20, 20)
    app()
