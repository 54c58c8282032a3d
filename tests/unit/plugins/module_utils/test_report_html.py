"""render_html: the fleet report page from the JSON report, checked on the parsed page (lxml), not on its text."""

from __future__ import annotations

import json

import lxml.html
import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import report_html as rh
from tests.unit.plugins.module_utils import report_samples as rs


@pytest.fixture(scope="module")
def report() -> dict:
    """The sample fleet report (real findings)."""
    return rs.fleet_report()


@pytest.fixture(scope="module")
def page(report: dict) -> lxml.html.HtmlElement:
    """The rendered page, parsed."""
    return lxml.html.document_fromstring(rh.render_html(report))


def text(element: lxml.html.HtmlElement) -> str:
    """An element's text, whitespace collapsed."""
    return " ".join(element.text_content().split())


def matrix_rows(page: lxml.html.HtmlElement) -> dict[str, lxml.html.HtmlElement]:
    """Host name -> its row in the host x check table."""
    return {text(row.xpath("./td[1]")[0]): row for row in page.xpath('//table[@id="host-matrix"]//tr[@class="host-row"]')}


def matrix_cell(page: lxml.html.HtmlElement, host: str, column: str) -> lxml.html.HtmlElement:
    """The cell of ``host`` under the column headed ``column``."""
    headers = [text(th) for th in page.xpath('//table[@id="host-matrix"]//tr[1]/th')]
    return matrix_rows(page)[host].xpath("./td")[headers.index(column)]


def test_every_host_has_a_row_and_a_section(page: lxml.html.HtmlElement) -> None:
    """Every host, unreachable and failed ones included, is in the table and has its own section."""
    assert sorted(matrix_rows(page)) == rs.FLEET
    assert sorted(page.xpath('//div[@class="host"]/@data-host')) == rs.FLEET
    # Anchors are positions, never names: each row links to its host's section.
    for row in matrix_rows(page).values():
        target = row.xpath("./td[1]/a/@href")[0]
        assert page.xpath(f'//div[@id="{target[1:]}"]/@data-host') == [text(row.xpath("./td[1]")[0])]


def test_summary_counts_states_and_causes(page: lxml.html.HtmlElement) -> None:
    """The cards count each state; the cause table counts each host once per cause."""
    cards = {card.get("data-state"): int(card.xpath("./b")[0].text) for card in page.xpath('//div[@class="card"]')}
    assert cards == {"all": 12, "healthy": 2, "broken": 8, "unknown": 0, "unreachable": 1, "failed": 1}
    causes = {text(row.xpath("./td[1]")[0]).split(" ", 1)[1]: int(text(row.xpath("./td[3]")[0]))
              for row in page.xpath('//table[@id="causes"]//tr[td]')}
    assert causes == {"RDP-CERT-EXPIRED": 4, "RDP-SECURITY-LAYER-RDP": 2, "RDP-FIREWALL-RULES-DISABLED": 1,
                      "RDP-SERVICE-STOPPED": 1, "RDP-GHOST-SESSIONS": 1}


def test_chart_has_one_bar_per_cause_scaled_to_hosts(page: lxml.html.HtmlElement) -> None:
    """The inline SVG chart: a bar per cause, the longest for the most hosts."""
    rects = page.xpath('//section[@id="chart"]//*[local-name()="rect"]')
    titles = [text(rect) for rect in rects]
    assert titles[0] == "RDP-CERT-EXPIRED: 4 host(s)" and len(rects) == 5
    widths = [int(rect.get("width")) for rect in rects]
    assert [round(4 * width / widths[0]) for width in widths] == [4, 2, 1, 1, 1]


def test_matrix_colours_each_check(page: lxml.html.HtmlElement) -> None:
    """A check with a finding takes its worst severity; a clean check is ok; a host not read is unknown."""
    assert matrix_cell(page, "win-cert-01", "certificate").get("class") == "c-critical"
    assert text(matrix_cell(page, "win-cert-01", "certificate")) == "critical"
    assert text(matrix_cell(page, "win-stopped-01", "listener")) == "critical (would fix)"
    assert matrix_cell(page, "win-cert-01", "listener").get("class") == "c-ok"
    assert matrix_cell(page, "win-cert-03", "credssp").get("class") == "c-high"
    assert matrix_cell(page, "win-gpo-02", "group_policy").get("title") == "RDP-GPO-OVERRIDE"
    assert matrix_cell(page, "win-fw-01", "probe").get("class") == "c-critical"
    assert text(matrix_cell(page, "win-fw-01", "probe")) == "tcp"
    for column in ("probe", "certificate", "listener"):
        assert matrix_cell(page, "win-gone-01", column).get("class") == "c-unknown"
    assert {cell.get("class") for cell in matrix_rows(page)["win-ok-01"].xpath("./td")[2:]} == {"c-ok"}


