# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each host's ``rdp.doctor.diagnose_host`` task concluded in this run, for the run-once task after it.

Why files and not host variables (issue 8, docs/performance.md): a run-once task that reads every host's variables
makes Ansible compute each host's whole variable set (its facts deep-copied twice), a few milliseconds per host;
and a host whose diagnose task fails has no facts published at all, so its results need a way to the run-once
task that publishes them. Each ``diagnose_host`` worker writes one small JSON record; the run-once
``rdp.doctor.run_summary`` task reads them all.

Where: Ansible's own per-run local temporary directory (``DEFAULT_LOCAL_TMP``, ``~/.ansible/tmp/ansible-local-<pid>...``:
created by ansible-playbook when it starts, mode 0700, removed when it exits), so a record never outlives its run
and two runs never mix. The records hold what the host's facts hold (no credential ever reaches them).

Scope: one directory per block of tasks (the diagnose task's parent block), so the diagnose role included twice
in one run (``rdp.doctor.remediate`` and then a report) keeps two sets. The serial batches of one play share the
block, so a batch's summary covers the batches before it, as the play's hosts do.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing as t

from ansible import constants as C

RECORDS_DIR_NAME = "rdp_doctor_diagnose"
RECORD_SUFFIX = ".record.json"
BATCH_PREFIX = "batch-"


def scope_of(task: t.Any) -> str:
    """The records' scope of a task: its parent block's id (the same for every task of the block, in every worker)."""
    parent = getattr(task, "_parent", None)
    return str(getattr(parent, "_uuid", "") or "play")


def records_dir(scope: str, base: str | None = None) -> str:
    """The directory of one scope's records, under ``base`` (default: this run's local temporary directory)."""
    safe = "".join(ch for ch in scope if ch.isalnum() or ch in "-_") or "play"
    return os.path.join(base or str(C.DEFAULT_LOCAL_TMP), RECORDS_DIR_NAME, safe)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _write_json(path: str, document: t.Any, exclusive: bool = False) -> None:
    """Write atomically (a reader never sees half a record); ``exclusive`` keeps an existing file."""
    if exclusive and os.path.exists(path):
        return
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(document, handle, separators=(",", ":"))
    os.replace(partial, path)


def write_record(directory: str, host: str, record: dict[str, t.Any], batch: t.Sequence[str]) -> None:
    """Keep ``record`` for ``host`` and note the hosts of its batch (the hosts that started the diagnose task)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    hosts = sorted({str(name) for name in batch} | {host})
    # Every worker of one task sees the same batch: the first one writes it, the rest find it there.
    _write_json(os.path.join(directory, BATCH_PREFIX + _digest("\n".join(hosts)) + ".json"), hosts, exclusive=True)
    _write_json(os.path.join(directory, _digest(host) + RECORD_SUFFIX), dict(record, host=host))


def run_record(host_state: t.Any, findings: t.Any, probe: t.Any, unpublished: dict[str, t.Any] | None = None,
               **extra: t.Any) -> dict[str, t.Any]:
    """One host's record (docs/dev/contracts.md, "The run's records"): what ``rdp.doctor.run_summary`` sums up, and
    ``unpublished``: the results Ansible will not publish because the host's task failed, which run_summary
    publishes instead (None: the task publishes them itself). ``extra``: more for the summary (``remediation``)."""
    record = {"host_state": host_state, "findings": findings, "probe": probe, "published": unpublished is None, **extra}
    if unpublished is not None:
        record["results"] = unpublished
    return record


def keep(task: t.Any, task_vars: t.Mapping[str, t.Any], record: dict[str, t.Any], result: dict[str, t.Any]) -> None:
    """Write this host's ``record`` in the scope of ``task``, with the batch the play runs; when it cannot be written,
    a warning in the task's ``result`` (the host is then summed up as lost; its task's own result stands)."""
    host = str(task_vars.get("inventory_hostname") or "")
    try:
        write_record(records_dir(scope_of(task)), host, record, task_vars.get("ansible_play_batch") or [host])
    except OSError as exc:
        result.setdefault("warnings", []).append(f"rdp.doctor could not keep this host's results for the fleet summary: {exc}")


def read_records(directory: str) -> tuple[dict[str, dict[str, t.Any]], list[list[str]]]:
    """(records by host, the batches: the hosts that started the task, one list per batch). Unreadable files are skipped."""
    records: dict[str, dict[str, t.Any]] = {}
    batches: list[list[str]] = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return records, batches
    for name in names:
        if not name.endswith(".json") or name.endswith(".partial"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError):
            continue
        if name.startswith(BATCH_PREFIX) and isinstance(document, list):
            batches.append([str(host) for host in document])
        elif name.endswith(RECORD_SUFFIX) and isinstance(document, dict) and isinstance(document.get("host"), str):
            records[document["host"]] = document
    return records, batches


def started_hosts(records: dict[str, dict[str, t.Any]], batches: list[list[str]]) -> set[str]:
    """Every host that started the task in this scope: those of every batch, and any host with a record."""
    return {host for batch in batches for host in batch} | set(records)
