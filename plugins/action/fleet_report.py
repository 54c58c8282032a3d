# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.fleet_report``: the fleet report of a play, written on the controller.

Gathers what diagnose and remediate published for every host of the play (``hostvars``), builds the report
with ``module_utils/fleet_report`` (pure), merges earlier JSON reports into it, applies the JMESPath selection
and writes JSON, JUnit XML, Markdown and HTML into one folder. Runs on the controller only; never contacts a host.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.release import __version__ as ansible_version

from ansible_collections.rdp.doctor.plugins.module_utils import fleet_report, report_formats
from ansible_collections.rdp.doctor.plugins.plugin_utils.report_query import SelectionError, apply_selection, compile_selection

try:  # The HTML renderer (issue 11, report_html.py): used when this collection version has it.
    from ansible_collections.rdp.doctor.plugins.module_utils.report_html import render_html
except ImportError:
    render_html = None

FORMATS = ("json", "junit", "markdown", "html")
SUFFIXES = {"json": ".json", "junit": ".junit.xml", "markdown": ".md", "html": ".html"}

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "dest": {"type": "path", "required": True},
    "basename": {"type": "str", "default": "rdp-doctor-report"},
    "formats": {"type": "list", "elements": "str", "choices": list(FORMATS), "default": list(FORMATS)},
    "hosts": {"type": "list", "elements": "str"},
    "include_play": {"type": "bool", "default": True},
    "merge": {"type": "list", "elements": "path", "default": []},
    "select_hosts": {"type": "str"},
    "select_findings": {"type": "str"},
    "broken_severity": {"type": "str", "default": "high", "choices": list(fleet_report.SEVERITIES)},
    "run_id": {"type": "str"},
    "kind": {"type": "str", "choices": ["diagnose", "remediate", "drift"]},
    "markdown_max_hosts": {"type": "int", "default": 20},
}


