# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.probe``: probe in the controller's worker when the task runs on the controller.

The probe is the client's eye, so it runs where the task runs. On the controller (``delegate_to: localhost``
or any host reached with the ``local`` connection, without become) it runs in this worker process: the
same library (``module_utils/rdp_probe``), the same options and result as the module, without packing and
starting a Python module process per host (issue 8: that start-up cost ~0.35 s of controller CPU per
host, a hundred times the probe itself). Anywhere else (a jump host), the real module is executed there,
as before.
"""

from __future__ import annotations

import os
import traceback
import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_probe
from ansible_collections.rdp.doctor.plugins.module_utils import x509_info
from ansible_collections.rdp.doctor.plugins.modules.probe import argument_spec, options_from_params

MODULE = "rdp.doctor.probe"

# Ansible imports an action plugin in its main process (the strategy looks the class up) before forking a
# worker per host: what is built here is built once per run, not once per host.
rdp_probe.warm_up()


def runs_on_controller(connection_transport: str, become: bool) -> bool:
    """True when the task executes on the controller itself, as the controller's user."""
    return connection_transport == "local" and not become


def probe_in_process(args: dict[str, t.Any]) -> dict[str, t.Any]:
    """Validate ``args`` as the module does, probe, return the module's result (``failed`` + ``msg`` on error)."""
    validated = ArgumentSpecValidator(argument_spec()).validate(args)
    if validated.error_messages:
        return {"failed": True, "changed": False, "msg": "; ".join(validated.error_messages)}
    params = validated.validated_parameters
    if "certificate" in params["steps"] and not x509_info.HAS_CRYPTOGRAPHY:
        return {"failed": True, "changed": False, "msg": "the certificate step needs the Python library cryptography on the controller"}
    if params["ca_bundle"] and params["trust_check"] and not os.path.exists(params["ca_bundle"]):
        return {"failed": True, "changed": False, "msg": f"ca_bundle not found: {params['ca_bundle']}"}
    try:
        result = rdp_probe.probe(options_from_params(params))
    except ValueError as exc:
        return {"failed": True, "changed": False, "msg": str(exc)}
    except Exception as exc:  # pylint: disable=broad-exception-caught  # report, don't hide, an unexpected crash
        return {"failed": True, "changed": False, "msg": f"probe crashed: {exc}", "exception": traceback.format_exc()}
    return dict(result, changed=False)


class ActionModule(ActionBase):
    """Probe in-process on the controller; execute the module elsewhere."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """The module's result, from this process when the task runs on the controller."""
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # deprecated by ActionBase; never used
        if runs_on_controller(self._connection.transport, bool(self._play_context.become)):
            result.update(probe_in_process(dict(self._task.args)))
            return result
        result.update(self._execute_module(module_name=MODULE, module_args=self._task.args, task_vars=task_vars))
        return result
