"""Fleet files: YAML -> lab hosts (contracts section 7).

Format::

    defaults:                       # all optional
      os_version: "2022"            # or "10.0.20348"; 2012r2, 2016, 2019, 2022
      credentials: {user: labadmin, password: "..."}   # WinRM Basic credentials, an administrator on every host
      latency_ms: 0
      firewall_blocks: refuse       # refuse (RST, fast: the default) or drop (SYN dropped, as Windows does)
    hosts:
      - name: f-cert-expired        # DNS-safe, unique
        faults: [cert_expired]      # names from tests.lab.faults.FAULTS
        os_version: "2016"          # optional
        latency_ms: 20              # optional
        domain: contoso.com         # optional: joined to this DNS domain
        firewall_blocks: drop       # optional: how a firewall-only block of the RDP port looks to a client
    generate: {count: 10, prefix: win}   # optional: N healthy hosts win001..win010

Addresses are assigned in file order, then generated hosts: 127.0.0.2, 127.0.0.3, ... 127.0.0.254,
127.0.1.1, ... (never 127.0.0.1, which "localhost" resolves to; no .0 or .255 octets).

``firewall_blocks`` (contracts section 9): Windows Defender Firewall drops a blocked SYN, so the client
times out; "drop" makes the lab do that, "refuse" (the default) answers RST at once, which keeps demos and
tests fast. It matters only when the firewall alone blocks the port; with nothing listening it is RST.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from tests.lab.faults import FAULTS, FaultError, build_host, os_version_for, validate_faults
from tests.lab.model import (
    DEFAULT_FIREWALL_BLOCKS, DEFAULT_OS_VERSION, FIREWALL_BLOCK_MODES, SID_ADMINISTRATORS, Host, as_utc, resolve_os_version,
)

FLEET_DIR = Path(__file__).resolve().parent / "fleets"
DEFAULT_FLEET = FLEET_DIR / "default.yml"
SMALL_FLEET = FLEET_DIR / "small.yml"

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)
_HOST_KEYS = {"name", "faults", "os_version", "latency_ms", "domain", "firewall_blocks"}
_TOP_KEYS = {"defaults", "hosts", "generate"}
_DEFAULT_KEYS = {"os_version", "credentials", "latency_ms", "firewall_blocks"}
MAX_HOSTS = 254 * 256 - 2


class FleetError(ValueError):
    """An invalid fleet file; the message names the file and the offending entry."""


@dataclass(frozen=True)
class Credentials:
    """WinRM Basic credentials valid on every lab host."""

    user: str = "labadmin"
    password: str = "RdpDoctor-Lab-1!"


@dataclass
class Fleet:
    """The hosts of a fleet file, with their shared credentials."""

    hosts: list[Host]
    credentials: Credentials = field(default_factory=Credentials)
    source: Path | None = None

    def host(self, name: str) -> Host:
        """A host by name (case-insensitive); KeyError if absent."""
        for host in self.hosts:
            if host.name.lower() == name.lower():
                return host
        raise KeyError(name)

    def by_address(self, address: str) -> Host:
        """A host by its loopback address; KeyError if absent."""
        for host in self.hosts:
            if host.address == address:
                return host
        raise KeyError(address)


def addresses() -> Iterator[str]:
    """Loopback addresses for lab hosts, in assignment order."""
    for second in range(256):
        for third in range(1, 255):
            if (second, third) != (0, 1):
                yield f"127.0.{second}.{third}"


def _fail(where: str, message: str) -> FleetError:
    return FleetError(f"{where}: {message}")


def _int(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(where, f"{what} must be a non-negative integer, got {value!r}")
    return value


def _firewall_blocks(value: Any, where: str) -> str:
    if value not in FIREWALL_BLOCK_MODES:
        raise _fail(where, f"firewall_blocks must be one of {', '.join(FIREWALL_BLOCK_MODES)}, got {value!r}")
    return str(value)


def _os(value: Any, where: str) -> str:
    try:
        return resolve_os_version(value)
    except ValueError as err:
        raise _fail(where, str(err)) from None


def _mapping(value: Any, where: str, allowed: set[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, f"expected a mapping, got {type(value).__name__}")
    extra = sorted(set(map(str, value)) - allowed)
    if extra:
        raise _fail(where, f"unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")
    return value


@dataclass(frozen=True)
class HostSpec:
    """One validated host entry."""

    name: str
    faults: tuple[str, ...] = ()
    os_version: str | None = None
    latency_ms: int = 0
    domain: str | None = None
    firewall_blocks: str = DEFAULT_FIREWALL_BLOCKS


def _default_os_for(faults: list[str], default: str) -> str:
    """The fleet's default release, or the newest one every fault can exist on."""
    if all(not FAULTS[f].os_versions or default in FAULTS[f].os_versions for f in faults):
        return default
    return os_version_for(faults)