def test_findings_expand_to_evidence_and_fix(report: dict, page: lxml.html.HtmlElement) -> None:
    """Each finding is a <details> whose body holds its exact evidence (as JSON) and its fix."""
    host = next(h for h in report["hosts"] if h["name"] == "win-gpo-01")
    section = page.xpath('//div[@data-host="win-gpo-01"]')[0]
    details = section.xpath('.//details[@class="finding"]')
    assert [d.get("data-id") for d in details] == [f["id"] for f in rh.findings_of(host)]
    for element, finding in zip(details, rh.findings_of(host)):
        assert json.loads(element.xpath(".//pre")[0].text_content()) == json.loads(json.dumps(finding["evidence"]))
        fix = finding["fix"]
        assert (fix.get("module") or fix.get("manual")) in text(element)
    cert = page.xpath('//div[@data-host="win-cert-01"]//details[@data-id="RDP-CERT-EXPIRED"]')[0]
    assert "rdp.doctor.listener_certificate" in text(cert) and "explains 0x904" in text(cert.xpath("./summary")[0])


def test_host_not_read_shows_why(page: lxml.html.HtmlElement) -> None:
    """An unreachable or failed host says why it was not read, and shows no findings section."""
    gone = page.xpath('//div[@data-host="win-gone-01"]')[0]
    assert text(gone.xpath('.//p[@class="err"]')[0]) == "Not read: " + rs.UNREACHABLE["win-gone-01"]
    broken = page.xpath('//div[@data-host="win-broken-01"]')[0]
    assert text(broken.xpath('.//p[@class="err"]')[0]) == "Not read: " + rs.FAILED["win-broken-01"]
    # Said once: the read error is not repeated in the list of other errors.
    assert not broken.xpath('.//ul[@class="errors"]')
    assert not gone.xpath(".//details")
    assert [text(li) for li in gone.xpath('.//ul[@class="errors"]/li')] == ["probe (probe): " + rs.PROBE_ERROR]


def test_drift_lists_what_would_change(page: lxml.html.HtmlElement) -> None:
    """The drift of a check-mode remediation: each operation with its target, expected and new value."""
    section = page.xpath('//div[@data-host="win-stopped-01"]')[0]
    assert "Drift (would_change)" in text(section)
    row = section.xpath('.//table[@class="drift"]//tr[td]')
    assert len(row) == 1
    cells = [text(td) for td in row[0].xpath("./td")]
    assert cells[:2] == ["op01", "registry_value"] and cells[5] == "planned"
    assert json.loads(cells[2])["name"] == "fDenyTSConnections"
    assert json.loads(cells[3])["value"] == 1 and json.loads(cells[4])["value"] == 0
    assert not page.xpath('//div[@data-host="win-ok-01"]//h4[starts-with(., "Drift")]')
    assert text(page.xpath('//p[@id="drift-summary"]')[0]).startswith("Remediation would change 1 host(s), 1 operation(s)")


def test_trend_lists_state_changes(page: lxml.html.HtmlElement) -> None:
    """After a merge with an older report, the hosts whose state changed."""
    rows = page.xpath('//section[@id="trend"]//tr[td]')
    assert [[text(td) for td in row.xpath("./td")] for row in rows] == [["win-cert-01", "healthy", "broken"]]


def test_correlation_names_what_a_cause_group_shares() -> None:
    """Hosts of one cause grouped, with the trait values that set the group apart from the fleet."""
    groups = {group["cause"]: group for group in rh.correlate(rh.hosts_of(rs.fleet_report()))}
    expired = groups["RDP-CERT-EXPIRED"]
    assert sorted(expired["hosts"]) == sorted(["win-cert-01", "win-cert-02", "win-cert-03", rs.HOSTILE_NAME])
    # Three of four on Server 2016, twice as often as the fleet; CredSSP "Mitigated" is every host's default.
    assert expired["shared"] == [{"trait": "OS build", "value": "Microsoft Windows Server 2016 Standard (build 14393)", "hosts": 3}]
    layer = groups["RDP-SECURITY-LAYER-RDP"]
    assert {"trait": "Group Policy owned setting", "value": "security.security_layer", "hosts": 2} in layer["shared"]
    assert groups["RDP-SERVICE-STOPPED"]["shared"] == []


def test_traits_group_the_fleet(page: lxml.html.HtmlElement) -> None:
    """By OS build, Group Policy owned setting, certificate issuer and CredSSP state, with the hosts of each."""
    tables = {table.get("data-trait"): table for table in page.xpath('//table[@class="by-trait"]')}
    assert sorted(tables) == ["certificate_issuer", "credssp", "gpo_settings", "os_build"]
    credssp = {text(row.xpath("./td[1]")[0]): text(row.xpath("./td[4]")[0]) for row in tables["credssp"].xpath(".//tr[td]")}
    assert credssp["Vulnerable"] == "win-cert-03"
    gpo = [text(row.xpath("./td[1]")[0]) for row in tables["gpo_settings"].xpath(".//tr[td]")]
    assert gpo == ["security.security_layer"]
    issuers = {text(row.xpath("./td[1]")[0]): int(text(row.xpath("./td[2]")[0])) for row in tables["certificate_issuer"].xpath(".//tr[td]")}
    assert issuers == {"self-signed": 9, "CN=" + " ".join(rs.HOSTILE_TEXT.split()): 1}


