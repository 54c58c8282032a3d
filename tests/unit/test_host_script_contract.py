"""The twin contract (docs/dev/contracts.md section 2): every host script has a schema and a Python twin that agree.

For every ``plugins/host_scripts/<name>.ps1``: ``<name>.schema.json`` is a valid JSON Schema 2020-12 with
``params`` and ``result``; the lab has a twin; the twin's output for a healthy host, for every lab fault
and for combinations validates against ``result``; the params examples (and, for read_rdp_state, the
params the controller builds) validate against ``params``; and, statically on the script text, every
``params`` property is read as ``$Params.<name>`` and every required ``result`` key is a hashtable key.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import importlib
import json
import pathlib
import typing as t

import jsonschema
import pytest
import tree_sitter
import tree_sitter_powershell
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = pathlib.Path(__file__).resolve().parents[2]


SCRIPT_DIR = REPO / "plugins" / "host_scripts"
SCRIPTS = sorted(path.stem for path in SCRIPT_DIR.glob("*.ps1"))
NOW = dt.datetime(2026, 11, 21, 7, 0, 0, tzinfo=dt.timezone.utc)
VALIDATOR = jsonschema.Draft202012Validator


def lab(module: str) -> t.Any:
    """A lab module (imported lazily so a missing lab file fails the tests that need it, not collection)."""
    return importlib.import_module(f"tests.lab.{module}")


def collection(module: str) -> t.Any:
    """A module of the collection, as Ansible imports it."""
    return importlib.import_module(f"ansible_collections.rdp.doctor.plugins.{module}")


@functools.lru_cache(maxsize=None)
def schema(name: str) -> dict[str, t.Any]:
    """The script's schema document."""
    return json.loads((SCRIPT_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def part_validator(name: str, part: str) -> jsonschema.protocols.Validator:
    """A validator for ``params`` or ``result`` of the script's schema; ``#/$defs/...`` refs still resolve."""
    document = schema(name)
    return VALIDATOR({"$schema": document["$schema"], **document["properties"][part], "$defs": document.get("$defs", {})})


def validate(name: str, part: str, instance: t.Any) -> None:
    """Validate ``instance`` against ``params`` or ``result``."""
    part_validator(name, part).validate(instance)


def result_errors(name: str, instance: t.Any) -> list[str]:
    """Every validation error of a result, as readable text. A section may also be a section error (``oneOf``): the
    error shown is the one inside the alternative that fits best, at its own place."""
    errors = []
    for error in part_validator(name, "result").iter_errors(instance):
        best = jsonschema.exceptions.best_match([error])
        errors.append(f"{'/'.join(map(str, best.absolute_path))}: {best.message}")
    return errors


def controller_params(accounts: tuple[str, ...] = ("rdpuser",), port_hint: int | None = None) -> dict[str, t.Any]:
    """read_rdp_state params exactly as the controller builds them (``host_facts.build_params``), 14-day window."""
    host_facts = collection("module_utils.host_facts")
    params = host_facts.build_params({"accounts": list(accounts), "port_hint": port_hint, "event_days": 14, "event_sample_size": 3})
    assert params["registry_keys"] == list(collection("module_utils.rdp_registry").REGISTRY_KEYS)
    return params


def params_examples(name: str) -> list[dict[str, t.Any]]:
    """The script's ``params.examples`` plus, for read_rdp_state, the controller's own params."""
    examples = list(schema(name)["properties"]["params"].get("examples", []))
    if name == "read_rdp_state":
        examples += [controller_params(), controller_params(("rdpuser", ".\\Administrator", "CONTOSO\\alice"), 3389)]
    return examples


def build_host(faults: tuple[str, ...] = (), os_version: str | None = None) -> t.Any:
    """A lab host with ``faults`` applied."""
    return lab("faults").build_host("win01", "127.0.0.11", list(faults), os_version=os_version, now=NOW)


def run_twin(name: str, host: t.Any, params: dict[str, t.Any], **kwargs: t.Any) -> dict[str, t.Any]:
    """Run a script's twin on a host (``kwargs``: twin-specific extras such as read_rdp_state's ``now``)."""
    twins = importlib.import_module("tests.lab.twins")
    return twins.TWINS[name](host, copy.deepcopy(params), **kwargs)


# ---- static reading of the script text (tree-sitter-powershell) ----
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def walk(node: tree_sitter.Node) -> t.Iterator[tree_sitter.Node]:
    """Every node below ``node``, depth first."""
    yield node
    for child in node.children:
        yield from walk(child)


def script_tree(name: str) -> tree_sitter.Node:
    """The parsed script."""
    return PARSER.parse((SCRIPT_DIR / f"{name}.ps1").read_bytes()).root_node


def params_read(root: tree_sitter.Node) -> set[str]:
    """Names read as ``$Params.<name>`` (PowerShell is case-insensitive: lower-cased)."""
    names = set()
    for node in walk(root):
        if node.type == "member_access" and node.children and node.children[0].type == "variable":
            if node.children[0].text.decode().lower() == "$params":
                member = next((c for c in node.children if c.type == "member_name"), None)
                if member is not None:
                    names.add(member.text.decode().lower())
    return names


def hashtable_keys(root: tree_sitter.Node) -> set[str]:
    """Keys written in hashtable literals (``key = value``), quotes removed."""
    keys = set()
    for node in walk(root):
        if node.type == "key_expression":
            keys.add(node.text.decode().strip("'\""))
    return keys


# ---- the contract, for every script ----
def test_there_are_host_scripts() -> None:
    """The glob finds the collection's scripts (an empty list would make every parametrized test vacuous)."""
    assert "read_rdp_state" in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_schema_is_valid_json_schema(name: str) -> None:
    """``<name>.schema.json`` exists, is draft 2020-12 and has exactly ``params`` and ``result``."""
    document = schema(name)
    VALIDATOR.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(document["properties"]) == {"params", "result"}
    assert set(document["required"]) == {"params", "result"}
    for part in ("params", "result"):
        assert document["properties"][part]["type"] == "object"


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_has_a_twin(name: str) -> None:
    """A script without a twin cannot run in the lab: the contract fails."""
    twins = importlib.import_module("tests.lab.twins")
    assert name in twins.TWINS, f"no twin tests/lab/twins/{name}.py with run(host, params) for plugins/host_scripts/{name}.ps1"


@pytest.mark.parametrize("name", SCRIPTS)
def test_params_examples_validate(name: str) -> None:
    """Every params example (and the controller's params) is valid; a script must declare at least one."""
    examples = params_examples(name)
    assert examples, f"{name}.schema.json: add params.examples so the contract tests can run the twin"
    for example in examples:
        validate(name, "params", example)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_reads_every_declared_param(name: str) -> None:
    """Each ``params`` property is read as ``$Params.<name>``, and nothing undeclared is read."""
    declared = {p.lower() for p in schema(name)["properties"]["params"]["properties"]}
    read = params_read(script_tree(name))
    assert declared - read == set(), f"declared but never read: {sorted(declared - read)}"
    assert read - declared == set(), f"read but not declared in the schema: {sorted(read - declared)}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_emits_every_required_result_key(name: str) -> None:
    """Each required top-level ``result`` key is written as a hashtable key in the script."""
    required = set(schema(name)["properties"]["result"].get("required", []))
    missing = required - hashtable_keys(script_tree(name))
    assert not missing, f"required result keys never written by the script: {sorted(missing)}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_twin_output_validates_for_a_healthy_host(name: str) -> None:
    """Healthy host, every params example and every supported OS release."""
    for os_version in lab("model").OS_RELEASES:
        for params in params_examples(name):
            assert result_errors(name, run_twin(name, build_host(os_version=os_version), params)) == []


def fault_names() -> list[str]:
    """Every lab fault (contracts section 8)."""
    return list(lab("faults").FAULTS)


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("fault", fault_names())
def test_twin_output_validates_for_each_fault(name: str, fault: str) -> None:
    """One fault at a time."""
    for params in params_examples(name):
        assert result_errors(name, run_twin(name, build_host((fault,)), params)) == []


COMBINATIONS = (
    ("cert_expired", "cert_wrong_name", "cert_key_unreadable"),
    ("termservice_disabled", "firewall_rdp_disabled", "account_disabled"),
    ("licensing_grace_expired", "ghost_sessions", "session_limit_reached"),
    ("port_moved", "gpo_overrides_security_layer", "tls12_disabled", "credssp_vulnerable"),
    ("machinekeys_acl_broken", "listener_key_missing", "account_denied_rdp", "account_not_in_rdu"),
)


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("faults", COMBINATIONS, ids="+".join)
def test_twin_output_validates_for_fault_combinations(name: str, faults: tuple[str, ...]) -> None:
    """Faults combined, as fleets declare them."""
    for params in params_examples(name):
        assert result_errors(name, run_twin(name, build_host(faults), params)) == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(lab("faults").FAULTS)), max_size=5, unique=True))