def _host_spec(entry: Any, where: str, defaults: dict) -> HostSpec:
    """Validate one ``hosts`` entry."""
    entry = _mapping(entry, where, _HOST_KEYS)
    name = entry.get("name")
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        raise _fail(where, f"name must be a DNS label (letters, digits, '-', at most 63), got {name!r}")
    where = f"{where} ({name})"
    faults = entry.get("faults") or []
    if not isinstance(faults, list) or not all(isinstance(f, str) for f in faults):
        raise _fail(where, "faults must be a list of fault names")
    domain = entry.get("domain")
    if domain is not None and (not isinstance(domain, str) or not _DOMAIN.match(domain)):
        raise _fail(where, f"domain must be a DNS domain like contoso.com, got {domain!r}")
    try:
        validate_faults(faults)
        if "os_version" in entry:  # explicit: a fault that cannot exist on it is an error
            os_version = _os(entry["os_version"], where)
        else:  # the fleet default, unless a fault needs another release (credssp_server_unpatched)
            os_version = _default_os_for(faults, defaults["os_version"])
        validate_faults(faults, os_version)
    except FaultError as err:
        raise _fail(where, str(err)) from None
    latency = _int(entry.get("latency_ms", defaults.get("latency_ms", 0)), where, "latency_ms")
    firewall_blocks = _firewall_blocks(entry.get("firewall_blocks", defaults["firewall_blocks"]), where)
    return HostSpec(name, tuple(faults), os_version, latency, domain, firewall_blocks)


def parse_fleet(data: Any, source: str = "<fleet>") -> tuple[list[HostSpec], Credentials]:
    """Validate fleet data (the parsed YAML); pure. Raises FleetError with a clear message."""
    data = _mapping(data, source, _TOP_KEYS)
    defaults = dict(_mapping(data.get("defaults"), f"{source}: defaults", _DEFAULT_KEYS))
    defaults["os_version"] = _os(defaults.get("os_version", DEFAULT_OS_VERSION), f"{source}: defaults")
    defaults["latency_ms"] = _int(defaults.get("latency_ms", 0), f"{source}: defaults", "latency_ms")
    defaults["firewall_blocks"] = _firewall_blocks(defaults.get("firewall_blocks", DEFAULT_FIREWALL_BLOCKS), f"{source}: defaults")
    creds = _mapping(defaults.get("credentials"), f"{source}: defaults.credentials", {"user", "password"})
    if any(not isinstance(v, str) or not v for v in creds.values()):
        raise _fail(f"{source}: defaults.credentials", "user and password must be non-empty strings")
    credentials = Credentials(**creds)
    entries = data.get("hosts") or []
    if not isinstance(entries, list):
        raise _fail(source, "hosts must be a list")
    specs = [_host_spec(e, f"{source}: hosts[{i}]", defaults) for i, e in enumerate(entries)]
    specs.extend(_generated(data.get("generate"), source, defaults))
    seen: set[str] = set()
    for spec in specs:
        if spec.name.lower() in seen:
            raise _fail(source, f"duplicate host name {spec.name!r}")
        seen.add(spec.name.lower())
    if len(specs) > MAX_HOSTS:
        raise _fail(source, f"too many hosts ({len(specs)} > {MAX_HOSTS})")
    return specs, credentials


def _generated(value: Any, source: str, defaults: dict) -> list[HostSpec]:
    """``generate: {count, prefix}`` -> healthy host specs <prefix>001..."""
    gen = _mapping(value, f"{source}: generate", {"count", "prefix"})
    if not gen:
        return []
    count = _int(gen.get("count", 0), f"{source}: generate", "count")
    prefix = gen.get("prefix", "win")
    if not isinstance(prefix, str) or not _DNS_LABEL.match(f"{prefix}0"):
        raise _fail(f"{source}: generate", f"prefix must start a DNS label, got {prefix!r}")
    width = max(3, len(str(count)))
    return [HostSpec(f"{prefix}{i:0{width}d}", (), defaults["os_version"], defaults["latency_ms"], None, defaults["firewall_blocks"])
            for i in range(1, count + 1)]


def build_fleet(specs: list[HostSpec], credentials: Credentials, now: dt.datetime | None = None, source: Path | None = None) -> Fleet:
    """Hosts from validated specs: addresses in order, faults applied, the WinRM user an administrator."""
    moment = as_utc(now)
    hosts = []
    for spec, address in zip(specs, addresses()):
        host = build_host(spec.name, address, spec.faults, spec.os_version, moment, spec.domain)
        host.latency_ms = spec.latency_ms
        host.firewall_blocks = spec.firewall_blocks
        _add_admin(host, credentials.user)
        hosts.append(host)
    return Fleet(hosts=hosts, credentials=credentials, source=source)


def _add_admin(host: Host, user: str) -> None:
    """The fleet's WinRM user exists on every host, in Administrators."""
    host.ensure_account(user, (SID_ADMINISTRATORS,))


def load_fleet(path: str | Path = DEFAULT_FLEET, now: dt.datetime | None = None) -> Fleet:
    """Read, validate and build a fleet file."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise FleetError(f"{file}: cannot read fleet file: {err}") from None
    except yaml.YAMLError as err:
        raise FleetError(f"{file}: invalid YAML: {err}") from None
    specs, credentials = parse_fleet(data, str(file))
    return build_fleet(specs, credentials, now, file)
