"""Python twins of the collection's host scripts.

Each module ``tests/lab/twins/<name>.py`` is the twin of ``plugins/host_scripts/<name>.ps1`` and exposes
``run(host, params) -> dict``: it reads or changes the lab host model exactly as the script reads or
changes Windows. A twin reports a script failure by raising :class:`TwinError`; the lab turns it into
the bootstrap's error document (docs/dev/contracts.md, section 1).

Twin authors only add modules: every module of this package that defines ``run`` is registered in
:data:`TWINS` under its module name when the package is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing as t


class TwinError(Exception):
    """A host script failure as the bootstrap reports it (the exception PowerShell would throw).

    ``type`` is the .NET exception's full name (e.g. ``System.UnauthorizedAccessException``),
    ``line`` the script line that threw (0 when unknown), ``category`` the PowerShell ErrorCategory.
    """

    def __init__(self, type: str, message: str, line: int = 0, category: str = "NotSpecified") -> None:  # pylint: disable=redefined-builtin
        super().__init__(message)
        self.type = type
        self.message = message
        self.line = line
        self.category = category


Twin = t.Callable[[t.Any, t.Dict[str, t.Any]], t.Dict[str, t.Any]]


def _discover() -> dict[str, Twin]:
    """Import every module of this package and collect its ``run`` function."""
    twins: dict[str, Twin] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        run = getattr(module, "run", None)
        if callable(run):
            twins[info.name] = run
    return twins


TWINS: dict[str, Twin] = _discover()
