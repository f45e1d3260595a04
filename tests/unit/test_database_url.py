"""A URL whose password breaks parsing gives one line with the password masked (SPEC 6).

An unescaped ``/``, ``#``, ``?``, ``[`` or ``@`` in a password makes the URL parser cut the
password there; the driver's error then quotes the rest, i.e. part of the password
("invalid literal for int() with base 10: 'se'"). The CLI, the worker and `durable.Client`
(its exception chain included) must show none of it.
"""

from __future__ import annotations

import re
import traceback

import pytest
from click.testing import CliRunner

import durable
from durable.config import check_database_url
from durable_cli import main
from durable_cli import worker as worker_cli

# Passwords made of pieces (Zq1, Xw2, ...) that appear nowhere else, split by delimiters.
BROKEN = [
    "postgresql://someone:Zq1/Xw2#Vk3?Ty4@127.0.0.1:5432/db",
    "postgresql://someone:Zq1#Xw2/Vk3@127.0.0.1:5432/db",
    "postgresql://someone:Zq1[Xw2@127.0.0.1:5432/db",
    "postgresql://someone:Zq1?Xw2=Vk3@127.0.0.1:5432/db",
    "postgres://someone:Zq1/Xw2@Vk3@127.0.0.1:5432/db",
]


def leaks(text: str, url: str) -> list[str]:
    """The pieces of ``url``'s password that appear in ``text``."""
    password = url.split("://", 1)[1].split(":", 1)[1].rpartition("@")[0]
    return [piece for piece in re.split(r"[/#?\[@=]", password) if piece and piece in text]


@pytest.mark.parametrize("url", BROKEN)
def test_check_database_url_names_the_problem_and_masks_the_password(url: str) -> None:
    with pytest.raises(durable.DatabaseUnavailable) as caught:
        check_database_url(url)
    message = str(caught.value)
    assert "invalid database URL postgres" in message and "***" in message
    assert "percent-encode" in message
    assert leaks(message, url) == []
    assert caught.value.__cause__ is None and caught.value.__context__ is None


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://someone:s%2Fcret@127.0.0.1:5432/db",
        "postgresql://someone@/db?host=/run/postgresql",
        "postgresql://someone:pw@h1:5432,h2:5433/db?sslmode=require",
        "postgresql://someone:pw@[::1]:5432/db",
        "postgresql+asyncpg://someone:pw@localhost/db",
        "host=localhost dbname=db",  # a libpq keyword string: left to the driver
    ],
)
def test_usable_urls_pass(url: str) -> None:
    check_database_url(url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://someone:pw@127.0.0.1:99999/db", "port must be a number"),
        ("postgresql://someone:pw@127.0.0.1:5432/db?port=x", "port must be a number"),
        ("postgresql://someone:pw@127.0.0.1:5432/db?sslpassword", "query does not parse"),
    ],
)
def test_other_malformed_urls(url: str, problem: str) -> None:
    with pytest.raises(durable.DatabaseUnavailable, match=problem):
        check_database_url(url)


@pytest.mark.parametrize("url", BROKEN)
async def test_the_client_and_its_exception_chain_show_no_password(url: str) -> None:
    with pytest.raises(durable.DatabaseUnavailable) as caught:
        async with durable.Client(url):
            pass
    shown = "".join(traceback.format_exception(caught.value))
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert leaks(shown + "".join(repr(e) for e in chain), url) == []


@pytest.mark.parametrize("url", BROKEN)
def test_the_cli_and_the_worker_exit_2_with_one_masked_line(url: str) -> None:
    for command, args in (
        (main.cli, ["--database-url", url, "list"]),
        (worker_cli.worker, ["--database-url", url, "--connect-timeout", "0"]),
    ):
        result = CliRunner().invoke(command, args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "invalid database URL" in lines[0], result.stderr
        assert leaks(result.output, url) == []