def test_read_rdp_state_validates_for_random_fault_sets(faults: list[str]) -> None:
    """Any compatible fault set gives a valid document."""
    try:
        lab("faults").validate_faults(faults)
        host = build_host(tuple(faults))
    except lab("faults").FaultError:
        return  # conflicting or OS-incompatible set: the lab refuses it, nothing to read
    assert result_errors("read_rdp_state", run_twin("read_rdp_state", host, controller_params())) == []


# ---- the schema is strict enough to catch a drifting twin or script ----
@pytest.mark.parametrize("mutate, where", [
    (lambda d: d.pop("sessions"), ""),
    (lambda d: d.update(extra=1), ""),
    (lambda d: d["services"][0].update(state="StartPending"), "services/0/state"),
    (lambda d: d["registry"].update({"HKLM:\\X": {"v": 1.5}}), "registry"),
    (lambda d: d["certificates"]["Remote Desktop"][0].update(thumbprint="a" * 40), "certificates/Remote Desktop/0/thumbprint"),
    (lambda d: d["os"].update(build="20348"), "os/build"),
    (lambda d: d["sessions"][0].update(logon_time="2026-11-21 07:00"), "sessions/0/logon_time"),
    (lambda d: d.update(listening={"error": ""}), "listening"),
    (lambda d: d.update(firewall={"error": {"type": "System.Exception"}}), "firewall"),  # a section error names type and message
    (lambda d: d["firewall"]["rules"][0].pop("remote_addresses"), "firewall/rules/0"),
    (lambda d: d["events"][0].pop("error"), "events/0"),
    (lambda d: d["accounts"]["rights"].pop("SeDenyRemoteInteractiveLogonRight"), "accounts/rights"),
])
def test_result_schema_rejects_drift(mutate: t.Callable[[dict], t.Any], where: str) -> None:
    """A wrong type, a missing or extra key, a non-Windows enum value: each is a validation error at its place."""
    document = run_twin("read_rdp_state", build_host(), controller_params())
    document["sessions"][0]["logon_time"] = "2026-11-21T07:00:00Z"
    assert result_errors("read_rdp_state", document) == []
    mutate(document)
    errors = result_errors("read_rdp_state", document)
    assert errors and any(e.startswith(where) for e in errors), errors


