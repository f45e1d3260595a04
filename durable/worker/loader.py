"""Resolve ``module:qualname`` to a registered workflow, refusing everything else.

``os:system`` must never run: a reference is accepted only if the object it names was made by
``@durable.workflow``. ``--allow-module`` prefixes restrict which modules may be imported at all.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from durable.errors import WorkflowNotFound
from durable.workflow import Workflow


class Loader:
    """Imports workflow modules on demand and caches what it found."""

    def __init__(self, allow_modules: Sequence[str] = ()) -> None:
        self.allow_modules = tuple(allow_modules)
        self._cache: dict[str, Workflow] = {}

    def allowed(self, module: str) -> bool:
        """Whether ``module`` may be imported under the allow-list."""
        if not self.allow_modules:
            return True
        return any(
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
        if not self.allowed(module_name):
            raise WorkflowNotFound(
                f"module {module_name!r} is not allowed by --allow-module on this worker"
            )
        try:
            target: object = importlib.import_module(module_name)
        except Exception as error:
            raise WorkflowNotFound(
                f"cannot import module {module_name!r} for {reference!r}: "
                f"{type(error).__name__}: {error}"
            ) from error
        for part in qualname.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise WorkflowNotFound(
                    f"module {module_name!r} has no attribute {qualname!r}"
                ) from None
        if not isinstance(target, Workflow):
            raise WorkflowNotFound(f"{reference!r} is not a @durable.workflow; refusing to run it")
        self._cache[reference] = target
        return target
