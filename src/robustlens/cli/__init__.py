"""``robustlens`` command line.

Exit codes: 0 success, 2 bad input (one line on stderr naming the culprit), 1 internal error.
Each subcommand lives in its own module and is registered below.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable

import click

from ..errors import BadInput, printable
from .common import VERBOSITY

EPILOG = """\b
Examples:
  robustlens run                                   # the embedded default study + report
  robustlens map --mesh demo:mug --grid azimuth=0:360:3 --grid elevation=-10:90:3 --out out/mug
  robustlens regions --mesh demo:mug --map out/mug/map.nc --method oir_b --out out/mug_regions
  robustlens srvr --model default --model efficientnet_lite2 --mesh demo:mug --out out/srvr
  robustlens score --data boxes.csv --cam gradcam++ --out out/scores
  robustlens models    robustlens meshes    robustlens params    robustlens layers

Exit codes: 0 ok, 2 bad input, 1 internal error."""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"],
                                               "max_content_width": 100})
@click.version_option(package_name="robustlens")
@click.option("--quiet", "-q", is_flag=True, help="Only errors; no progress bars.")
@click.option("--verbose", "-v", is_flag=True, help="More detail on stderr.")
def cli(quiet: bool, verbose: bool) -> None:
    """robustlens: where and why your image classifier is not robust."""
    _set_verbosity(0 if quiet else (2 if verbose else 1))


def _set_verbosity(level: int) -> None:
    VERBOSITY["level"] = level
    # --quiet: only errors, library WARNING lines (logger ``robustlens``) included
    for h in logging.getLogger("robustlens").handlers:
        if isinstance(h, _StderrHandler):
            h.setLevel(logging.ERROR if level == 0 else logging.WARNING)
    warnings.resetwarnings()
    if level < 2:
        # library warnings (numpy overflow on absurd input, torch deprecations) are not the
        # user's business and would break the one-line error contract; -v shows them
        warnings.simplefilter("ignore")


def _verbosity_flag(level: int) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            _set_verbosity(level)
    return callback


def _add_verbosity_options(cmd: click.Command) -> click.Command:
    """``-q`` / ``-v`` after the subcommand too (``robustlens run -q``), as before it."""
    cmd.params += [
        click.Option(["--quiet", "-q"], is_flag=True, expose_value=False, is_eager=True,
                     callback=_verbosity_flag(0), help="Only errors; no progress."),
        click.Option(["--verbose", "-v"], is_flag=True, expose_value=False, is_eager=True,
                     callback=_verbosity_flag(2),
                     help="More detail: each model's preprocessing and identity, each "
                          "step's key and why it was reused or run, library warnings."),
    ]
    return cmd


# subcommand modules; each defines a click command object named ``command`` (or ``commands``)
_SUBCOMMANDS = ["map", "models", "meshes", "regions", "srvr", "score", "attack", "run",
                "report"]
for _name in _SUBCOMMANDS:
    try:
        _mod = importlib.import_module(f"robustlens.cli.{_name}_cmd")
    except ModuleNotFoundError as _exc:  # a subcommand not written yet
        if _exc.name != f"robustlens.cli.{_name}_cmd":
            raise
        continue
    for _cmd in getattr(_mod, "commands", [getattr(_mod, "command", None)]):
        if _cmd is not None:
            cli.add_command(_add_verbosity_options(_cmd))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def _show_warnings() -> None:
    """robustlens' WARNING lines (logger ``robustlens``: a missing texture, a refused file)
    go to stderr as ``warning: ...``; installed once."""
    logger = logging.getLogger("robustlens")
    if any(isinstance(h, _StderrHandler) for h in logger.handlers):
        return
    handler = _StderrHandler()
    handler.setLevel(logging.ERROR if VERBOSITY["level"] == 0 else logging.WARNING)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.WARNING:
        logger.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map errors to exit codes."""
    _show_warnings()
    try:
        cli.main(args=argv, prog_name="robustlens", standalone_mode=False)
    except click.exceptions.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)  # UsageError has one, a plain ClickException not
        ctx_cmd = f" (see `robustlens {ctx.info_name} --help`)" if ctx is not None \
            and ctx.info_name != "robustlens" else ""
        print(f"error: {exc.format_message()}{ctx_cmd}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BadInput as exc:
        from .params import cli_message

        print(f"error: {printable(cli_message(exc))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:
        from ..io import DISK_FULL

        if exc.errno not in DISK_FULL:
            _internal_error()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {printable(where)}cannot write: {os.strerror(exc.errno or 0)} (results "
              f"finished before it are complete and kept)", file=sys.stderr)
        sys.exit(2)
    except Exception:
        _internal_error()
    sys.exit(0)


def _internal_error() -> None:
    traceback.print_exc()
    print("error: internal error (a bug in robustlens, please report it with the traceback "
          "above)", file=sys.stderr)
    sys.exit(1)
