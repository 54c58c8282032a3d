"""One set of real servers for the whole directory: started once, stopped by PID at the end.

xrdp instances start in ~20 ms each, FreeRDP shadow servers in 50-300 ms; all are spawned first and
then waited for together. A missing binary FAILS the run (the Makefile installs the packages).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.realservers import certs as certmod
from tests.integration.realservers import servers as srv

# name -> (kind, settings). xrdp: security_layer, certificate, extra ini settings; shadow: args, certificate.
XRDP = {
    "xrdp-neg-valid": ("negotiate", "valid", {}),
    "xrdp-tls-expired": ("tls", "expired", {}),
    "xrdp-rdp": ("rdp", "valid", {}),
    "xrdp-neg-self-tls12": ("negotiate", "selfsigned", {"ssl_protocols": "TLSv1.2",
                                                        "tls_ciphers": "ECDHE-RSA-AES128-GCM-SHA256"}),
    "xrdp-tls-nocert": ("tls", None, {}),
    "xrdp-neg-notyet": ("negotiate", "notyet", {"ssl_protocols": "TLSv1.3"}),
    "xrdp-neg-wrongname": ("negotiate", "wrongname", {}),
    "xrdp-neg-nocert": ("negotiate", None, {}),
    "xrdp-tls10-only": ("tls", "selfsigned", {"ssl_protocols": "TLSv1", "tls_ciphers": "DEFAULT:@SECLEVEL=0"}),
}
SHADOW = {
    "shadow-default": ([], "selfsigned"),
    "shadow-nla": (["/sec:nla", "+auth", "/sam-file:{sam}"], "valid"),
    "shadow-nla-optional": (["+sec-nla", "+sec-tls", "-sec-rdp", "+auth", "/sam-file:{sam}"], "valid"),
    "shadow-tls": (["/sec:tls", "-auth"], "expired"),
    "shadow-rdp": (["/sec:rdp", "-auth"], None),
    "shadow-ext": (["/sec:ext", "+auth", "/sam-file:{sam}"], "valid"),
}


class Lab:
    """The running servers: ``port(name)``, the certificate set and the CA bundle path."""

    def __init__(self, serverset: srv.ServerSet, certificates: dict[str, certmod.CertFiles], closed_port: int) -> None:
        self.serverset = serverset
        self.certs = certificates
        self.ca_bundle = str(certificates["ca"].cert)
        self.closed_port = closed_port

    def port(self, name: str) -> int:
        """Port of a running server."""
        return self.serverset.servers[name].port


def start_lab(workdir: Path) -> Lab:
    """Start every server of XRDP and SHADOW plus the non-RDP services; stop all on any failure."""
    serverset = srv.ServerSet(workdir)
    try:
        certificates = certmod.generate_set(workdir / "certs")
        started = []
        for name, (layer, cert, extra) in XRDP.items():
            files = certificates[cert] if cert else None
            started.append(serverset.start_xrdp(name, layer, files.cert if files else None, files.key if files else None, **extra))
        for name, (args, cert) in SHADOW.items():
            files = certificates[cert] if cert else None
            started.append(serverset.start_shadow(name, args, files.cert if files else None, files.key if files else None))
        serverset.start_ssh_banner("ssh-banner")
        serverset.start_http("http")
        serverset.start_silent("silent")
        serverset.start_tls_service(certificates["valid"].cert, certificates["valid"].key, "tls-service")
        serverset.start_syn_drop("syn-drop")
        serverset.wait_listening(started)
        return Lab(serverset, certificates, serverset.closed_port())
    except BaseException:
        serverset.stop_all()
        raise


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """The real servers, for the whole session; stopped by PID at teardown."""
    try:
        running = start_lab(tmp_path_factory.mktemp("realservers"))
    except srv.MissingBinary as exc:
        pytest.fail(str(exc), pytrace=False)
    yield running
    killed = running.serverset.stop_all()
    assert not killed, f"needed SIGKILL: {killed}"