def plain(value: t.Any) -> t.Any:
    """A copy made of dict / list / str / int / float / bool / None only (hostvars hold lazy, tagged containers)."""
    if isinstance(value, Mapping):
        return {clean_text(to_text(key)): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return clean_text(to_text(value, errors="surrogate_then_replace"))


def clean_text(text: str) -> str:
    """Text any file can hold: a lone surrogate (garbled host output) becomes its backslash escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return str.__str__(text)  # a plain str, not ansible-core's tagged subclass


def host_variables(hostvars: t.Any, host: str) -> dict[str, t.Any]:
    """The variables the report reads for one host (only those: never a connection password), as plain data."""
    try:
        host_vars = hostvars[host]
    except (KeyError, TypeError):
        return {}
    picked: dict[str, t.Any] = {}
    for name in ("ansible_facts", "ansible_host", *fleet_report.PUBLISHED.values()):
        try:
            value = host_vars.get(name) if hasattr(host_vars, "get") else None
        except Exception:  # pylint: disable=broad-exception-caught  # an undefined / untemplatable variable is absent
            value = None
        if name == "ansible_facts" and isinstance(value, Mapping):
            value = {key: value[key] for key in value if key == "rdp_doctor" or key in fleet_report.PUBLISHED.values()}
        if value is not None:
            picked[name] = plain(value)
    return picked


def collection_version() -> str | None:
    """This collection's version: MANIFEST.json when installed from a tarball, else galaxy.yml."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as manifest:
            return str(json.load(manifest)["collection_info"]["version"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as galaxy:
            for line in galaxy:
                if line.startswith("version:"):
                    return line.split(":", 1)[1].strip().strip("'\"")
    except OSError:
        pass
    return None


def read_reports(paths: t.Sequence[str]) -> list[dict[str, t.Any]]:
    """The JSON reports to merge; AnsibleActionFail names the file that cannot be read or is not a fleet report."""
    reports = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                report = json.load(handle)
        except (OSError, ValueError) as exc:
            raise AnsibleActionFail(f"merge: cannot read {path}: {exc}") from exc
        problem = fleet_report.report_problem(report)
        if problem:
            raise AnsibleActionFail(f"merge: {path} is not an rdp.doctor fleet report: {problem}")
        reports.append(report)
    return reports


def write_atomically(path: str, text: str) -> None:
    """Write next to the target, then rename: a reader never sees half a report."""
    folder = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=".rdp-doctor-", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def rendered(report: dict[str, t.Any], formats: t.Sequence[str], markdown_max_hosts: int) -> tuple[dict[str, str], list[str]]:
    """Text per format; the formats that could not be made here (HTML without its renderer), with why."""
    texts: dict[str, str] = {}
    skipped: list[str] = []
    for name in formats:
        if name == "json":
            texts[name] = json.dumps(report, indent=1, sort_keys=False, default=str) + "\n"
        elif name == "junit":
            texts[name] = report_formats.junit_xml(report)
        elif name == "markdown":
            texts[name] = report_formats.markdown(report, max_hosts=markdown_max_hosts)
        elif render_html is None:
            skipped.append("html: this version of rdp.doctor has no HTML renderer (module_utils/report_html.py)")
        else:
            try:
                texts[name] = render_html(report)
            except Exception as exc:  # pylint: disable=broad-exception-caught  # the other formats are still written
                skipped.append(f"html: the HTML renderer failed ({type(exc).__name__}: {exc}); the other formats are written")
    return texts, skipped


class ActionModule(ActionBase):
    """Build, select and write the fleet report."""

    TRANSFERS_FILES = False
    _supports_check_mode = True  # writes on the controller only: a check-mode (drift) run needs its report
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """See plugins/modules/fleet_report.py."""
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # deprecated by ActionBase; never used
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:  # a bad expression fails before anything is read or written
            compile_selection(args["select_hosts"], args["select_findings"])
        except SelectionError as exc:
            raise AnsibleActionFail(str(exc)) from exc
        merged = read_reports(args["merge"])
        if not args["include_play"] and not merged:
            raise AnsibleActionFail("nothing to report: include_play is false and merge lists no report")

        hosts = args["hosts"] if args["hosts"] is not None else list(task_vars.get("ansible_play_hosts_all") or [])
        hostvars = task_vars.get("hostvars") or {}
        published: dict[str, dict[str, t.Any]] = {}
        addresses: dict[str, str | None] = {}
        for host in dict.fromkeys(hosts) if args["include_play"] else ():
            variables = host_variables(hostvars, host)
            published[host] = fleet_report.published_results(variables)
            addresses[host] = variables.get("ansible_host") or None
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        run = {"generated_utc": now, "kind": args["kind"], "check_mode": bool(self._play_context.check_mode),
               "run_id": args["run_id"] or to_text(task_vars.get("awx_job_id") or task_vars.get("tower_job_id") or "") or None,
               "play": to_text(task_vars.get("ansible_play_name") or "") or None, "ansible_version": ansible_version,
               "collection_version": collection_version()}
        report = fleet_report.build_report(published, run, args["broken_severity"], addresses) if args["include_play"] else None
        if merged:
            report = fleet_report.merge_reports(merged + ([report] if report else []))
        if report is None:  # include_play false and nothing merged: refused above
            raise AnsibleActionFail("nothing to report")
        try:
            report = apply_selection(report, args["select_hosts"], args["select_findings"])
        except SelectionError as exc:
            raise AnsibleActionFail(str(exc)) from exc

        texts, skipped = rendered(report, args["formats"], args["markdown_max_hosts"])
        dest = os.path.abspath(args["dest"])
        try:
            os.makedirs(dest, exist_ok=True)
            files = {}
            for name, text in texts.items():
                path = os.path.join(dest, args["basename"] + SUFFIXES[name])
                write_atomically(path, text)
                files[name] = path
        except OSError as exc:
            raise AnsibleActionFail(f"cannot write the report into {dest}: {exc}") from exc
        if skipped:
            result["warnings"] = skipped
        result.update(changed=False, files=files, headline=fleet_report.headline(report["summary"]), summary=report["summary"],
                      stats=fleet_report.stats(report),
                      markdown=texts.get("markdown") or report_formats.markdown(report, args["markdown_max_hosts"]),
                      msg=f"{report['summary']['hosts']} hosts reported in {dest}: " + ", ".join(sorted(files)))
        return result
