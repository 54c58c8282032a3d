"""The reference tables under data/, loaded once per process."""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import typing as t

DATA = pathlib.Path(__file__).resolve().parent / "data"

# about_CommonParameters (Windows PowerShell 5.1): every cmdlet and advanced function takes these.
# WhatIf and Confirm are listed per cmdlet in the table, where the cmdlet supports them.
COMMON_PARAMETERS: dict[str, tuple[str, ...]] = {
    "Debug": ("db",), "ErrorAction": ("ea",), "ErrorVariable": ("ev",), "InformationAction": ("infa",),
    "InformationVariable": ("iv",), "OutBuffer": ("ob",), "OutVariable": ("ov",), "PipelineVariable": ("pv",),
    "Verbose": ("vb",), "WarningAction": ("wa",), "WarningVariable": ("wv",),
}


NEWEST_DOCSET = "2025"


@dataclasses.dataclass(frozen=True)
class Cmdlet:
    """One cmdlet of the table."""

    name: str
    module: str
    docsets: tuple[str, ...]
    parameters: dict[str, tuple[str, ...]]  # name -> aliases

    @property
    def in_server_2016(self) -> bool:
        """Part of Windows PowerShell 5.1 itself, or documented for Windows Server 2016 (the oldest docset)."""
        return "core" in self.docsets or "2016" in self.docsets

    @property
    def in_newest_server(self) -> bool:
        """Part of Windows PowerShell 5.1, or still documented for the newest Windows Server docset."""
        return "core" in self.docsets or NEWEST_DOCSET in self.docsets


def _load(name: str) -> t.Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@functools.cache
def cmdlet_table() -> dict[str, t.Any]:
    """data/ps51-cmdlets.json as loaded."""
    return t.cast(dict[str, t.Any], _load("ps51-cmdlets.json"))


@functools.cache
def cmdlets() -> dict[str, Cmdlet]:
    """Every cmdlet by lower-case name."""
    return {name.lower(): Cmdlet(name, entry["module"], tuple(entry["docsets"]),
                                 {p.split("|")[0]: tuple(p.split("|")[1:]) for p in entry["parameters"]})
            for name, entry in cmdlet_table()["cmdlets"].items()}


@functools.cache
def command_aliases() -> dict[str, str]:
    """Default command alias (lower case) -> cmdlet name, Windows PowerShell 5.1."""
    return t.cast(dict[str, str], cmdlet_table()["aliases"])


@functools.cache
def type_accelerators() -> dict[str, str]:
    """Type accelerator (lower case) -> full type name, Windows PowerShell 5.1."""
    return t.cast(dict[str, str], cmdlet_table()["type_accelerators"])


@functools.cache
def ws2012r2_parameters() -> dict[str, tuple[str, ...]]:
    """Lower-case cmdlet name -> the parameters it has on Windows Server 2012 R2."""
    return {name.lower(): tuple(entry["parameters"]) for name, entry in _load("ws2012r2-parameters.json")["cmdlets"].items()}


@functools.cache
def dotnet45_types() -> frozenset[str]:
    """Lower-case full names of .NET types known to exist in .NET Framework 4.5."""
    return frozenset(name.lower() for name in _load("dotnet45-types.json")["types"])


@functools.cache
def dotnet_newer_types() -> dict[str, str]:
    """Lower-case full name -> the .NET Framework version it needs (with its source)."""
    return {name.lower(): why for name, why in _load("dotnet45-types.json")["newer"].items()}


@functools.cache
def dotnet_full_names() -> tuple[str, ...]:
    """Every full type name of data/dotnet45-types.json (known and newer), as written there."""
    loaded = _load("dotnet45-types.json")
    return tuple(loaded["types"]) + tuple(loaded["newer"])


@functools.cache
def native_commands() -> frozenset[str]:
    """Lower-case native executables a script may call."""
    return frozenset(name.lower() for name in _load("windows-commands.json")["commands"])