@pytest.mark.parametrize("params", [
    {"registry_keys": ["HKCU:\\Software"], "event_days": 14, "event_sample_size": 3, "accounts": [], "port_hint": None},
    {"registry_keys": [], "event_days": 0, "event_sample_size": 3, "accounts": [], "port_hint": None},
    {"registry_keys": [], "event_days": 14, "event_sample_size": 3, "accounts": ["a\"b"], "port_hint": None},
    {"registry_keys": [], "event_days": 14, "event_sample_size": 3, "accounts": [], "port_hint": 70000},
    {"registry_keys": [], "event_days": 14, "event_sample_size": 3, "accounts": []},
    {"registry_keys": [], "event_days": 14, "event_sample_size": 3, "accounts": [], "port_hint": None, "other": 1},
])
def test_params_schema_rejects_bad_params(params: dict[str, t.Any]) -> None:
    """Other hives, out-of-range numbers, names with forbidden characters, missing or unknown keys."""
    with pytest.raises(jsonschema.ValidationError):
        validate("read_rdp_state", "params", params)


# ---- read_rdp_state twin: it reads the model the way the script reads Windows ----
def read(faults: tuple[str, ...] = (), **params: t.Any) -> dict[str, t.Any]:
    """The twin's document for a host with ``faults``."""
    return run_twin("read_rdp_state", build_host(faults), {**controller_params(), **params}, now=NOW)


def event(document: dict[str, t.Any], provider: str, event_id: int) -> dict[str, t.Any] | None:
    """The events entry for a provider and id."""
    return next((e for e in document["events"] if e["provider"] == provider and e["id"] == event_id), None)


