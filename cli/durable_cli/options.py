"""Options and parameter types shared by the commands.

Bad input is refused here, before any database is touched, with `click.BadParameter`: the error
boundary in `durable_cli.main` turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:  # click >= 8.4 types ParamType by what it converts to; older click is plain
    _IntParam = click.ParamType[int]
    _AnyParam = click.ParamType[Any]
    _StrParam = click.ParamType[str]
else:
    _IntParam = _AnyParam = _StrParam = click.ParamType

DATABASE_URL_HELP = (
    "PostgreSQL URL of the durable database "
    "[default: $DURABLE_DATABASE_URL, else $DATABASE_URL, else the embedded server]."
)


@dataclass
class CliState:
    """What the ``durable`` group hands to its subcommands."""

    database_url: str | None = None


def database_url(ctx: click.Context) -> str | None:
    """The ``--database-url`` given to this command or to the group, if any."""
    state = ctx.find_object(CliState)
    return state.database_url if state is not None else None


def _remember_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(CliState).database_url = value


def database_url_option(command: F) -> F:
    """``--database-url`` on a subcommand; overrides the one given to the group."""
    return click.option(
        "--database-url",
        metavar="URL",
        expose_value=False,
        callback=_remember_url,
        help=DATABASE_URL_HELP,
    )(command)


def json_option(command: F) -> F:
    """``--json``: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        command
    )


def task_id_argument(command: F) -> F:
    """The ``ID`` argument: a task id."""
    return click.argument("task_id", metavar="ID", type=TaskId())(command)


MAX_TASK_ID = 2**63 - 1  # task ids are Postgres bigints


class TaskId(_IntParam):
    """A task id: a non-negative integer."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            number = int(str(value).strip())
        except ValueError:
            self.fail(f"a task id is an integer, not {value!r}", param, ctx)
        if number < 0:
            self.fail(f"a task id is not negative: {value!r}", param, ctx)
        if number > MAX_TASK_ID:  # ids are bigints: no task can have it
            self.fail(f"no task with id {number}", param, ctx)
        return number


class JsonValue(_AnyParam):
    """Any JSON value (``--arg '{"a": 1}'``, ``--arg 3``, ``--arg '"text"'``)."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError as error:
            self.fail(f"not valid JSON ({error}): {_shorten(value)}", param, ctx)


class JsonObject(JsonValue):
    """A JSON object (``--kwargs '{"a": 1}'``)."""

    name = "json-object"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dict[str, Any]:
        parsed = super().convert(value, param, ctx)
        if not isinstance(parsed, dict):
            self.fail(f"expected a JSON object, got {_json_type(parsed)}", param, ctx)
        return parsed


class WorkflowReference(_StrParam):
    """A workflow reference ``module:qualname``; checked for shape only."""

    name = "module:function"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        module, sep, qualname = text.partition(":")
        if not sep or not module.strip() or not qualname.strip():
            self.fail(f"expected 'module:function', got {text!r}", param, ctx)
        return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
    }.get(type(value), type(value).__name__)


def _shorten(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")
