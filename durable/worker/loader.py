"""Resolve ``module:qualname`` to a registered workflow, refusing everything else.

Whoever can launch a task chooses the reference, so two rules keep a task from running code
the worker's operator did not mean to run (SPEC 5):

- The module is imported only if its file lies under the application directory (the
  directory the worker was started in), or it was named by ``--import``, or it starts with an
  ``--allow-module`` prefix. Anything else (the standard library, installed packages,
  ``unittest.__main__``) is refused *before* it is imported: its location is read from its
  import spec, one package level at a time, so no parent package of a refused module runs
  either. Files under the interpreter's own directories (a virtual environment kept inside the
  application directory, say) do not count as the application's.
- The object named must have been made by ``@durable.workflow``: ``os:system`` never runs.

Whatever an import raises (``SystemExit`` and ``KeyboardInterrupt`` included) becomes a
`WorkflowNotFound` for that task: nothing a task names can stop the worker.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import site
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from functools import cache
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

from durable.errors import WorkflowNotFound
from durable.workflow import Workflow


class Loader:
    """Imports workflow modules on demand, under the import policy, and caches what it found.

    Args:
        allow_modules: module prefixes that may be imported wherever they live.
        app_dir: the application directory (default: the current directory).
        imports: modules imported by `import_modules` (``--import``); tasks may name them.
    """

    def __init__(
        self,
        allow_modules: Sequence[str] = (),
        *,
        app_dir: str | os.PathLike[str] | None = None,
        imports: Sequence[str] = (),
    ) -> None:
        self.allow_modules = tuple(allow_modules)
        self.app_dir = Path(app_dir if app_dir is not None else os.getcwd()).resolve()
        self.imports = tuple(imports)
        self._cache: dict[str, Workflow] = {}

    def import_modules(self) -> None:
        """Import the ``imports`` modules (at worker start).

        Raises:
            WorkflowNotFound: one of them does not import (one line naming it and why).
        """
        for module in self.imports:
            _import(module, f"cannot import {module!r} (--import)")

    def allowed(self, module: str) -> bool:
        """Whether ``module`` may be imported wherever it lives (``--import``,
        ``--allow-module``); other modules must lie under the application directory."""
        return module in self.imports or any(
            module == p or module.startswith(p.rstrip(".") + ".") for p in self.allow_modules
        )

    def load(self, reference: str) -> Workflow:
        """The workflow named by ``reference``, or WorkflowNotFound with a clear reason."""
        cached = self._cache.get(reference)
        if cached is not None:
            return cached
        module_name, sep, qualname = reference.partition(":")
        if not sep or not module_name or not qualname:
            raise WorkflowNotFound(
                f"bad workflow reference {reference!r}: expected module:function"
            )
        if self.allowed(module_name):
            target: object = _import(
                module_name, f"cannot import module {module_name!r} for {reference!r}"
            )
        else:
            target = self._import_from_app(module_name, reference)
        target = _attribute(target, module_name, qualname)
        if not isinstance(target, Workflow):
            raise WorkflowNotFound(f"{reference!r} is not a @durable.workflow; refusing to run it")
        self._cache[reference] = target
        return target

    def _import_from_app(self, module_name: str, reference: str) -> ModuleType:
        """Import ``module_name`` one package level at a time, each checked before it runs."""
        parts = module_name.split(".")
        module: ModuleType | None = None
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            loaded = sys.modules.get(name)
            if loaded is not None:
                spec = getattr(loaded, "__spec__", None)
            else:
                try:
                    # For a top-level name this imports nothing; deeper, only the parents
                    # already checked (and imported) on earlier turns.
                    spec = importlib.util.find_spec(name)
                except BaseException as error:  # a finder may raise anything
                    raise _not_imported(module_name, reference, error) from None
                if spec is None:
                    raise WorkflowNotFound(
                        f"cannot import module {module_name!r} for {reference!r}: "
                        f"no module named {name!r}"
                    )
            if not self._in_app(spec):
                raise WorkflowNotFound(
                    f"refusing to import {name!r}: it is not under the worker's application "
                    f"directory {self.app_dir} (allow it with --allow-module {name} or "
                    f"--import {module_name})"
                )
            module = _import(name, f"cannot import module {module_name!r} for {reference!r}")
        assert module is not None
        return module

    def _in_app(self, spec: ModuleSpec | None) -> bool:
        """Whether every file or directory ``spec`` loads from lies under the app directory."""
        if spec is None:
            return False
        places = list(spec.submodule_search_locations or ())
        if spec.has_location and spec.origin:
            places.append(spec.origin)
        if not places:  # built-in or frozen modules (sys, builtins), or a loader of its own
            return False
        return all(self._is_app_file(place) for place in places)

    def _is_app_file(self, place: str) -> bool:
        try:
            path = Path(place).resolve()
        except (OSError, RuntimeError, ValueError):
            return False
        if not path.is_relative_to(self.app_dir):
            return False
        # An interpreter directory inside the app directory (./.venv) is not the app's; one
        # that *is* the app directory (a virtual environment made in place) cannot be told
        # apart from it, so it does not count.
        return not any(
            path.is_relative_to(d) and d != self.app_dir and d.is_relative_to(self.app_dir)
            for d in _interpreter_dirs()
        )


def _import(module: str, failure: str) -> ModuleType:
    """Import ``module``; whatever it raises becomes one WorkflowNotFound line."""
    try:
        return importlib.import_module(module)
    except BaseException as error:  # SystemExit in a module must not end the worker
        raise WorkflowNotFound(f"{failure}: {_describe(error)}") from None


def _attribute(target: object, module_name: str, qualname: str) -> object:
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise WorkflowNotFound(
                f"module {module_name!r} has no attribute {qualname!r}"
            ) from None
        except BaseException as error:  # a module __getattr__ may raise anything
            raise WorkflowNotFound(
                f"cannot read {qualname!r} of module {module_name!r}: {_describe(error)}"
            ) from None
    return target


def _not_imported(module_name: str, reference: str, error: BaseException) -> WorkflowNotFound:
    return WorkflowNotFound(
        f"cannot import module {module_name!r} for {reference!r}: {_describe(error)}"
    )


def _describe(error: BaseException) -> str:
    """``Type: message`` on one line, even if the error's ``str()`` raises."""
    try:
        text = " ".join(str(error).split())
    except BaseException:  # a broken __str__ must not escape
        text = "<str() failed>"
    name = type(error).__name__
    return f"{name}: {text}" if text else name


@cache
def _interpreter_dirs() -> tuple[Path, ...]:
    """Where the interpreter and installed packages live (stdlib, site-packages, prefixes)."""
    places: list[str] = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    paths = sysconfig.get_paths()
    places += [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    places += _site_dirs()
    resolved: list[Path] = []
    for place in places:
        try:
            resolved.append(Path(place).resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    return tuple(dict.fromkeys(resolved))


def _site_dirs() -> Iterable[str]:
    # site.getsitepackages is missing in some embedded interpreters.
    getsitepackages = getattr(site, "getsitepackages", None)
    if getsitepackages is not None:
        yield from getsitepackages()
    user_site = getattr(site, "getusersitepackages", None)
    if user_site is not None:
        yield user_site()
