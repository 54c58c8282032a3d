"""The execution environment: ansible-builder makes a valid build context, and what it collects is right.

``ansible-builder create`` writes the build context from the example definition
(docs/examples/execution-environment/); the build itself runs the context's own ``introspect.py`` over the
installed collections, so the test runs that same script over this collection, then evaluates the bindep
file it writes with bindep's own rules, as the image build's ``assemble`` step does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bindep.depends import Depends
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.ansible_env import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs" / "examples" / "execution-environment"
BUILDER = Path(sys.executable).with_name("ansible-builder")
# What the collection needs at run time (requirements.txt), and what must never reach an EE from it.
RUNTIME_PACKAGES = {"pywinrm", "pypsrp", "jmespath", "cryptography"}
DEV_ONLY = {"ansible-core", "pytest", "ansible-lint", "molecule", "hypothesis", "lxml", "ansible-builder"}


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a pip requirements file (comments and blanks dropped)."""
    lines = [re.sub(r"(^|\s+)#.*$", "", line).strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ansible-builder create`` of the example definition, into a fresh directory."""
    context = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run(
        [str(BUILDER), "create", "-f", str(EXAMPLE / "execution-environment.yml"), "-c", str(context),
         "--output-filename", "Containerfile"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return context


def test_context_has_a_containerfile_for_the_supported_ansible_core(build_context: Path) -> None:
    """The Containerfile installs an ansible-core that meta/runtime.yml supports, and introspects the collections."""
    containerfile = (build_context / "Containerfile").read_text(encoding="utf-8")
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile, re.MULTILINE)
    assert refs, containerfile[:600]
    core = next(Requirement(ref) for ref in refs.group(1).split() if ref.startswith("ansible-core"))
    runtime = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    supported = SpecifierSet(runtime["requires_ansible"])
    for version in ("2.16.0", "2.17.5", "2.18.1", "2.19.14"):
        assert core.specifier.contains(version) and supported.contains(version), version
    for version in ("2.15.9", "2.20.0"):
        assert not core.specifier.contains(version) and not supported.contains(version), version
    assert "introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    assert "ansible-galaxy collection install" in containerfile


def test_context_carries_the_example_requirements(build_context: Path) -> None:
    """The galaxy, python and system requirements of the example are copied into the context unchanged."""
    galaxy = yaml.safe_load((build_context / "_build" / "requirements.yml").read_text(encoding="utf-8"))
    assert "rdp.doctor" in [collection["name"] for collection in galaxy["collections"]]
    for name in ("requirements.txt", "bindep.txt"):
        assert (build_context / "_build" / name).read_text(encoding="utf-8") == (EXAMPLE / name).read_text(encoding="utf-8")
    assert (build_context / "_build" / "scripts" / "introspect.py").is_file()


def test_collection_requirements_are_floors_without_ansible_core() -> None:
    """requirements.txt: what the collection needs at run time, each with a floor, never a pin or ansible-core."""
    requirements = [Requirement(line) for line in requirement_lines(REPO_ROOT / "requirements.txt")]
    assert {requirement.name for requirement in requirements} == RUNTIME_PACKAGES
    for requirement in requirements:
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">="}, f"{requirement}: a floor (>=) only"
    # The development pins still hold every runtime package at one exact version (make venv installs the same).
    dev = {Requirement(line).name: Requirement(line) for line in requirement_lines(REPO_ROOT / "requirements-dev.txt")
           if not line.startswith("-")}
    for name in RUNTIME_PACKAGES | {"ansible-core"}:
        assert [spec.operator for spec in dev[name].specifier] == ["=="], name
    frozen = {Requirement(line).name.lower(): Requirement(line) for line in requirement_lines(REPO_ROOT / "constraints.txt")}
    for name in RUNTIME_PACKAGES | {"ansible-core"}:
        assert str(frozen[name].specifier) == str(dev[name].specifier), f"{name}: constraints.txt and requirements-dev.txt differ"
    for requirement in requirements:
        pinned = next(iter(dev[requirement.name].specifier)).version
        assert requirement.specifier.contains(pinned), f"{requirement} excludes the tested {pinned}"


def test_introspection_collects_runtime_needs_only(build_context: Path, tmp_path: Path) -> None:
    """What the image build collects from rdp.doctor: its four Python packages and no test-only system package."""
    collections = tmp_path / "collections"
    (collections / "ansible_collections" / "rdp").mkdir(parents=True)
    os.symlink(REPO_ROOT, collections / "ansible_collections" / "rdp" / "doctor")
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    proc = subprocess.run(
        [sys.executable, str(build_context / "_build" / "scripts" / "introspect.py"), "introspect", str(collections),
         "--user-pip", str(build_context / "_build" / "requirements.txt"),
         "--user-bindep", str(build_context / "_build" / "bindep.txt"),
         "--write-pip", str(pip_out), "--write-bindep", str(bindep_out)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    collected = [Requirement(line.split("#")[0].strip()) for line in requirement_lines(pip_out)]
    names = {requirement.name for requirement in collected}
    assert RUNTIME_PACKAGES <= names
    assert not names & DEV_ONLY, names & DEV_ONLY
    assert any(requirement.name == "pywinrm" and "kerberos" in requirement.extras for requirement in collected)

    # The image's assemble step runs bindep with the default profile on the image's (rpm) platform.
    rules = Depends(bindep_out.read_text(encoding="utf-8"))
    runtime = {rule[0] for rule in rules.active_rules(["default", "platform:rpm", "platform:redhat", "platform:centos"])}
    assert runtime == {"krb5-workstation", "krb5-libs"}, runtime
    compile_only = {rule[0] for rule in rules.active_rules(["compile", "platform:rpm", "platform:redhat"])}
    assert {"krb5-devel", "gcc"} <= compile_only
    # The collection's own bindep.txt: nothing in the default profile, the browser and RDP servers for tests.
    own = Depends((REPO_ROOT / "bindep.txt").read_text(encoding="utf-8"))
    assert {rule[0] for rule in own.active_rules(["default", "platform:dpkg", "platform:debian"])} == set()
    assert {"chromium", "xrdp"} <= {rule[0] for rule in own.active_rules(["test", "platform:dpkg", "platform:debian"])}
