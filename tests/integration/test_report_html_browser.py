"""The HTML report in a real browser: headless Chromium loads it without a console message, runs its script,
shows every host (in the DOM after load), and the screenshot tool `make demo` uses writes a PNG."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import lxml.html
import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import report_html as rh
from tests import report_browser
from tests.ansible_env import REPO_ROOT
from tests.unit.plugins.module_utils import report_samples as rs

# Example reports the report role's tests keep (h11a: tests/fixtures/fleet_report/); each is loaded too.
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "fleet_report"


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample fleet report written as the report role writes it (UTF-8)."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(rh.render_html(rs.fleet_report()), encoding="utf-8")
    return path


def assert_loads_cleanly(page: Path, hosts: list[str]) -> lxml.html.HtmlElement:
    """Chromium: no console message (no script error, no blocked fetch), the script ran, every host in the DOM."""
    loaded = report_browser.load(page)
    assert loaded.console == [], page.name
    dom = lxml.html.document_fromstring(loaded.dom)
    assert dom.xpath("//body/@data-ready") == ["1"], "the page's script did not run to its end"
    assert sorted(dom.xpath('//div[@class="host"]/@data-host')) == sorted(hosts)
    rows = dom.xpath('//table[@id="host-matrix"]//tr[@class="host-row"]/td[1]')
    assert sorted(" ".join(row.text_content().split()) for row in rows) == sorted(" ".join(host.split()) for host in hosts)
    return dom


def test_chromium_loads_the_report_cleanly_and_shows_every_host(report_file: Path) -> None:
    """The sample fleet (every state, a hostile host) in Chromium; the hostile markup did not run."""
    dom = assert_loads_cleanly(report_file, rs.FLEET)
    assert dom.xpath("//title")[0].text == "rdp.doctor fleet report: diagnosis"


def test_chromium_loads_every_example_report(tmp_path: Path) -> None:
    """Each example JSON report kept under tests/fixtures/fleet_report/ renders and loads cleanly with every host."""
    for source in sorted(FIXTURES.glob("*.json")):
        report = json.loads(source.read_text(encoding="utf-8"))
        page = tmp_path / (source.stem + ".html")
        page.write_text(rh.render_html(report), encoding="utf-8")
        assert_loads_cleanly(page, [host["name"] for host in report["hosts"]])


def test_console_errors_are_seen(tmp_path: Path) -> None:
    """The check above can fail: a page with a script error and a blocked fetch yields console messages."""
    page = tmp_path / "bad.html"
    page.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{rh.CSP}"></head>'
                    '<body><img src="http://127.0.0.1:9/x.png"><script>missingFunction();</script></body></html>',
                    encoding="utf-8")
    messages = report_browser.load(page).console
    assert any("missingFunction" in message for message in messages), messages
    assert any("Content Security Policy" in message for message in messages), messages


def test_screenshot_tool_writes_a_png_next_to_the_report(report_file: Path) -> None:
    """`tools/screenshot-report.sh <folder>` (what make demo runs) writes report.png next to report.html."""
    proc = subprocess.run([str(REPO_ROOT / "tools" / "screenshot-report.sh"), str(report_file.parent)],
                          capture_output=True, text=True, timeout=180, check=False, env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    png = report_file.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1400, 2400)
    assert len(png) > 20000, "a blank page compresses to a few kilobytes"


def test_screenshot_tool_says_when_there_is_no_report(tmp_path: Path) -> None:
    """A folder without an HTML report is an error (make demo then prints that the screenshot is missing)."""
    proc = subprocess.run([str(REPO_ROOT / "tools" / "screenshot-report.sh"), str(tmp_path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1 and "no .html report" in proc.stderr
