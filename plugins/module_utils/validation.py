# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option checks every module and role of the collection applies before it touches a host (issue 10).

One place for the checks an Ansible argument spec cannot express: control characters and lengths of
strings, finite numbers in a range, host names, unknown keys inside dict options, files that must be
regular, readable and bounded. Combinations of options (mutually exclusive, dependent) are each module's own,
in its planner's ``option_problems``. Each function returns a list of messages (empty = fine); each message
names the option and what is allowed, so ``"; ".join(problems)`` is the task's ``msg``.

:func:`spec_problems` walks an argument spec and applies the generic checks to every option by type;
the modules add their own ranges with :func:`number_problems` and friends. Everything here is pure
except :func:`readable_file_problems` (it looks at the file system, never reads the file's content).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import stat
import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import NoLogError, UnsupportedError

#: Longest string option accepted unless an option says otherwise (names, subjects, addresses: far less).
MAX_TEXT_LENGTH = 1024
#: A DNS name is at most 253 characters (RFC 1035 section 2.3.4, without the trailing dot).
MAX_HOST_NAME_LENGTH = 253
#: C0 and C1 control characters and DEL: never part of a name, address, subject or tag; a NUL cuts a string
#: short in Windows APIs, a newline forges log lines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Options whose value is data read from a host (host facts, probe results, findings): not user text.
DATA_OPTIONS = frozenset({"facts", "probe_before", "findings"})


def validated_arguments(spec: dict[str, dict[str, t.Any]], args: dict[str, t.Any], prefix: str = "") -> tuple[dict[str, t.Any], list[str]]:
    """(validated options, problems) of Ansible's own argument spec check, every message naming its option.

    ``ActionBase.validate_argument_spec`` reports only the first error, and for a dict option that is not a dict
    that first error is a bare "dictionary requested, could not parse JSON or key=value" naming nothing: here the
    unnamed duplicates are dropped and every remaining error is kept.
    """
    outcome = ArgumentSpecValidator(spec).validate(dict(args))
    errors = list(outcome.errors)
    named = [error for error in errors if not isinstance(error, NoLogError)] or errors
    messages = [prefix + (f"Unsupported parameters: {error}" if isinstance(error, UnsupportedError) else str(error)) for error in named]
    validated = dict(args)
    validated.update(outcome.validated_parameters)
    return validated, messages


def _describe(value: t.Any) -> str:
    """A short repr for messages (a 5000-character value is not echoed whole)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def text_problems(name: str, value: t.Any, max_length: int = MAX_TEXT_LENGTH, allow_empty: bool = True) -> list[str]:
    """A string option: no control characters (NUL, newline, ESC ...), at most ``max_length`` characters."""
    if value is None:
        return []
    if not isinstance(value, str):
        return [f"{name} must be a string, not {type(value).__name__} {_describe(value)}"]
    problems = []
    found = _CONTROL.search(value)
    if found:
        problems.append(f"{name} must not contain control characters (found {found.group()!r} at position {found.start()})")
    if len(value) > max_length:
        problems.append(f"{name} is {len(value)} characters long; at most {max_length} are allowed")
    if not allow_empty and not value.strip():
        problems.append(f"{name} must not be empty")
    return problems


def number_problems(name: str, value: t.Any, low: float, high: float, unit: str = "", integer: bool = False) -> list[str]:
    """A number option: a real, finite number (not a boolean, NaN or infinity) from ``low`` to ``high``."""
    if value is None:
        return []
    allowed = f"from {low:g} to {high:g}{' ' + unit if unit else ''}"
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [f"{name} must be {kind} {allowed}, not {_describe(value)}"]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{name} must be a finite number {allowed}, not {value!r}"]
    if integer and isinstance(value, float) and not value.is_integer():
        return [f"{name} must be a whole number {allowed}, not {value!r}"]
    if not low <= value <= high:
        return [f"{name} must be {kind} {allowed}, not {value!r}"]
    return []


def port_problems(name: str, value: t.Any) -> list[str]:
    """A TCP port option (1-65535)."""
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return [f"{name} must be a TCP port (1-65535), not {_describe(value)}"]
    return []


def unknown_key_problems(name: str, value: t.Any, allowed: t.Iterable[str]) -> list[str]:
    """A dict option: only the ``allowed`` keys, each a string."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [f"{name} must be a dictionary, not {type(value).__name__} {_describe(value)}"]
    known = sorted(allowed)
    unknown = [key for key in value if key not in known]
    if not unknown:
        return []
    return [f"{name}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(_describe(k) for k in unknown)}; "
            f"allowed: {', '.join(known)}"]


def bool_map_problems(name: str, value: t.Any, allowed: t.Iterable[str]) -> list[str]:
    """A dict of switches: known keys, each true or false (a string 'false' would count as on)."""
    problems = unknown_key_problems(name, value, allowed)
    if isinstance(value, dict):
        problems += [f"{name}.{key} must be true or false, not {_describe(switch)}" for key, switch in value.items()
                     if key in allowed and not isinstance(switch, bool)]
    return problems


#: Largest file an option may point at (a CA bundle of every public root is ~250 KB).
MAX_FILE_BYTES = 4 * 1024 * 1024


def readable_file_problems(name: str, path: t.Any, max_bytes: int = MAX_FILE_BYTES) -> list[str]:
    """A path option: an existing regular file (not a FIFO, device or directory), readable, at most ``max_bytes``.

    Looks at the file's metadata only: a FIFO would block the reader forever and ``/dev/zero`` never ends (issue 10).
    """
    if path is None:
        return []
    problems = text_problems(name, path, max_length=4096, allow_empty=False)
    if problems:
        return problems
    try:
        info = os.stat(path)
    except OSError as exc:
        return [f"{name}: {path!r} cannot be used ({exc.strerror or type(exc).__name__}); it must be a readable regular file"]
    if not stat.S_ISREG(info.st_mode):
        return [f"{name}: {path!r} is not a regular file (a FIFO, device or directory cannot be read safely)"]
    if info.st_size > max_bytes:
        return [f"{name}: {path!r} is {info.st_size} bytes; at most {max_bytes} are allowed"]
    if not os.access(path, os.R_OK):
        return [f"{name}: {path!r} is not readable by the controller's user"]
    return []


def _element_problems(name: str, spec: dict[str, t.Any], items: t.Any, limit: int = MAX_TEXT_LENGTH) -> list[str]:
    problems: list[str] = []
    if not isinstance(items, list):
        return problems
    for index, item in enumerate(items):
        label = f"{name}[{index}]"
        if spec.get("elements") == "str":
            problems += text_problems(label, item, max_length=limit, allow_empty=False)
        elif spec.get("elements") == "dict" and spec.get("options") and isinstance(item, dict):
            problems += spec_problems(spec["options"], item, prefix=f"{label}.")
    return problems


def spec_problems(spec: dict[str, dict[str, t.Any]], options: dict[str, t.Any], prefix: str = "",
                  lengths: dict[str, int] | None = None, skip: t.Iterable[str] = ()) -> list[str]:
    """The generic checks for every option of an argument spec, by type (after Ansible's own type checks).

    ``str``/``path`` and ``raw`` strings: no control characters, bounded length (``lengths`` per option);
    ``float``: finite; ``int``: not a boolean; ``list`` of ``str``: each element a non-empty clean string; ``dict`` with ``options``:
    the same inside, unknown keys named (the spec validator only sees the top level when the value arrives
    templated from a role). Options in :data:`DATA_OPTIONS` carry host data and are left to their module, options
    in ``skip`` to a stricter check of the caller's (e.g. :func:`probe_target_problems`).
    """
    problems: list[str] = []
    for option, rule in spec.items():
        value = options.get(option)
        name = prefix + option
        if value is None or option in DATA_OPTIONS or option in skip:
            continue
        kind = rule.get("type", "str")
        limit = (lengths or {}).get(option, MAX_TEXT_LENGTH)
        if kind in ("str", "path") or (kind == "raw" and isinstance(value, str)):
            problems += text_problems(name, value, max_length=limit)
        elif kind == "float":
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{name} must be a finite number, not {value!r}")
        elif kind == "int" and isinstance(value, bool):  # Ansible's int check lets a boolean through as 0/1
            problems.append(f"{name} must be a whole number, not {value!r}")
        elif kind == "list":
            problems += _element_problems(name, rule, value, limit)
        elif kind == "dict" and rule.get("options"):
            problems += unknown_key_problems(name, value, rule["options"])
            if isinstance(value, dict):
                problems += spec_problems(rule["options"], value, prefix=f"{name}.")
    return problems


_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")


def host_name_problems(name: str, value: t.Any) -> list[str]:
    """A host option: an IPv4 or IPv6 address or a DNS name (labels of letters, digits, '-' and '_', at most 253
    characters). Dotted numbers must be a real IPv4 address: ``999.1.1.1`` is a typo, not a name to look up."""
    if value is None:
        return []
    problems = text_problems(name, value, max_length=MAX_HOST_NAME_LENGTH, allow_empty=False)
    if problems:
        return problems
    text = value.strip()
    try:
        ipaddress.ip_address(text.strip("[]"))
        return []
    except ValueError:
        pass
    if _DOTTED_NUMBERS.match(text):
        return [f"{name}: {value!r} is not an IPv4 address (four numbers from 0 to 255)"]
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    if not all(_DNS_LABEL.match(label) for label in labels):
        return [f"{name}: {value!r} is not a host name or IP address (letters, digits, '-', '_' and dots; labels of 1-63 characters)"]
    return []


#: Longest probe timeout an option may ask for, in seconds (a probe that waits longer is a hang).
MAX_PROBE_TIMEOUT = 300


#: The options :func:`probe_target_problems` checks (callers skip them in :func:`spec_problems`).
PROBE_TARGET_OPTIONS = ("probe_host", "probe_port", "probe_expected_address", "probe_server_name", "probe_timeout")


def probe_target_problems(options: dict[str, t.Any]) -> list[str]:
    """The probe options diagnose_host and remediate_host share: probe_host, probe_port, probe_expected_address,
    probe_server_name, probe_timeout."""
    problems = host_name_problems("probe_host", options.get("probe_host"))
    problems += port_problems("probe_port", options.get("probe_port"))
    problems += host_name_problems("probe_expected_address", options.get("probe_expected_address"))
    problems += host_name_problems("probe_server_name", options.get("probe_server_name"))
    timeout = options.get("probe_timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
                or not 0 < timeout <= MAX_PROBE_TIMEOUT:
            problems.append(f"probe_timeout must be a finite number of seconds in (0, {MAX_PROBE_TIMEOUT}], not {_describe(timeout)}")
    return problems
