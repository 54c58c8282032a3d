# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""JMESPath selections of a fleet report: which hosts, and which findings of each host, a report includes.

* ``select_hosts`` runs on the list of host records and must return a list of host records, e.g.
  ``[?traits.os_build==`20348`]`` (one OS build), ``[?state!='healthy']``;
* ``select_findings`` runs on each host's ``findings`` list and must return a list of findings, e.g.
  ``[?severity=='critical']``.

The summary is then recomputed from what is left (host states stay what all findings made them).
:func:`compile_selection` checks both expressions before anything is read or written.
"""

from __future__ import annotations

import typing as t

try:
    import jmespath
    from jmespath.exceptions import JMESPathError
except ImportError:  # pragma: no cover - jmespath is a requirement of the collection (requirements.txt)
    jmespath = None
    JMESPathError = Exception

from ansible_collections.rdp.doctor.plugins.module_utils.fleet_report import with_summary


class SelectionError(ValueError):
    """A selection expression that does not compile, or that does not return what it must."""


def compile_selection(hosts: str | None, findings: str | None) -> dict[str, t.Any]:
    """``{"hosts": compiled | None, "findings": compiled | None}``; SelectionError names the option and the problem."""
    compiled: dict[str, t.Any] = {"hosts": None, "findings": None}
    for option, expression in (("select_hosts", hosts), ("select_findings", findings)):
        if expression in (None, ""):
            continue
        if jmespath is None:
            raise SelectionError(f"{option}: the jmespath Python package is required (pip install jmespath)")
        try:
            compiled[option[len("select_"):]] = jmespath.compile(str(expression))
        except JMESPathError as exc:
            raise SelectionError(f"{option}: {expression!r} is not a valid JMESPath expression: {exc}") from exc
    return compiled


def _search(option: str, compiled: t.Any, data: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    try:
        found = compiled.search(data)
    except JMESPathError as exc:
        raise SelectionError(f"{option}: {compiled.expression!r} failed: {exc}") from exc
    if found is None:
        return []
    if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
        raise SelectionError(f"{option}: {compiled.expression!r} must return a list of "
                             f"{'host records' if option == 'select_hosts' else 'findings'}, not {type(found).__name__}")
    return found


def apply_selection(report: dict[str, t.Any], hosts: str | None, findings: str | None) -> dict[str, t.Any]:
    """The report with only the selected hosts and findings, its summary recomputed and ``run.selection`` set."""
    compiled = compile_selection(hosts, findings)
    records = report["hosts"]
    if compiled["hosts"] is not None:
        records = _search("select_hosts", compiled["hosts"], records)
        if not all(isinstance(r.get("name"), str) and "state" in r for r in records):
            raise SelectionError(f"select_hosts: {hosts!r} must return host records (objects with name and state)")
    if compiled["findings"] is not None:
        records = [dict(r, findings=_search("select_findings", compiled["findings"], r["findings"])) for r in records]
        for record in records:
            if not all(isinstance(f.get("id"), str) and "severity" in f for f in record["findings"]):
                raise SelectionError(f"select_findings: {findings!r} must return findings (objects with id and severity)")
    selected = dict(report, hosts=records)
    selected["run"] = dict(report["run"], selection={"hosts": hosts or None, "findings": findings or None})
    return with_summary(selected)
