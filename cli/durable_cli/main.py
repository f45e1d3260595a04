"""The ``durable`` command group and the one error boundary of the command line.

Every command runs inside `guarded`: a `durable.DurableError`, a click usage error or bad
parameter, or anything unexpected becomes one line on stderr (never a traceback, never a
password) and an exit code from `durable_cli.exit_codes`; Ctrl-C exits 130 quietly. Commands
return their exit code, one of `ExitCode` (anything else is reported as a bug and exits 1).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

import click

import durable
import durable_cli.checking
from durable.config import mask_password
from durable_cli import admin, promises, tasks
from durable_cli import queues as queue_commands
from durable_cli import schedules as schedule_commands
from durable_cli import serve as serve_command
from durable_cli.exit_codes import ExitCode, for_exception
from durable_cli.options import DATABASE_URL_HELP, CliState

URL_ENV_VARS = ("DURABLE_DATABASE_URL", "DATABASE_URL")
_URL_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_MIN_SECRET = 4  # shorter passwords are masked inside URLs only, not as bare substrings


def guarded(invoke: Callable[[], Any], argv: Sequence[str] = ()) -> int:
    """Run ``invoke`` (a click ``main`` in non-standalone mode) and return the exit code."""
    try:
        result = invoke()
    except click.exceptions.Exit as done:
        return done.exit_code
    except (click.Abort, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    except click.exceptions.NoArgsIsHelpError as error:
        # `durable` alone: the help, as click prints it (not flattened into an error line).
        click.echo(error.format_message(), err=True)
        return ExitCode.BAD_INPUT
    except click.ClickException as error:
        message = error.format_message()
        if isinstance(error, click.UsageError) and error.ctx is not None:
            message += f" (see '{error.ctx.command_path} --help')"
        _report(message, argv)
        return for_exception(error)
    except durable.DurableError as error:
        _report(str(error), argv)
        return for_exception(error)
    except (Exception, asyncio.CancelledError) as error:  # a bug, or an unwrapped error
        _report(f"unexpected error: {type(error).__name__}: {error}", argv)
        return ExitCode.FAILED
    return _exit_code(result, argv)


def _exit_code(result: Any, argv: Sequence[str]) -> int:
    """A command's return value as the process exit code.

    Only the codes of `ExitCode` pass (None is success): any other number, a task id say,
    would become ``number % 256`` on the way out, an exit code that means nothing.
    """
    if result is None:
        return ExitCode.OK
    try:
        return ExitCode(result)
    except ValueError:
        _report(f"unexpected error: the command returned {result!r}, not an exit code", argv)
        return ExitCode.FAILED


def _report(message: str, argv: Sequence[str]) -> None:
    line = " ".join(message.split()) or "error"
    click.echo(f"Error: {_mask(line, argv)}", err=True)


def _mask(text: str, argv: Sequence[str]) -> str:
    """``text`` without the password of any database URL we were given."""
    text = _URL_TOKEN.sub(lambda m: mask_password(m.group(0)), text)
    for secret in _secrets(argv):
        text = text.replace(secret, "***")
    return text


def _secrets(argv: Sequence[str]) -> Iterable[str]:
    urls = [os.environ.get(name, "") for name in URL_ENV_VARS]
    for i, arg in enumerate(argv):
        if arg == "--database-url" and i + 1 < len(argv):
            urls.append(argv[i + 1])
        elif arg.startswith("--database-url="):
            urls.append(arg.partition("=")[2])
    for url in filter(None, urls):
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        for secret in (password, unquote(password or "")):
            if secret and len(secret) >= _MIN_SECRET:
                yield secret


def _standalone(
    main: Callable[..., Any], args: Sequence[str] | None, standalone_mode: bool, **kwargs: Any
) -> Any:
    if not standalone_mode:
        return main(args, standalone_mode=False, **kwargs)
    argv = list(sys.argv[1:] if args is None else args)
    sys.exit(guarded(lambda: main(args, standalone_mode=False, **kwargs), argv))


class _GuardedMain:
    """Makes a click command's ``main`` the error boundary."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        return _standalone(
            super().main,  # type: ignore[misc]
            args,
            standalone_mode,
            prog_name=prog_name,
            complete_var=complete_var,
            windows_expand_args=windows_expand_args,
            **extra,
        )


class GuardedGroup(_GuardedMain, click.Group):
    """A click group whose ``main`` is the error boundary."""


class GuardedCommand(_GuardedMain, click.Command):
    """A click command whose ``main`` is the error boundary (``durable-worker``)."""


@click.group("durable", cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", metavar="URL", default=None, help=DATABASE_URL_HELP)
@click.version_option(durable.__version__, prog_name="durable")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """durable: launch, follow and inspect durable tasks; migrate the schema.

    Exit codes: 0 ok, 1 failed, 2 bad input (bad JSON, unknown id, unreachable database),
    3 cancelled, 124 timeout.
    """
    ctx.ensure_object(CliState).database_url = database_url or None


for _command in (*tasks.COMMANDS, *promises.COMMANDS, *admin.COMMANDS):
    cli.add_command(_command)
for _command in durable_cli.checking.COMMANDS:
    cli.add_command(_command)
for _command in queue_commands.COMMANDS:
    cli.add_command(_command)
for _command in schedule_commands.COMMANDS:
    cli.add_command(_command)
cli.add_command(serve_command.serve)


def main() -> NoReturn:
    """Entry point of the ``durable`` console script."""
    cli.main(prog_name="durable")
    raise SystemExit(0)  # pragma: no cover - main() always exits


if __name__ == "__main__":
    main()