def test_hostile_strings_stay_text(page: lxml.html.HtmlElement) -> None:
    """Markup a host sends is text on the page: one script (the page's own), no injected element or handler."""
    assert len(page.xpath("//script")) == 1 and "pwned" not in page.xpath("//script")[0].text
    assert not page.xpath("//img") and not page.xpath("//*[local-name()='svg' and not(ancestor::section[@id='chart'])]")
    assert not [el for el in page.iter() if isinstance(el.tag, str) and any(name.startswith("on") for name in el.attrib)]
    section = page.xpath("//div[@class='host']")
    evil = [s for s in section if s.get("data-host") == rs.HOSTILE_NAME][0]
    assert text(evil.xpath("./h3")[0]).startswith(rs.HOSTILE_NAME)
    assert rs.HOSTILE_TEXT in text(evil)
    assert page.xpath("//title")[0].text == "rdp.doctor fleet report: diagnosis"


def test_page_fetches_nothing(page: lxml.html.HtmlElement) -> None:
    """Self-contained: a policy that forbids every fetch, and no external reference in any attribute."""
    csp = page.xpath('//meta[@http-equiv="Content-Security-Policy"]/@content')
    assert csp and csp[0].startswith("default-src 'none'")
    for element in page.iter():
        if not isinstance(element.tag, str):
            continue
        for name in ("src", "href", "action", "data"):
            value = element.get(name)
            assert value is None or value.startswith("#"), (element.tag, name, value)
    assert not page.xpath("//link") and not page.xpath("//iframe")


@pytest.mark.parametrize(("report", "rows"), [
    ({}, {}),
    ({"hosts": None, "run": "not a run", "summary": {"trend": "x", "drift": None}}, {}),
    ({"hosts": [{"name": "win01"}, "not a record", {"name": "win03", "state": "healthy", "read": {"state": "ok"}, "findings": None}]},
     {"win01": "unknown", "host #2": "unknown", "win03": "healthy"}),
    ({"hosts": [{"name": "x", "state": "broken", "read": {"state": "ok"}, "causes": None, "probe": {"ok": "?"},
                 "findings": [None, "bad", {"id": "RDP-X", "severity": "weird", "explains_0x904": True, "fix": "?"},
                              {"id": "RDP-Y", "severity": {"not": "a string"}, "title": ["x"], "evidence": "text"}],
                 "remediation": {"operations": [None, {"id": 1}], "manual": ["text", {"a": 1}]}, "errors": [None, {}], "traits": None}]},
     {"x": "broken"}),
])
def test_odd_reports_render(report: dict, rows: dict) -> None:
    """A report with missing or malformed parts still renders; a host without a state the schema knows is unknown."""
    page = lxml.html.document_fromstring(rh.render_html(report))
    assert page.xpath('//section[@id="summary"]')
    assert {text(row.xpath("./td[1]")[0]): row.get("data-state") for row in page.xpath('//tr[@class="host-row"]')} == rows


@pytest.mark.parametrize(("record", "state", "read"), [
    ({"state": "healthy", "read": {"state": "ok"}}, "healthy", True),
    ({"state": "broken", "read": {"state": "ok"}}, "broken", True),
    ({"state": "unknown", "read": {"state": "skipped"}}, "unknown", False),
    ({"state": "unreachable", "read": {"state": "unreachable"}}, "unreachable", False),
    ({"state": "ok"}, "unknown", False),
    ({}, "unknown", False),
])
def test_state_and_read(record: dict, state: str, read: bool) -> None:
    """The record's own state when the schema knows it, else unknown; a check is known only on a host read."""
    assert rh.state_of(record) == state
    assert rh.was_read(record) is read


def test_a_cause_counts_each_host_once() -> None:
    """Two findings of one id on a host (e.g. after a merge) count that host once for the cause."""
    finding = {"id": "RDP-CERT-EXPIRED", "severity": "critical", "explains_0x904": True, "status": "open", "title": "expired"}
    hosts = [{"name": "a", "state": "broken", "causes": ["RDP-CERT-EXPIRED"], "findings": [finding, dict(finding)]},
             {"name": "b", "state": "broken", "causes": ["RDP-CERT-EXPIRED"], "findings": [dict(finding, status="fixed"), finding]}]
    summary = rh.fleet_summary(hosts)
    assert summary["causes"] == [("RDP-CERT-EXPIRED", {"hosts": 2, "severity": "critical", "title": "expired"})]
    assert summary["severities"]["critical"] == 3
