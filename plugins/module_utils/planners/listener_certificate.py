# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner of ``rdp.doctor.listener_certificate``: the RDP-Tcp listener's TLS certificate (pure).

``windows-rdp-facts.md`` section 1:

* ``state: self_signed`` - the listener uses a healthy self-signed certificate. A self-signed certificate
  that is expired, expires within ``min_days_valid``, names another host (renamed computer), has a broken
  key (missing key file, unreadable key) or that a binding names but no store holds, is renewed: the
  binding (``SSLCertificateSHA1Hash``) is deleted so the listener falls back to the self-signed default
  [S1][S2], the broken certificate is removed from ``Cert:\\LocalMachine\\Remote Desktop`` and
  **SessionEnv** (Remote Desktop Configuration) is restarted, which creates a new one. Microsoft's docs
  differ on SessionEnv vs TermService [S2][S3][S4]; SessionEnv is the service that performs RDS
  certificate requests and renewals (AskDS [S27], Azure's RDP internal-error article [S3]) and restarting
  it does not drop connected sessions, where a TermService restart does. The new thumbprint comes back
  in the apply result's re-read.
* ``state: bound`` - bind a certificate of ``Cert:\\LocalMachine\\My`` [S1] chosen by ``thumbprint``,
  ``subject`` or ``template``: it must have a private key, the Server Authentication or Remote Desktop
  Authentication EKU (or none = any purpose) [S27][S36], be valid for ``min_days_valid`` more days and
  name the host; NETWORK SERVICE (TermService's account) gets Read on its private key first [S1][S22].
* ``state: key_permissions`` - only the NETWORK SERVICE Read grant on the bound (or named) certificate's key.
* A GPO that enforces a certificate template (``POL\\CertTemplateName`` [S10][S27]) owns the binding: the
  plan is manual.
"""

from __future__ import annotations

import re
import typing as t
import unicodedata

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.planners import common

STATES = ("self_signed", "bound", "key_permissions")
DEFAULT_MIN_DAYS_VALID = 30

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "state": {"type": "str", "required": True, "choices": list(STATES)},
    "thumbprint": {"type": "str"},
    "subject": {"type": "str"},
    "template": {"type": "str"},
    "min_days_valid": {"type": "int", "default": DEFAULT_MIN_DAYS_VALID},
}

_HEX40 = re.compile(r"^[0-9A-F]{40}$")


def normalize_thumbprint(value: t.Any) -> tuple[str | None, str | None]:
    """(upper-case thumbprint, None) or (None, message).

    Copied thumbprints carry spaces, colons and invisible characters (U+200E LEFT-TO-RIGHT MARK from the
    certificate dialog [S1][S27]); they are removed, every other character must be hex.
    """
    text = "".join(ch for ch in str(value) if not (ch.isspace() or unicodedata.category(ch) == "Cf" or ch == ":"))
    text = text.upper()
    if not _HEX40.match(text):
        return None, (f"thumbprint: {value!r} is not a SHA-1 thumbprint (40 hex digits once spaces, colons and invisible "
                      "characters are removed)")
    return text, None


def option_problems(options: dict[str, t.Any]) -> list[str]:
    """Every problem of the options, each naming the option and what is allowed."""
    state = options.get("state")
    problems = common.choice_problem("state", state, STATES)
    if state is None:
        problems.append(f"state is required: one of {', '.join(STATES)}")
    if options.get("thumbprint") is not None:
        problems += [p for p in (normalize_thumbprint(options["thumbprint"])[1],) if p]
    days = options.get("min_days_valid", DEFAULT_MIN_DAYS_VALID)
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
        problems.append(f"min_days_valid must be a whole number of days from 0 to 3650, not {days!r}")
    selectors = [name for name in ("thumbprint", "subject", "template") if options.get(name) not in (None, "")]
    if state == "bound" and len(selectors) != 1:
        problems.append("state=bound needs exactly one of thumbprint, subject or template to choose the certificate"
                        + (f" (got {', '.join(selectors)})" if selectors else ""))
    if state == "self_signed" and selectors:
        problems.append(f"state=self_signed takes no {', '.join(selectors)} (Windows makes the self-signed certificate)")
    if state == "key_permissions" and [s for s in selectors if s != "thumbprint"]:
        problems.append("state=key_permissions takes only thumbprint (default: the bound certificate)")
    return problems


# ==================================================================================================
# What is wrong with a certificate
# ==================================================================================================

def _key_broken(facts: common.Facts, entry: dict[str, t.Any]) -> str | None:
    """Why the certificate's private key cannot serve the listener, or None."""
    if not entry.get("has_private_key"):
        return "it has no private key"
    if entry.get("key_error"):
        return f"its private key cannot be opened ({entry['key_error']})"
    key_file = common.get(facts, "machinekeys.listener_key_file") or {}
    if entry.get("self_signed_container") and key_file.get("exists") is False:
        return f"its key file {key_file.get('name')} is missing from MachineKeys"
    if entry.get("self_signed_container") and key_file.get("empty"):
        return f"its key file {key_file.get('name')} is empty"
    if entry.get("key_readable_by_network_service") is False:
        return "NETWORK SERVICE cannot read its private key"
    return None


def _validity_problems(entry: dict[str, t.Any], min_days: int) -> list[str]:
    """Validity, name and EKU problems of a certificate (without the key)."""
    problems = []
    if entry.get("parse_error"):
        problems.append(f"it cannot be parsed ({entry['parse_error']})")
    if entry.get("expired"):
        problems.append(f"it expired on {entry.get('not_after')}")
    elif entry.get("not_yet_valid"):
        problems.append(f"it is not valid before {entry.get('not_before')}")
    elif entry.get("days_remaining") is not None and entry["days_remaining"] < min_days:
        problems.append(f"it expires in {entry['days_remaining']} days (min_days_valid {min_days})")
    if entry.get("name_matches_host") is False:
        problems.append(f"it names {', '.join(entry.get('names') or []) or 'no host'}, not this host")
    if entry.get("eku_ok") is False:
        problems.append(f"its EKU ({', '.join(entry.get('eku_names') or [])}) is neither Server Authentication nor Remote Desktop "
                        "Authentication")
    return problems


def _describe(entry: dict[str, t.Any] | None) -> dict[str, t.Any] | None:
    """What the diff shows of a certificate."""
    if entry is None:
        return None
    return {key: entry.get(key) for key in ("thumbprint", "store", "subject", "not_after", "days_remaining", "names")}


def _before(cert: dict[str, t.Any]) -> dict[str, t.Any]:
    """The listener's certificate as the diff shows it."""
    return {"thumbprint": cert.get("bound_thumbprint"), "source": cert.get("bound_source"), "certificate": _describe(cert.get("bound"))}


def _template_manual(plan: remediation.Plan, cert: dict[str, t.Any]) -> bool:
    """A GPO-enforced template owns the listener certificate: manual, nothing else."""
    template = common.get(cert, "cert_template_name.effective")
    if not template:
        return False
    plan.manual.append({"setting": "listener certificate",
                        "reason": f"Group Policy enforces the certificate template '{template}': Windows enrolls and binds that "
                                  "template's certificate itself (event 1063) and replaces a local binding. Check autoenrollment "
                                  f"from the enterprise CA, or change '{reg.GPO_RDS_PATH} > "
                                  f"{reg.POLICY_NAMES['cert_template_name']}'",
                        "policy_key": f"{reg.POL}\\CertTemplateName"})
    return True


def _key_expect_sddl(facts: common.Facts, entry: dict[str, t.Any]) -> str | None:
    """The key file's SDDL when the facts have it (today: the self-signed listener's key file only)."""
    key_file = common.get(facts, "machinekeys.listener_key_file") or {}
    if entry.get("key_file") and key_file.get("name") and str(entry["key_file"]).lower() == str(key_file["name"]).lower():
        return key_file.get("sddl")
    return None


def _grant_operation(facts: common.Facts, entry: dict[str, t.Any]) -> remediation.Operation:
    """NETWORK SERVICE Read on a certificate's private key [S1][S22]; expect the key file's SDDL when known."""
    sddl = _key_expect_sddl(facts, entry)
    operation = remediation.key_acl_grant(entry["store"], entry["thumbprint"], sddl, [dict(common.NETWORK_SERVICE_READ)],
                                          why="TermService runs as NETWORK SERVICE and must read the listener key [S1][S22]")
    if sddl is None:
        del operation["expect"]["sddl"]  # the facts do not carry this key's ACL: no precondition on it
    return operation


# ==================================================================================================
# state: self_signed
# ==================================================================================================

def _self_signed_steps(plan: remediation.Plan, facts: common.Facts, min_days: int) -> None:
    """Renew a broken self-signed certificate (or fall back to it from a missing or custom binding)."""
    cert = common.get(facts, "certificate") or {}
    bound = cert.get("bound")
    registry_binding = common.get(cert, "ssl_certificate_sha1_hash.local")
    self_signed = [e for e in common.get(cert, f"stores.{reg.STORE_REMOTE_DESKTOP}", []) if e.get("self_signed_container")]
    broken = []
    for entry in self_signed:
        reasons = _validity_problems(entry, min_days) + [r for r in (_key_broken(facts, entry),) if r]
        if reasons:
            broken.append((entry, reasons))
    healthy = [e for e in self_signed if e not in [b[0] for b in broken]]
    uses_self_signed = bound is not None and (bound.get("self_signed_container") or bound.get("store") == reg.STORE_REMOTE_DESKTOP)
    operations: list[remediation.Operation] = []
    if registry_binding and (not uses_self_signed or bound is None or broken):
        why = ("the binding names a certificate no store holds" if bound is None else
               "the listener falls back to the self-signed certificate when no thumbprint is bound [S1][S2]")
        operations.append(remediation.listener_binding(None, registry_binding, why=why))
    for entry, reasons in broken:
        plan.warnings.append(f"self-signed certificate {entry['thumbprint']} is renewed: {'; '.join(reasons)}")
        operations.append(remediation.certificate_remove(reg.STORE_REMOTE_DESKTOP, entry["thumbprint"],
                                                         why=f"renew: {'; '.join(reasons)} [S2]"))
    if broken or not (healthy or broken):
        operations += common.start_service_steps(facts, reg.SESSIONENV,
                                                 "SessionEnv creates a new self-signed listener certificate [S2][S3][S27]")
    if not operations:
        return
    plan.operations += operations
    plan.after = {"thumbprint": None if broken or not healthy else healthy[0]["thumbprint"], "source": "self_signed_store",
                  "certificate": "a new self-signed certificate made by SessionEnv" if broken or not healthy else _describe(healthy[0])}


# ==================================================================================================
# state: bound
# ==================================================================================================

def _template_matches(template: dict[str, t.Any] | None, wanted: str) -> bool:
    """The certificate's template is ``wanted``: its v1 name (case-insensitive) or its v2 OID."""
    if not template:
        return False
    wanted = wanted.strip()
    name, oid = template.get("name"), template.get("oid")
    return bool((name and str(name).lower() == wanted.lower()) or (oid and str(oid) == wanted))


def _template_label(template: dict[str, t.Any]) -> str:
    """A template as a person reads it: 'name (OID vMAJOR.MINOR)', whichever parts the certificate carries."""
    version = ".".join(str(v) for v in (template.get("major"), template.get("minor")) if v is not None)
    oid = " ".join(part for part in (template.get("oid"), f"v{version}" if version else None) if part)
    if template.get("name") and oid:
        return f"'{template['name']}' ({oid})"
    return f"'{template['name']}'" if template.get("name") else oid


def _templates_carried(my_store: list[dict[str, t.Any]]) -> str:
    """Which templates the host's My certificates were issued from, for a refusal."""
    labels = sorted({_template_label(e["template"]) for e in my_store if e.get("template")})
    if not labels:
        return f"none of its {len(my_store)} certificates carries a certificate template extension"
    return f"its certificates carry the templates {', '.join(labels)}"


def _choose(plan: remediation.Plan, cert: dict[str, t.Any], options: dict[str, t.Any], facts: common.Facts,
            min_days: int) -> dict[str, t.Any] | None:
    """The certificate of My the options name, checked; None (with a refusal) when there is none to bind."""
    my_store = common.get(cert, f"stores.{reg.STORE_MY}", []) or []
    if options.get("thumbprint"):
        thumbprint = normalize_thumbprint(options["thumbprint"])[0]
        found = [e for e in my_store if e.get("thumbprint") == thumbprint]
        label = f"thumbprint {thumbprint}"
        if not found and any(e.get("thumbprint") == thumbprint for e in common.get(cert, f"stores.{reg.STORE_REMOTE_DESKTOP}", []) or []):
            plan.refused.append(f"thumbprint: {thumbprint} is the self-signed certificate of the Remote Desktop store; use state=self_signed")
            return None
    elif options.get("subject"):
        wanted = str(options["subject"]).strip().lower()
        wanted_cn = wanted[3:] if wanted.startswith("cn=") else wanted
        found = [e for e in my_store if str(e.get("subject") or "").lower() == wanted or str(e.get("subject_cn") or "").lower() == wanted_cn
                 or wanted_cn in [str(n).lower() for n in e.get("dns_names") or []]]
        label = f"subject {options['subject']!r}"
    else:
        found = [e for e in my_store if _template_matches(e.get("template"), str(options["template"]))]
        label = f"template {options['template']!r}"
        if not found:
            plan.refused.append(f"template: no certificate with {label} (name or OID) in Cert:\\LocalMachine\\My; "
                                f"{_templates_carried(my_store)}")
            return None
    if not found:
        option = "thumbprint" if options.get("thumbprint") else "subject"
        plan.refused.append(f"{option}: no certificate with {label} in Cert:\\LocalMachine\\My (a listener certificate must be there [S1])")
        return None
    usable, rejected = [], []
    for entry in found:
        reasons = _validity_problems(entry, min_days)
        if not entry.get("has_private_key") or entry.get("key_error"):
            reasons.append(_key_broken(facts, entry) or "its private key is missing")
        (rejected if reasons else usable).append((entry, reasons))
    if not usable:
        option = "thumbprint" if options.get("thumbprint") else "subject" if options.get("subject") else "template"
        details = "; ".join(f"{e['thumbprint']}: {', '.join(r)}" for e, r in rejected)
        plan.refused.append(f"{option}: no certificate with {label} can serve the listener ({details})")
        return None
    return max(usable, key=lambda item: item[0].get("not_after") or "")[0]


def _bound_steps(plan: remediation.Plan, facts: common.Facts, options: dict[str, t.Any], min_days: int) -> None:
    """Grant NETWORK SERVICE Read on the chosen certificate's key, then bind it."""
    cert = common.get(facts, "certificate") or {}
    entry = _choose(plan, cert, options, facts, min_days)
    if entry is None:
        return
    operations = []
    if entry.get("key_readable_by_network_service") is not True:
        operations.append(_grant_operation(facts, entry))
    if cert.get("bound_thumbprint") != entry["thumbprint"] or not common.get(cert, "ssl_certificate_sha1_hash.local"):
        operations.append(remediation.listener_binding(entry["thumbprint"], common.get(cert, "ssl_certificate_sha1_hash.local"),
                                                       why="bind the chosen certificate of My to RDP-Tcp [S1][S6]"))
    if operations:
        plan.operations += operations
        plan.after = {"thumbprint": entry["thumbprint"], "source": "registry", "certificate": _describe(entry)}


# ==================================================================================================
# state: key_permissions
# ==================================================================================================

def _key_permission_steps(plan: remediation.Plan, facts: common.Facts, options: dict[str, t.Any]) -> None:
    """NETWORK SERVICE Read on the bound (or named) certificate's key, nothing else."""
    cert = common.get(facts, "certificate") or {}
    thumbprint = normalize_thumbprint(options["thumbprint"])[0] if options.get("thumbprint") else cert.get("bound_thumbprint")
    entry = next((e for store in reg.CERT_STORES for e in common.get(cert, f"stores.{store}", []) or [] if e.get("thumbprint") == thumbprint), None)
    option = "thumbprint" if options.get("thumbprint") else "state"
    if entry is None:
        plan.refused.append(f"{option}: no certificate {thumbprint or '(none bound)'} in Cert:\\LocalMachine\\My or Remote Desktop; "
                            "use state=self_signed or state=bound")
        return
    key_file = common.get(facts, "machinekeys.listener_key_file") or {}
    missing = not entry.get("has_private_key") or (entry.get("key_error") and "keyset does not exist" in str(entry["key_error"]).lower()) \
        or (entry.get("self_signed_container") and key_file.get("exists") is False)
    if missing:
        plan.refused.append(f"{option}: the private key of {entry['thumbprint']} is missing, no permission can fix it; use "
                            "state=self_signed (or rdp.doctor.machinekeys repair=regenerate)")
        return
    plan.before["key_readable_by_network_service"] = entry.get("key_readable_by_network_service")
    plan.after["key_readable_by_network_service"] = entry.get("key_readable_by_network_service")
    if entry.get("key_readable_by_network_service") is True and not entry.get("key_error"):
        return
    plan.operations.append(_grant_operation(facts, entry))
    plan.after["key_readable_by_network_service"] = True


def plan(facts: common.Facts, options: dict[str, t.Any]) -> remediation.Plan:
    """The plan for the listener certificate state the options ask for."""
    result = remediation.Plan()
    result.refused = common.read_error_problems(facts, "registry", "certificates", "services") + option_problems(options)
    cert = common.get(facts, "certificate") or {}
    if not result.refused and cert.get("stores_read") is False:
        result.refused.append("the host did not report its certificate stores: nothing is planned blind")
    if result.refused:
        return common.finish(result)
    min_days = options.get("min_days_valid", DEFAULT_MIN_DAYS_VALID)
    state = options["state"]
    if state != "key_permissions":
        result.before = _before(cert)
        result.after = dict(result.before)
        if _template_manual(result, cert):
            return common.finish(result)
    if state == "self_signed":
        _self_signed_steps(result, facts, min_days)
    elif state == "bound":
        _bound_steps(result, facts, options, min_days)
    else:
        _key_permission_steps(result, facts, options)
    return common.finish(result)
