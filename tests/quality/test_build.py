"""``ansible-galaxy collection build`` makes a tarball that installs and whose modules ansible-doc lists."""

from __future__ import annotations

import glob
import os

import pytest
import yaml

from tests.quality.helpers import ROOT, run_tool

pytestmark = pytest.mark.quality


def galaxy_version() -> str:
    """The version galaxy.yml declares."""
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        return str(yaml.safe_load(handle)["version"])


def test_build_install_and_list_modules(tmp_path) -> None:
    """The built tarball installs into an empty collections path and exposes every module's docs."""
    dist = tmp_path / "dist"
    run_tool(["ansible-galaxy", "collection", "build", "--output-path", str(dist), ROOT])
    tarballs = glob.glob(str(dist / "rdp-doctor-*.tar.gz"))
    assert [os.path.basename(path) for path in tarballs] == [f"rdp-doctor-{galaxy_version()}.tar.gz"]

    installed = tmp_path / "collections"
    # With the development path unset, the install cannot be satisfied by the working tree's symlink.
    run_tool(["ansible-galaxy", "collection", "install", "--offline", "-p", str(installed), tarballs[0]],
             ANSIBLE_COLLECTIONS_PATH=str(installed))
    collection_dir = installed / "ansible_collections" / "rdp" / "doctor"
    assert (collection_dir / "MANIFEST.json").is_file()
    for ignored in (".venv", ".cache", ".lab", "tests/output"):
        assert not (collection_dir / ignored).exists(), f"{ignored} leaked into the tarball"

    expected = sorted(
        os.path.splitext(os.path.basename(path))[0]
        for path in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py"))
        if not os.path.basename(path).startswith("_")
    )
    assert expected, "the collection ships no module"
    listing = run_tool(["ansible-doc", "-t", "module", "-l", "rdp.doctor"], ANSIBLE_COLLECTIONS_PATH=str(installed)).stdout
    listed = sorted(line.split()[0].split(".")[-1] for line in listing.splitlines() if line.startswith("rdp.doctor."))
    assert listed == expected
    for module in expected:
        doc = run_tool(["ansible-doc", "-t", "module", f"rdp.doctor.{module}"], ANSIBLE_COLLECTIONS_PATH=str(installed)).stdout
        assert "EXAMPLES" in doc and "RETURN VALUES" in doc, doc[:400]
