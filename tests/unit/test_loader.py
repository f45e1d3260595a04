"""The worker runs only @durable.workflow functions, imported only from where it may (SPEC 5).

Modules outside the application directory are refused *before* they are imported: the
modules these tests write record their own import in a marker file, so a refusal that ran
them anyway fails here.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable.errors import WorkflowNotFound
from durable.worker import loader as loader_module
from durable.worker.loader import Loader

WORKFLOW_MODULE = """
import pathlib
import durable

pathlib.Path({marker!r}).write_text("imported")

@durable.workflow
async def wf(ctx):
    return "ran"
"""


@pytest.fixture
def places(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An application directory and a directory outside it, both on sys.path."""
    app, outside = tmp_path / "app", tmp_path / "elsewhere"
    app.mkdir()
    outside.mkdir()
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    sys.path[:0] = [str(app), str(outside)]
    yield app, outside
    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        del sys.modules[name]


def write_module(where: Path, dotted: str, body: str) -> Path:
    """Write module ``dotted`` (packages included) under ``where``; return its file."""
    parts = dotted.split(".")
    directory = where
    for package in parts[:-1]:
        directory = directory / package
        directory.mkdir(exist_ok=True)
        (directory / "__init__.py").touch()
    path = directory / f"{parts[-1]}.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_loads_a_registered_workflow() -> None:
    workflow = Loader().load("examples.hello_world:main")
    assert workflow.reference == "examples.hello_world:main"


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("os:system", "refusing to import 'os'"),
        ("unittest.__main__:x", "refusing to import 'unittest'"),
        ("pytest:main", "refusing to import 'pytest'"),
        ("sys:exit", "refusing to import 'sys'"),
        ("tests.acceptance.workflows:not_a_workflow", "not a @durable.workflow"),
        ("durable.client:Client", "not a @durable.workflow"),
        ("no_such_module_xyz:main", "no module named 'no_such_module_xyz'"),
        ("examples.hello_world:nope", "has no attribute"),
        ("nocolon", "bad workflow reference"),
    ],
)
def test_refuses_what_is_not_an_application_workflow(reference: str, reason: str) -> None:
    with pytest.raises(WorkflowNotFound, match=reason):
        Loader().load(reference)


def test_a_module_outside_the_app_directory_is_refused_without_being_imported(
    places: tuple[Path, Path],
) -> None:
    app, outside = places
    marker = outside / "marker"
    write_module(outside, "outside_flows", WORKFLOW_MODULE.format(marker=str(marker)))
    package_marker = outside / "package-marker"
    write_module(outside, "outside_pkg.flows", WORKFLOW_MODULE.format(marker=str(marker)))
    (outside / "outside_pkg" / "__init__.py").write_text(
        f"import pathlib; pathlib.Path({str(package_marker)!r}).write_text('imported')\n"
    )
    loader = Loader(app_dir=app)
    with pytest.raises(WorkflowNotFound, match="refusing to import 'outside_flows'"):
        loader.load("outside_flows:wf")
    with pytest.raises(WorkflowNotFound, match="refusing to import 'outside_pkg'"):
        loader.load("outside_pkg.flows:wf")
    assert not marker.exists() and not package_marker.exists()
    assert "outside_flows" not in sys.modules and "outside_pkg" not in sys.modules


def test_a_module_under_the_app_directory_is_imported(places: tuple[Path, Path]) -> None:
    app, _outside = places
    marker = app / "marker"
    write_module(app, "shop.flows", WORKFLOW_MODULE.format(marker=str(marker)))
    assert Loader(app_dir=app).load("shop.flows:wf").reference == "shop.flows:wf"
    assert marker.exists()


def test_allow_module_and_import_widen_the_policy(places: tuple[Path, Path]) -> None:
    app, outside = places
    for name in ("allowed_pkg.flows", "imported_flows", "other_flows"):
        write_module(outside, name, WORKFLOW_MODULE.format(marker=str(outside / name)))
    loader = Loader(["allowed_pkg"], app_dir=app, imports=["imported_flows"])
    assert loader.allowed("allowed_pkg.flows") and loader.allowed("imported_flows")
    assert not loader.allowed("allowed_pkg_2") and not loader.allowed("other_flows")
    loader.import_modules()
    assert (outside / "imported_flows").exists()
    assert loader.load("imported_flows:wf").reference == "imported_flows:wf"
    assert loader.load("allowed_pkg.flows:wf").reference == "allowed_pkg.flows:wf"
    with pytest.raises(WorkflowNotFound, match="refusing to import 'other_flows'"):
        loader.load("other_flows:wf")


def test_an_interpreter_directory_inside_the_app_directory_is_not_the_app(
    places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _outside = places
    site_packages = app / ".venv" / "lib" / "site-packages"
    site_packages.mkdir(parents=True)
    sys.path.insert(0, str(site_packages))
    write_module(site_packages, "installed_flows", WORKFLOW_MODULE.format(marker=str(app / "m")))
    monkeypatch.setattr(loader_module, "_interpreter_dirs", lambda: (site_packages.resolve(),))
    with pytest.raises(WorkflowNotFound, match="refusing to import 'installed_flows'"):
        Loader(app_dir=app).load("installed_flows:wf")
    assert not (app / "m").exists()


@pytest.mark.parametrize(
    ("raised", "shown"),
    [
        ("SystemExit(3)", "SystemExit: 3"),
        ("KeyboardInterrupt()", "KeyboardInterrupt"),
        ("type('Odd', (BaseException,), {})('odd')", "Odd: odd"),
        ("type('Bad', (Exception,), {'__str__': lambda self: 1 / 0})()", "Bad: <str() failed>"),
    ],
)
def test_whatever_an_import_raises_becomes_workflow_not_found(
    places: tuple[Path, Path], raised: str, shown: str
) -> None:
    app, _outside = places
    write_module(app, "raising_flows", f"raise {raised}\n")
    with pytest.raises(WorkflowNotFound, match="cannot import module 'raising_flows'") as caught:
        Loader(app_dir=app).load("raising_flows:wf")
    assert shown in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_import_flag_that_raises_is_one_clear_error(places: tuple[Path, Path]) -> None:
    app, _outside = places
    write_module(app, "exits_on_import", "raise SystemExit(0)\n")
    with pytest.raises(WorkflowNotFound, match=r"cannot import 'exits_on_import' \(--import\)"):
        Loader(app_dir=app, imports=["exits_on_import"]).import_modules()
