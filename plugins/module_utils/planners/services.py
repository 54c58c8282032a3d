# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner of ``rdp.doctor.services``: TermService, SessionEnv and UmRdpService (pure).

Facts: ``listener.services`` (Win32_Service state, start mode, account) [S21][S22]. Rules:

* every service is Manual by default ("Do not disable") [S21]; a Disabled service is set to Manual
  before it is started, because Windows refuses to start a disabled service (error 1058) [S22];
* TermService runs as ``NT Authority\\NetworkService`` (start error 1069 otherwise) [S22]; a new account
  takes effect when the service restarts, so a running TermService is restarted once;
* UmRdpService depends on TermService (the lab models the dependency): stopping TermService stops it
  first; a TermService restart is one ``Restart-Service`` that brings the dependents it stopped back;
  starting UmRdpService while TermService is stopped starts TermService first;
* anything that stops or disables TermService cuts every RDP connection: only with ``allow_lockout: true``.
  A restart drops the connected RDP sessions into the disconnected state; the plan warns.
"""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.planners import common

START_MODES = ("auto", "manual", "disabled")
STATES = ("started", "stopped", "restarted")
ACCOUNTS = ("network_service",)
#: option name -> Windows service name, in the order Windows starts them (TermService before its dependent).
SERVICE_OPTIONS = {"termservice": reg.TERMSERVICE, "sessionenv": reg.SESSIONENV, "umrdpservice": reg.UMRDPSERVICE}
#: dependent -> the service it needs.
DEPENDS_ON = {reg.UMRDPSERVICE: reg.TERMSERVICE}

_SERVICE_SPEC = {"start_mode": {"type": "str", "choices": list(START_MODES)},
                 "state": {"type": "str", "choices": list(STATES)}}
ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "termservice": {"type": "dict", "options": dict(_SERVICE_SPEC, account={"type": "str", "choices": list(ACCOUNTS)})},
    "sessionenv": {"type": "dict", "options": dict(_SERVICE_SPEC)},
    "umrdpservice": {"type": "dict", "options": dict(_SERVICE_SPEC)},
    "allow_lockout": {"type": "bool", "default": False},
}


def option_problems(options: dict[str, t.Any]) -> list[str]:
    """Every problem of the options, each naming the option and what is allowed."""
    problems = common.bool_problems(options, "allow_lockout")
    asked = False
    for option, service in SERVICE_OPTIONS.items():
        wanted = options.get(option)
        if wanted is None:
            continue
        if not isinstance(wanted, dict):
            problems.append(f"{option} must be a dictionary with start_mode and/or state, not {wanted!r}")
            continue
        allowed_keys = ("start_mode", "state", "account") if option == "termservice" else ("start_mode", "state")
        problems += [f"{option}.{key} is not an option; allowed: {', '.join(allowed_keys)}" for key in wanted if key not in allowed_keys]
        problems += common.choice_problem(f"{option}.start_mode", wanted.get("start_mode"), START_MODES)
        problems += common.choice_problem(f"{option}.state", wanted.get("state"), STATES)
        if option == "termservice":
            problems += common.choice_problem("termservice.account", wanted.get("account"), ACCOUNTS)
        if wanted.get("start_mode") == "disabled" and wanted.get("state") in ("started", "restarted"):
            problems.append(f"{option}: a disabled service cannot be {wanted['state']}; use start_mode manual or auto")
        asked = asked or any(wanted.get(key) is not None for key in allowed_keys)
        del service
    umrdp = options.get("umrdpservice") or {}
    term = options.get("termservice") or {}
    if isinstance(umrdp, dict) and isinstance(term, dict) and umrdp.get("state") in ("started", "restarted") \
            and (term.get("state") == "stopped" or term.get("start_mode") == "disabled"):
        problems.append("umrdpservice.state: UmRdpService needs TermService running; termservice cannot be stopped or disabled at the same time")
    if not asked and not problems:
        problems.append("nothing to do: set start_mode, state (or termservice.account) for termservice, sessionenv or umrdpservice")
    return problems


def _account_is_network_service(account: t.Any) -> bool:
    """NETWORK SERVICE in any of its spellings [S22]."""
    text = str(account or "").replace(" ", "").lower()
    return text in ("ntauthority\\networkservice", "networkservice", reg.SID_NETWORK_SERVICE.lower())


def _config_step(plan: remediation.Plan, facts: common.Facts, option: str, name: str, wanted: dict[str, t.Any]) -> tuple[
        list[remediation.Operation], bool]:
    """The service_config operation (start mode, account) and whether a new account needs a restart."""
    service = common.service_fact(facts, name)
    start_mode = wanted.get("start_mode")
    windows_mode = {"auto": "Auto", "manual": "Manual", "disabled": "Disabled"}.get(start_mode or "")
    state = wanted.get("state")
    if windows_mode is None and service.get("disabled") and state in ("started", "restarted"):
        windows_mode = reg.SERVICE_DEFAULT_START_MODE  # Windows will not start a Disabled service (1058) [S22]
    new_mode = windows_mode if windows_mode and str(service.get("start_mode") or "").lower() != windows_mode.lower() else None
    account = reg.TERMSERVICE_ACCOUNT if wanted.get("account") == "network_service" else None
    new_account = account if account and not _account_is_network_service(service.get("account")) else None
    if start_mode is not None or new_mode:
        plan.before.setdefault(name, {})["start_mode"] = service.get("start_mode")
        plan.after.setdefault(name, {})["start_mode"] = new_mode or service.get("start_mode")
    if account is not None:
        plan.before.setdefault(name, {})["account"] = service.get("account")
        plan.after.setdefault(name, {})["account"] = new_account or service.get("account")
    if not (new_mode or new_account):
        return [], False
    why = ", ".join(part for part in (f"start mode {service.get('start_mode')} -> {new_mode}" if new_mode else "",
                                      f"logon account -> {new_account} [S22]" if new_account else "") if part)
    return [remediation.service_config(name, service, start_mode=new_mode, account=new_account, why=why)], bool(new_account)


def _action(service: dict[str, t.Any], state: str | None, reconfigured: bool) -> str | None:
    """start / stop / restart / None for a wanted state, the current state and a pending account change."""
    running = bool(service.get("running"))
    if state == "stopped":
        return "stop" if running else None
    if state == "started":
        return "restart" if running and reconfigured else (None if running else "start")
    if state == "restarted":
        return "restart" if running else "start"
    return "restart" if running and reconfigured else None


def _guard(plan: remediation.Plan, options: dict[str, t.Any], name: str, action: str | None, new_mode: str | None) -> None:
    """Refuse what cuts RDP without allow_lockout; warn about a restart."""
    if name != reg.TERMSERVICE:
        return
    if (action == "stop" or new_mode == "Disabled") and not options.get("allow_lockout"):
        what = "stopping" if action == "stop" else "disabling"
        plan.refused.append(f"termservice: {what} TermService ends every RDP connection to the host; set allow_lockout: true "
                            "if that is intended")
    if action == "restart":
        plan.warnings.append("TermService restarts: connected RDP sessions are dropped (they stay as disconnected sessions)")


def plan(facts: common.Facts, options: dict[str, t.Any]) -> remediation.Plan:
    """The plan for the services the options name."""
    result = remediation.Plan()
    result.refused = common.read_error_problems(facts, "services") + option_problems(options)
    if result.refused:
        return common.finish(result)
    configs: list[remediation.Operation] = []
    actions: dict[str, str] = {}
    for option, name in SERVICE_OPTIONS.items():
        wanted = options.get(option)
        if not wanted:
            continue
        service = common.service_fact(facts, name)
        if not service.get("present"):
            result.refused.append(f"{option}: the service {name} is not installed on the host")
            continue
        config, reconfigured = _config_step(result, facts, option, name, wanted)
        configs += config
        action = _action(service, wanted.get("state"), reconfigured)
        if wanted.get("state") is not None:
            result.before.setdefault(name, {})["state"] = service.get("state")
            result.after.setdefault(name, {})["state"] = "Stopped" if wanted["state"] == "stopped" else "Running"
        new_mode = next((op["set"].get("start_mode") for op in config), None)
        _guard(result, options, name, action, new_mode)
        if name == reg.SESSIONENV and new_mode == "Disabled":
            result.warnings.append("SessionEnv disabled: Windows no longer renews the self-signed listener certificate "
                                   "(rdp.doctor.listener_certificate state=self_signed needs it) [S21][S27]")
        if action:
            actions[name] = action
    # A dependent that must run needs its service running first (SCM would start it; the plan says so).
    for dependent, needed in DEPENDS_ON.items():
        if actions.get(dependent) in ("start", "restart") and needed not in actions \
                and not common.service_fact(facts, needed).get("running"):
            actions[needed] = "start"
            result.before.setdefault(needed, {})["state"] = common.service_fact(facts, needed).get("state")
            result.after.setdefault(needed, {})["state"] = "Running"
            if common.service_fact(facts, needed).get("disabled"):
                result.refused.append("umrdpservice: UmRdpService needs TermService, which is Disabled; set termservice.start_mode "
                                      "manual (or auto) as well")
        # Stopping the service Windows depends on: stop the dependent first.
        if actions.get(needed) == "stop" and common.service_fact(facts, dependent).get("running"):
            actions.setdefault(dependent, "stop")
            result.before.setdefault(dependent, {})["state"] = common.service_fact(facts, dependent).get("state")
            result.after.setdefault(dependent, {})["state"] = "Stopped"
    ordered = _ordered_actions(actions)
    controls = [remediation.service_control(name, common.service_fact(facts, name).get("state") or "Stopped", action, why=f"{name}: {action}")
                for name, action in ordered]
    result.operations = configs + controls
    return common.finish(result)


def _ordered_actions(actions: dict[str, str]) -> list[tuple[str, str]]:
    """Stops dependents first; starts and restarts the needed service first."""
    order = [reg.TERMSERVICE, reg.SESSIONENV, reg.UMRDPSERVICE]
    stops = [(n, actions[n]) for n in reversed(order) if actions.get(n) == "stop"]
    starts = [(n, actions[n]) for n in order if actions.get(n) in ("start", "restart")]
    # A TermService restart brings back the dependents it stopped: do not restart UmRdpService on its own then.
    if actions.get(reg.TERMSERVICE) == "restart" and actions.get(reg.UMRDPSERVICE) == "restart":
        starts = [item for item in starts if item[0] != reg.UMRDPSERVICE]
    return stops + starts
