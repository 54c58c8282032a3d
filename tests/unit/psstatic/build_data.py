"""Regenerate data/ps51-cmdlets.json from the project's extraction of Microsoft's reference docs.

Not run by the tests: the output is committed. Run it when the reference table or the docs change:

    python -m tests.unit.psstatic.build_data /work/shared/reference/ps51-cmdlets.json <PowerShell-Docs checkout>

Inputs:
* ``ps51-cmdlets.json``: every cmdlet of Windows PowerShell 5.1 (MicrosoftDocs/PowerShell-Docs
  ``reference/5.1``) and of the Windows Server modules (MicrosoftDocs/windows-powershell-docs
  ``docset/winserver{2016,2019,2022,2025}-ps``), with module, parameters and parameter aliases.
  Its alias lists carry extraction noise where a parameter has no alias (the next YAML line,
  ``Required: ...`` or ``Accepted values: ...``); that is dropped here.
* a git checkout of MicrosoftDocs/PowerShell-Docs: the command aliases Windows PowerShell 5.1
  defines ("Windows PowerShell includes the following aliases for `X`:" in each cmdlet's NOTES) and
  the type accelerators (``about_Type_Accelerators``).
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import typing as t

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "data" / "ps51-cmdlets.json"
DOCS_51 = "reference/5.1"


def clean_aliases(values: list[str]) -> list[str]:
    """Parameter aliases without the extraction noise (a first entry like 'Required: False')."""
    if not values or ":" in values[0] or " " in values[0]:
        return []
    return [v for v in values if re.fullmatch(r"[A-Za-z_?][\w-]*", v)]


def git_files(checkout: pathlib.Path, prefix: str) -> list[str]:
    """Paths under ``prefix`` at HEAD of a (possibly bare) git checkout."""
    out = subprocess.run(["git", "-C", str(checkout), "ls-tree", "-r", "--name-only", "HEAD", prefix],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def git_show(checkout: pathlib.Path, path: str) -> str:
    """A file's text at HEAD."""
    return subprocess.run(["git", "-C", str(checkout), "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout


def command_aliases(checkout: pathlib.Path) -> dict[str, str]:
    """alias -> cmdlet, from every 5.1 cmdlet page: the ``aliases:`` front matter and the NOTES list."""
    aliases: dict[str, str] = {}
    for path in git_files(checkout, DOCS_51):
        if "/About/" in path or not path.endswith(".md"):
            continue
        text = git_show(checkout, path)
        cmdlet = pathlib.PurePosixPath(path).stem
        front = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
        if front:
            block = re.search(r"^aliases:\n((?:\s+- .*\n)+)", front.group(1) + "\n", re.MULTILINE)
            for item in re.findall(r"- (\S+)", block.group(1)) if block else []:
                aliases[item.strip("`'\"").lower()] = cmdlet
        lines = text.splitlines()
        for index, line in enumerate(lines):
            match = re.match(r"(?:Windows )?PowerShell includes the following aliases for `([\w-]+)`:", line.strip())
            if not match:
                continue
            items: list[str] = []
            for item in lines[index + 1:]:
                found = re.match(r"\s*- `([^`]+)`\s*$", item)
                if found:
                    items.append(found.group(1))
                elif item.strip() or items:
                    break
            for item in items:
                aliases[item.lower()] = match.group(1)
    return {a: c for a, c in sorted(aliases.items()) if a != c.lower() and re.fullmatch(r"[\w%?]+", a)}


def type_accelerators(checkout: pathlib.Path) -> dict[str, str]:
    """accelerator -> full type name, from about_Type_Accelerators (5.1)."""
    text = git_show(checkout, f"{DOCS_51}/Microsoft.PowerShell.Core/About/about_Type_Accelerators.md")
    found = re.findall(r"^\|\s*(\w+)\s*\|\s*\[([\w.]+)\]", text, re.MULTILINE)
    return dict(sorted((name.lower(), full) for name, full in found))


def build(reference: pathlib.Path, checkout: pathlib.Path) -> dict[str, object]:
    """The compact table: per cmdlet its module, docsets and parameters ('Name|alias|alias')."""
    table = json.loads(reference.read_text(encoding="utf-8"))
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    cmdlets: dict[str, dict[str, t.Any]] = {}
    by_lower: dict[str, str] = {}
    # Oldest docsets first, so a name spelled differently across docsets (Get-MSMQCertificate in 2016,
    # Get-MsmqCertificate later) ends up as one cmdlet under its newest spelling: PowerShell ignores case.
    for name, entry in sorted(table["cmdlets"].items(), key=lambda item: (item[1]["windows_server"][-1], item[0])):
        parameters = {p: clean_aliases(a) for p, a in entry["parameters"].items()}
        previous = cmdlets.pop(by_lower.get(name.lower(), ""), None)
        if previous is not None:
            for param, aliases in previous["parameters"].items():
                parameters[param] = sorted(set(parameters.get(param, [])) | set(aliases))
            docsets = sorted(set(previous["docsets"]) | set(entry["windows_server"]))
        else:
            docsets = entry["windows_server"]
        by_lower[name.lower()] = name
        cmdlets[name] = {"module": entry["module"], "docsets": docsets, "parameters": dict(sorted(parameters.items()))}
    # Compact form: each parameter is "Name" or "Name|alias|alias".
    cmdlets = {name: {**entry, "parameters": ["|".join([p, *a]) for p, a in entry["parameters"].items()]}
               for name, entry in sorted(cmdlets.items())}
    return {
        "about": ("Windows PowerShell 5.1 cmdlets and Windows Server module cmdlets with their parameters and "
                  "parameter aliases, from Microsoft's PowerShell reference documentation "
                  "(MicrosoftDocs/PowerShell-Docs reference/5.1; MicrosoftDocs/windows-powershell-docs "
                  "docset/winserver{2016,2019,2022,2025}-ps), as extracted by the project "
                  "(../shared/reference/ps51-cmdlets.json). docsets: 'core' = part of Windows PowerShell 5.1; "
                  "otherwise the Windows Server docsets documenting the cmdlet (2016 is the oldest). "
                  "parameters: 'Name' or 'Name|alias|alias'. aliases: the default command aliases of Windows PowerShell 5.1 (each cmdlet page's NOTES). "
                  "type_accelerators: about_Type_Accelerators (5.1). "
                  f"PowerShell-Docs commit {commit}. Regenerate with build_data.py."),
        "aliases": command_aliases(checkout),
        "type_accelerators": type_accelerators(checkout),
        "cmdlets": cmdlets,
    }


def main(argv: list[str]) -> int:
    """Write data/ps51-cmdlets.json (one cmdlet per line, so diffs stay readable)."""
    data = build(pathlib.Path(argv[0]), pathlib.Path(argv[1]))
    cmdlets = data.pop("cmdlets")
    head = json.dumps(data, indent=1, sort_keys=False)[:-2]
    rows = ",\n".join(f"  {json.dumps(name)}: {json.dumps(entry, separators=(',', ':'))}" for name, entry in cmdlets.items())
    OUT.write_text(f"{head},\n \"cmdlets\": {{\n{rows}\n }}\n}}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
