"""Fleet files: loading, address assignment and validation errors."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
import yaml

from tests.lab.faults import FAULTS
from tests.lab.fleet import DEFAULT_FLEET, FLEET_DIR, SMALL_FLEET, FleetError, addresses, load_fleet, parse_fleet
from tests.lab.model import SID_ADMINISTRATORS

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)


def test_default_fleet_has_one_host_per_fault_and_healthy_ones() -> None:
    fleet = load_fleet(DEFAULT_FLEET, now=NOW)
    single = {h.faults[0] for h in fleet.hosts if len(h.faults) == 1}
    assert single == set(FAULTS)
    assert len([h for h in fleet.hosts if not h.faults]) == 3
    combined = [h.faults for h in fleet.hosts if len(h.faults) > 1]
    assert combined == [["firewall_rdp_disabled", "cert_expired"], ["credssp_force_updated", "tls12_disabled"]]
    assert fleet.host("f-cert-expired").faults == ["cert_expired"]
    assert fleet.host("F-CREDSSP-SERVER-UNPATCHED").os.version == "10.0.14393"
    assert fleet.hosts[0].address == "127.0.0.2"
    assert len({h.address for h in fleet.hosts}) == len(fleet.hosts)
    admin = fleet.hosts[0].find_account(fleet.credentials.user)
    assert admin is not None and SID_ADMINISTRATORS in fleet.hosts[0].groups_of(admin.sid)


def test_small_fleet_loads() -> None:
    fleet = load_fleet(SMALL_FLEET, now=NOW)
    assert 3 <= len(fleet.hosts) <= 8 and fleet.by_address("127.0.0.2").name == "ok-2022"


def test_addresses_skip_localhost_and_roll_over() -> None:
    first = list(itertools.islice(addresses(), 260))
    assert first[0] == "127.0.0.2" and "127.0.0.1" not in first
    assert first[252] == "127.0.0.254" and first[253] == "127.0.1.1"
    assert not any(a.endswith((".0", ".255")) for a in first)


def test_generate_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "gen.yml"
    path.write_text(yaml.safe_dump({
        "defaults": {"os_version": "2019", "latency_ms": 5, "credentials": {"user": "ops", "password": "pw"}},
        "hosts": [{"name": "special", "faults": ["nla_disabled"], "os_version": "10.0.20348", "latency_ms": 50},
                  {"name": "joined", "domain": "contoso.com"}],
        "generate": {"count": 3, "prefix": "web"},
    }))
    fleet = load_fleet(path, now=NOW)
    assert [h.name for h in fleet.hosts] == ["special", "joined", "web001", "web002", "web003"]
    assert fleet.host("special").os.version == "10.0.20348" and fleet.host("special").latency_ms == 50
    assert fleet.host("web002").os.version == "10.0.17763" and fleet.host("web002").latency_ms == 5
    assert fleet.host("joined").os.fqdn == "joined.contoso.com"
    assert fleet.credentials.user == "ops" and fleet.source == path


@pytest.mark.parametrize("data,message", [
    ({"hosts": [{"name": "a", "faults": ["nope"]}]}, "unknown fault.*'nope'.*known faults"),
    ({"hosts": [{"name": "a"}, {"name": "A"}]}, "duplicate host name"),
    ({"hosts": [{"name": "a"}], "generate": {"count": 1, "prefix": "a"}}, None),
    ({"hosts": [{"name": "a", "os_version": "2008"}]}, "unknown os_version"),
    ({"defaults": {"os_version": "xp"}}, "unknown os_version"),
    ({"hosts": [{"name": "bad_name"}]}, "DNS label"),
    ({"hosts": [{"name": "a", "colour": "red"}]}, "unknown key.*colour"),
    ({"hosts": [{"name": "a", "latency_ms": -1}]}, "latency_ms"),
    ({"hosts": [{"name": "a", "faults": "rdp_disabled"}]}, "list of fault names"),
    ({"hosts": [{"name": "a", "faults": ["credssp_vulnerable", "credssp_force_updated"]}]}, "conflicts"),
    ({"hosts": [{"name": "a", "faults": ["credssp_server_unpatched"], "os_version": "2022"}]}, "cannot exist"),
    ({"hosts": [{"name": "a", "domain": "not a domain"}]}, "DNS domain"),
    ({"defaults": {"credentials": {"user": ""}}}, "non-empty"),
    ({"hosts": {"name": "a"}}, "hosts must be a list"),
    ({"hosts": [{"name": "a", "firewall_blocks": "reject"}]}, r"hosts\[0\] \(a\): firewall_blocks must be one of refuse, drop, got 'reject'"),
    ({"hosts": [{"name": "a", "firewall_blocks": True}]}, "firewall_blocks must be one of refuse, drop, got True"),
    ({"defaults": {"firewall_blocks": "DROP"}}, "defaults: firewall_blocks must be one of refuse, drop, got 'DROP'"),
    ({"defaults": {"firewall_blocks": None}}, "defaults: firewall_blocks must be one of refuse, drop, got None"),
    ({"host": []}, "unknown key.*host"),
    (["a"], "expected a mapping"),
])
def test_validation_errors(data: object, message: str | None) -> None:
    if message is None:  # generated names collide with listed ones only when equal: a001 != a
        specs = parse_fleet(data, "t.yml")[0]
        assert [s.name for s in specs] == ["a", "a001"]
        return
    with pytest.raises(FleetError, match=message) as err:
        parse_fleet(data, "t.yml")
    assert str(err.value).startswith("t.yml")


def test_firewall_blocks_default_refuse_per_host_and_defaults(tmp_path: Path) -> None:
    """firewall_blocks: per host beats defaults, generated hosts take defaults, refuse without either."""
    path = tmp_path / "fw.yml"
    path.write_text(yaml.safe_dump({
        "defaults": {"firewall_blocks": "drop"},
        "hosts": [{"name": "inherits", "faults": ["firewall_rdp_disabled"]}, {"name": "own", "firewall_blocks": "refuse"}],
        "generate": {"count": 1, "prefix": "gen"},
    }))
    fleet = load_fleet(path, now=NOW)
    assert {h.name: h.firewall_blocks for h in fleet.hosts} == {"inherits": "drop", "own": "refuse", "gen001": "drop"}
    specs = parse_fleet({"hosts": [{"name": "a"}], "generate": {"count": 1}})[0]
    assert [s.firewall_blocks for s in specs] == ["refuse", "refuse"]


def test_shipped_fleets_drop_only_where_the_probe_fleet_says() -> None:
    """default.yml and small.yml keep refuse (fast demos, test_diagnose_lab); probe.yml drops for its firewall hosts."""
    assert {h.firewall_blocks for h in load_fleet(DEFAULT_FLEET, now=NOW).hosts} == {"refuse"}
    assert {h.firewall_blocks for h in load_fleet(SMALL_FLEET, now=NOW).hosts} == {"refuse"}
    probe = load_fleet(FLEET_DIR / "probe.yml", now=NOW)
    assert sorted(h.name for h in probe.hosts if h.firewall_blocks == "drop") == [
        "p-firewall-gpo-blocks", "p-firewall-rdp-disabled", "p-port-moved"]


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="cannot read"):
        load_fleet(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("hosts: [\n")
    with pytest.raises(FleetError, match="invalid YAML"):
        load_fleet(bad)


def test_fault_needing_an_old_release_gets_it_unless_explicit() -> None:
    specs = parse_fleet({"hosts": [{"name": "a", "faults": ["credssp_server_unpatched"]}, {"name": "b"}]})[0]
    assert [s.os_version for s in specs] == ["10.0.14393", "10.0.20348"]
    with pytest.raises(FleetError, match="cannot exist"):
        parse_fleet({"hosts": [{"name": "a", "faults": ["credssp_server_unpatched"], "os_version": "2019"}]})
