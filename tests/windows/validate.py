"""Check what the smoke script wrote on a real Windows host against the host scripts' schemas.

    python -m tests.windows.validate <folder>

``<folder>`` is the smoke script's output (``smoke.json`` plus ``<script>.stdout.txt`` and
``<script>.stderr.txt`` per host script). For every script: the answer must be what the controller
accepts (``host_protocol.parse_result``: rc 0 and exactly one JSON object that is not an error
document), ASCII only (the bootstrap escapes the rest), with nothing on stderr, and valid against the
``result`` part of ``plugins/host_scripts/<script>.schema.json``. Prints one line per script and each
problem under it; exit code 0 when every script passed, 1 otherwise, 2 when the folder is not a smoke
result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import typing as t
from pathlib import Path

import jsonschema

from tests.lab.dispatch import host_protocol

HOST_SCRIPT_DIR = Path(host_protocol.HOST_SCRIPT_DIR)
MANIFEST = "smoke.json"
MANIFEST_SCHEMA = "rdp.doctor/smoke/1"


@dataclasses.dataclass(frozen=True)
class ScriptReport:
    """The verdict on one host script's run."""

    name: str
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


def part_validator(schema: dict[str, t.Any], part: str = "result") -> jsonschema.protocols.Validator:
    """A validator for the schema's ``params`` or ``result`` part (``#/$defs/...`` references still resolve)."""
    document = {"$schema": schema["$schema"], **schema["properties"][part], "$defs": schema.get("$defs", {})}
    return jsonschema.Draft202012Validator(document)


def check_run(name: str, rc: int, stdout: str, stderr: str, schema: dict[str, t.Any]) -> ScriptReport:
    """Everything wrong with one script's answer (pure: the texts and the schema in, the verdict out)."""
    problems: list[str] = []
    notes: list[str] = []
    if stderr.strip():
        problems.append(f"stderr is not empty: {stderr.strip()[:400]!r}")
    if not stdout.isascii():
        problems.append("stdout holds non-ASCII characters (the bootstrap escapes them as \\uXXXX)")
    try:
        document = host_protocol.parse_result(name, rc, stdout, stderr)
    except host_protocol.HostScriptError as exc:
        return ScriptReport(name, tuple([*problems, str(exc)]))
    for error in sorted(part_validator(schema).iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        # A section may also be a section error (oneOf): name the error inside the alternative that fits best.
        best = jsonschema.exceptions.best_match([error])
        where = "/".join(map(str, best.absolute_path)) or "(document)"
        problems.append(f"{where}: {best.message[:300]}")
    notes.append(f"{len(stdout)} characters, top-level keys: {', '.join(sorted(document))}")
    return ScriptReport(name, tuple(problems), tuple(notes))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig") if path.exists() else ""


def validate_folder(folder: Path, directory: Path = HOST_SCRIPT_DIR) -> tuple[dict[str, t.Any], list[ScriptReport]]:
    """(manifest, one report per script run or expected); raises ValueError when ``folder`` is not a smoke result."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise ValueError(f"{manifest_path} not found: is {folder} the smoke script's output folder?")
    manifest = json.loads(_read(manifest_path))
    if not isinstance(manifest, dict) or manifest.get("smoke") != MANIFEST_SCHEMA:
        raise ValueError(f"{manifest_path} is not a {MANIFEST_SCHEMA} manifest")
    runs = manifest.get("runs") or []
    if isinstance(runs, dict):  # ConvertTo-Json in PowerShell 5.1 writes a one-element array as the element
        runs = [runs]
    reports = []
    seen = set()
    for run in runs:
        name = str(run.get("name") or "")
        seen.add(name)
        schema_path = directory / f"{name}.schema.json"
        if not schema_path.exists():
            reports.append(ScriptReport(name, (f"no schema {schema_path.name} in this repository",)))
            continue
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        report = check_run(name, int(run.get("rc", 1)), _read(folder / f"{name}.stdout.txt"), _read(folder / f"{name}.stderr.txt"),
                           schema)
        reports.append(dataclasses.replace(report, notes=(*report.notes, f"{run.get('seconds')} s on the host")))
    for path in sorted(directory.glob("read_*.ps1")):
        if path.stem not in seen:
            reports.append(ScriptReport(path.stem, ("not run by the smoke script (rebuild it from this repository)",)))
    return manifest, reports


def bootstrap_digest() -> str:
    """SHA-256 of the bootstrap the smoke script embeds (the manifest names the one it ran)."""
    return hashlib.sha256(host_protocol.BOOTSTRAP.encode("utf-8")).hexdigest()


def render(manifest: dict[str, t.Any], reports: list[ScriptReport]) -> str:
    """The text the tool prints."""
    lines = [f"smoke result of {manifest.get('computer')} ({manifest.get('os_caption')} {manifest.get('os_version')}, "
             f"PowerShell {manifest.get('powershell')}, administrator: {manifest.get('administrator')})"]
    if manifest.get("bootstrap_sha256") != bootstrap_digest():
        lines.append("note: the smoke script was built from another bootstrap than this repository's: rebuild it to test this one")
    for report in reports:
        lines.append(f"{report.name}: {'ok' if report.ok else 'FAILED'}")
        lines.extend(f"  - {problem}" for problem in report.problems)
        lines.extend(f"    {note}" for note in report.notes)
    return "\n".join(lines)


def main(argv: t.Sequence[str] | None = None) -> int:
    """Entry point."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        sys.stderr.write("usage: python -m tests.windows.validate <folder written by the smoke script>\n")
        return 2
    try:
        manifest, reports = validate_folder(Path(arguments[0]))
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(render(manifest, reports) + "\n")
    return 0 if reports and all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
