# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a host's RDP facts in one round trip: ``read_rdp_state`` through the host protocol, then ``normalize``.

The one code path every action plugin uses to know a host (``rdp.doctor.host_facts`` and the remediation
modules when the role did not pass the facts it already read).
"""

from __future__ import annotations

import datetime as dt
import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import host_facts
from ansible_collections.rdp.doctor.plugins.plugin_utils.host_protocol import LowLevelExecutor, run_host_script


class FactsDocumentError(ValueError):
    """The host answered a document that breaks the read_rdp_state contract; ``raw`` keeps it for a bug report."""

    def __init__(self, message: str, raw: t.Any) -> None:
        super().__init__(message)
        self.raw = raw


def read_host_facts(execute: LowLevelExecutor, options: dict[str, t.Any], host: str = "") -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """(facts, raw document) of the host; ``options`` are host_facts' (accounts, event_days, event_sample_size, port_hint).

    Raises :class:`~host_protocol.HostScriptError` when the script fails, :class:`FactsDocumentError` when its
    answer cannot be read; connection failures propagate (Ansible reports the host unreachable).
    """
    params = host_facts.build_params(options)
    raw = run_host_script(execute, host_facts.SCRIPT_NAME, params, host=host)
    try:
        facts = host_facts.normalize(raw, dt.datetime.now(dt.timezone.utc), options.get("accounts") or [])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise FactsDocumentError(f"host script '{host_facts.SCRIPT_NAME}' answered a document rdp.doctor cannot read: "
                                 f"{type(exc).__name__}: {exc}", raw) from exc
    return facts, raw