def test_healthy_document() -> None:
    """Registry types, certificate key, listener, services and sessions of a healthy host."""
    doc = read()
    model = lab("model")
    rdp_tcp = doc["registry"][model.RDP_TCP]
    assert rdp_tcp["MaxInstanceCount"] == 4294967295 and rdp_tcp["PortNumber"] == 3389
    assert rdp_tcp["SSLCertificateSHA1Hash"] == rdp_tcp["SSLCertificateSHA1Hash"].lower() and len(rdp_tcp["SSLCertificateSHA1Hash"]) == 40
    assert doc["registry"][model.POL] is None
    cert = doc["certificates"]["Remote Desktop"][0]
    assert cert["thumbprint"] == rdp_tcp["SSLCertificateSHA1Hash"].upper()
    assert cert["key_container"] == "TSSecKeySet1" and cert["key_readable_by_network_service"] is True and cert["key_error"] is None
    assert cert["key_file"] == doc["machinekeys"]["listener_key_file"]["name"] and cert["key_readable_by_admin"] is True
    assert doc["machinekeys"]["listener_key_file"]["exists"] is True
    assert doc["machinekeys"]["listener_key_file"]["name"] == f"f686aace6942fb7f7ceb231212eef4a4_{doc['os']['machine_guid']}"
    assert [s["name"] for s in doc["services"]] == ["TermService", "SessionEnv", "UmRdpService", "MpsSvc"]
    assert {(s["address"], s["port"], s["process"]) for s in doc["listening"]["tcp"]} >= {("0.0.0.0", 3389, "svchost")}
    assert {(s["id"], s["state"]) for s in doc["sessions"]} == {(0, "Disconnected"), (1, "Connected"), (65536, "Listen")}
    rdp_rules = {"RemoteDesktop-UserMode-In-TCP", "RemoteDesktop-UserMode-In-UDP", "RemoteDesktop-Shadow-In-TCP"}
    assert {r["name"] for r in doc["firewall"]["rules"]} == rdp_rules
    checked = doc["accounts"]["checked"][0]
    assert checked["exists"] and "S-1-5-32-555" in checked["groups"]
    assert doc["accounts"]["rights"]["SeRemoteInteractiveLogonRight"] == ["S-1-5-32-544", "S-1-5-32-555"]
    assert all(e["count"] == 0 for e in doc["events"])  # fixed-id queries report zero counts, nothing else


def test_termservice_stopped_leaves_no_listener() -> None:
    """No socket and no Listen session; the service reads Stopped with pid 0."""
    doc = read(("termservice_stopped",))
    assert doc["listening"]["tcp"] == [] and doc["listening"]["udp"] == []
    assert all(s["state"] != "Listen" for s in doc["sessions"])
    assert doc["services"][0] == {**doc["services"][0], "state": "Stopped", "pid": 0}


def test_port_moved_reads_both_ports() -> None:
    """The effective port (3390) and the port the controller dials (3389) are both looked at."""
    doc = read(("port_moved",), port_hint=3389)
    assert {s["port"] for s in doc["listening"]["tcp"]} == {3390}
    rule = next(r for r in doc["firewall"]["rules"] if r["name"] == "RemoteDesktop-UserMode-In-TCP")
    assert rule["local_ports"] == ["3389"]


def test_port_conflict_names_the_other_process() -> None:
    """Another process owns the port: its name is reported."""
    doc = read(("port_conflict",))
    owners = {s["process"] for s in doc["listening"]["tcp"] if s["port"] == 3389}
    assert owners and "svchost" not in owners


def test_key_faults() -> None:
    """An unreadable key is data (readable False); a missing key file is a key_error (container still known) and a missing listener file."""
    unreadable = read(("cert_key_unreadable",))["certificates"]["Remote Desktop"][0]
    assert unreadable["key_readable_by_network_service"] is False and unreadable["key_error"] is None
    missing = read(("listener_key_missing",))
    cert = missing["certificates"]["Remote Desktop"][0]
    assert cert["key_error"] == f"no key file {missing['machinekeys']['listener_key_file']['name']} in MachineKeys or Keys"
    assert cert["key_container"] == "TSSecKeySet1"  # from the certificate
    assert cert["key_file"] is None and cert["key_readable_by_network_service"] is None
    assert missing["machinekeys"]["listener_key_file"] == {**missing["machinekeys"]["listener_key_file"], "exists": False, "sddl": None}


