"""module_utils/validation: good input passes untouched (no false refusal), bad input is named (the corpus has the rest)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import validation as v


@pytest.mark.parametrize("name", ["win01", "WIN-01", "win_01", "win01.corp.example.com", "win01.corp.example.com.", "127.0.0.9",
                                  "10.0.0.5", "::1", "fe80::1%eth0", "2001:db8::5", "a" * 63 + ".example.com", "xn--bcher-kva.example"])
def test_host_names_and_addresses_that_are_fine(name: str) -> None:
    assert v.host_name_problems("probe_host", name) == []


@pytest.mark.parametrize(("name", "fragment"), [
    ("999.1.1.1", "is not an IPv4 address"), ("1.2.3", "is not an IPv4 address"), ("1.2.3.4.5", "is not an IPv4 address"),
    ("win 01", "is not a host name or IP address"), ("win01..corp", "is not a host name"), ("a" * 64 + ".example", "is not a host name"),
    ("-win", "is not a host name"), ("", "must not be empty"), ("a" * 254, "at most 253"), ("win\t01", "control characters"),
])
def test_host_names_that_are_refused(name: str, fragment: str) -> None:
    problems = v.host_name_problems("probe_host", name)
    assert len(problems) == 1 and problems[0].startswith("probe_host") and fragment in problems[0]


def test_text_checks() -> None:
    assert v.text_problems("subject", "CN=win01, O=Contoso, C=DE") == []
    assert v.text_problems("subject", "CN=Zoë Müller") == []  # non-ASCII letters are not control characters
    assert v.text_problems("subject", None) == []
    assert v.text_problems("subject", "a\u0085b") == ["subject must not contain control characters (found '\\x85' at position 1)"]
    assert v.text_problems("subject", 5) == ["subject must be a string, not int 5"]
    assert v.text_problems("x", "abc", max_length=2) == ["x is 3 characters long; at most 2 are allowed"]


def test_numbers() -> None:
    assert v.number_problems("t", 5, 0, 10) == [] and v.number_problems("t", 2.5, 0, 10) == [] and v.number_problems("t", None, 0, 1) == []
    assert v.number_problems("t", math.inf, 0, 10) == ["t must be a finite number from 0 to 10, not inf"]
    assert v.number_problems("t", True, 0, 10) == ["t must be a number from 0 to 10, not True"]
    assert v.number_problems("t", 2.5, 0, 10, integer=True) == ["t must be a whole number from 0 to 10, not 2.5"]
    assert v.number_problems("t", -1, 0, 10, "s") == ["t must be a number from 0 to 10 s, not -1"]
    assert v.port_problems("p", 3389) == [] and v.port_problems("p", 0) == ["p must be a TCP port (1-65535), not 0"]


def test_keys_and_switches() -> None:
    assert v.unknown_key_problems("d", {"a": 1}, ["a", "b"]) == []
    assert v.unknown_key_problems("d", {"c": 1, "e": 2}, ["b", "a"]) == ["d: unknown keys 'c', 'e'; allowed: a, b"]
    assert v.unknown_key_problems("d", [1], ["a"]) == ["d must be a dictionary, not list [1]"]
    assert v.bool_map_problems("enabled", {"a": True, "b": False}, ["a", "b"]) == []
    assert v.bool_map_problems("enabled", {"a": "no"}, ["a"]) == ["enabled.a must be true or false, not 'no'"]


def test_readable_file(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    assert v.readable_file_problems("ca_bundle", str(bundle)) == []
    assert v.readable_file_problems("ca_bundle", str(bundle), max_bytes=4) == [f"ca_bundle: {str(bundle)!r} is 28 bytes; at most 4 are allowed"]
    assert "is not a regular file" in v.readable_file_problems("ca_bundle", str(tmp_path))[0]
    assert v.readable_file_problems("ca_bundle", None) == []


def test_spec_problems_walks_every_option_by_type() -> None:
    spec = {"name": {"type": "str"}, "names": {"type": "list", "elements": "str"}, "timeout": {"type": "float"}, "count": {"type": "int"},
            "inner": {"type": "dict", "options": {"label": {"type": "str"}}}, "facts": {"type": "dict"}, "when": {"type": "raw"}}
    good = {"name": "x", "names": ["a", "b"], "timeout": 1.5, "count": 3, "inner": {"label": "y"}, "facts": {"k": "\x00"}, "when": 5}
    assert v.spec_problems(spec, good) == []  # facts are host data, not user text
    bad = {"name": "x\x00", "names": ["a", ""], "timeout": math.nan, "count": True, "inner": {"label": "\n", "other": 1}, "when": "1h\x00"}
    assert v.spec_problems(spec, bad) == [
        "name must not contain control characters (found '\\x00' at position 1)",
        "names[1] must not be empty",
        "timeout must be a finite number, not nan",
        "count must be a whole number, not True",
        "inner: unknown key 'other'; allowed: label",
        "inner.label must not contain control characters (found '\\n' at position 0)",
        "when must not contain control characters (found '\\x00' at position 2)",
    ]
    assert v.spec_problems(spec, {"timeout": math.inf}, skip=["timeout"]) == []


def test_validated_arguments_reports_every_error_naming_its_option() -> None:
    spec = {"inner": {"type": "dict", "options": {"a": {"type": "str"}}}, "n": {"type": "int"}}
    values, problems = v.validated_arguments(spec, {"inner": "on", "n": "x", "bogus": 1})
    assert any(p.startswith("argument 'inner' is of type str") for p in problems)
    assert any(p.startswith("argument 'n' is of type str") for p in problems)
    assert any(p.startswith("Unsupported parameters: bogus") for p in problems)
    assert not any(p == "dictionary requested, could not parse JSON or key=value" for p in problems)
    values, problems = v.validated_arguments(spec, {"n": "3"})
    assert problems == [] and values == {"inner": None, "n": 3}