def test_events_are_counted_with_bounded_samples() -> None:
    """cert_expired logs 1058 17, 9 and 1 days ago: counted within event_days, newest first, samples capped."""
    doc = read(("cert_expired",), event_days=30, event_sample_size=2)
    entry = event(doc, "Microsoft-Windows-TerminalServices-RemoteConnectionManager", 1058)
    assert entry is not None and entry["count"] == 3 and len(entry["samples"]) == 2
    assert entry["last"] == entry["samples"][0]["time"] > entry["samples"][1]["time"]
    assert entry["last"] == "2026-11-20T07:00:00Z"
    assert event(read(("cert_expired",), event_days=14), "Microsoft-Windows-TerminalServices-RemoteConnectionManager", 1058)["count"] == 2
    assert event(read(("cert_expired",), event_sample_size=0), "Microsoft-Windows-TerminalServices-RemoteConnectionManager", 1058)["samples"] == []


def test_whole_log_queries_group_by_id() -> None:
    """Licensing events in the RemoteConnectionManager/Admin log appear per id."""
    doc = read(("licensing_grace_expired",), event_days=30)
    ids = {e["id"] for e in doc["events"] if e["log"].endswith("RemoteConnectionManager/Admin")}
    assert {1068, 1069} <= ids
    assert doc["os"]["rdsh_installed"] is True and doc["ts_setting"]["GracePeriodDays"] == 0


def test_ghost_sessions_report_their_age() -> None:
    """Disconnected sessions carry disconnect time and age in seconds."""
    doc = read(("ghost_sessions",))
    ghosts = [s for s in doc["sessions"] if s["user"] and s["state"] == "Disconnected"]
    assert len(ghosts) == 3 and max(s["disconnected_seconds"] for s in ghosts) >= 40 * 86400


def test_accounts_lookup_forms() -> None:
    """Local names in every form; another domain's account is not found in the lab."""
    doc = read(accounts=["rdpuser", ".\\rdpuser", "WIN01\\RDPUSER", "CONTOSO\\rdpuser", "nobody"])
    assert [a["exists"] for a in doc["accounts"]["checked"]] == [True, True, True, False, False]
    assert doc["accounts"]["checked"][4] == {"name": "nobody", "exists": False, "sid": None, "disabled": None, "locked_out": None,
                                             "groups": [], "groups_complete": True, "error": None}


def test_wmi_broken_gives_null_settings() -> None:
    """No root\\cimv2\\TerminalServices: both WMI sections are null, the rest is still read."""
    host = build_host()
    host.wmi_broken = True
    doc = run_twin("read_rdp_state", host, controller_params())
    assert doc["ts_general_setting"] is None and doc["ts_setting"] is None
    assert result_errors("read_rdp_state", doc) == []


def test_twin_fails_like_the_script() -> None:
    """A missing parameter and a non-HKLM path raise the errors the script raises, at the script's line."""
    twins = importlib.import_module("tests.lab.twins")
    text = (SCRIPT_DIR / "read_rdp_state.ps1").read_text(encoding="utf-8").splitlines()
    params = controller_params()
    del params["accounts"]
    with pytest.raises(twins.TwinError) as missing:
        run_twin("read_rdp_state", build_host(), params)
    assert missing.value.type == "System.Management.Automation.PropertyNotFoundException"
    assert "$Params.accounts" in text[missing.value.line - 1]
    with pytest.raises(twins.TwinError) as hive:
        run_twin("read_rdp_state", build_host(), {**controller_params(), "registry_keys": ["HKCU:\\Software"]})
    assert hive.value.type == "System.Management.Automation.RuntimeException"
    assert "throw" in text[hive.value.line - 1]


def test_static_readers_see_params_and_keys() -> None:
    """The static checks read ``$Params.<name>`` (any case) and hashtable keys (quoted or not), nothing else."""
    root = PARSER.parse(b"$x = $Params.First + $params.SECOND + $Other.third\n$h = @{ a = 1; 'b c' = @{ d = 2 } }\n").root_node
    assert params_read(root) == {"first", "second"}
    assert hashtable_keys(root) == {"a", "b c", "d"}
