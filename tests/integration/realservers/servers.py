"""Real RDP servers (Debian's xrdp, FreeRDP's shadow server) and small non-RDP services on 127.0.0.1.

Everything started here is stopped by PID (processes) or by closing its sockets (in-process
services): ``ServerSet.stop_all``. Ports come from 20000-20999 (outside the ephemeral range
32768-60999, where outgoing sockets would collide with listeners, see real-rdp-servers.md pitfall 10),
chosen at random and checked free, so parallel runs rarely collide.

A missing binary raises ``MissingBinary`` with the Debian package to install: callers turn that into
a test *failure*, never a skip.
"""

from __future__ import annotations

import http.server
import os
import random
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PORT_RANGE = (20000, 20999)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
SAM_USER = "alice"
SAM_PASSWORD = "S3cret!pw"
PACKAGES = {"xrdp": "xrdp", "freerdp-shadow-cli": "freerdp2-shadow-x11", "Xvfb": "xvfb", "winpr-hash": "winpr-utils"}

XRDP_INI = """[Globals]
ini_version=1
fork=false
port=tcp://127.0.0.1:{port}
use_vsock=false
security_layer={security_layer}
crypt_level=high
certificate={cert}
key_file={key}
ssl_protocols={ssl_protocols}
{tls_ciphers_line}
autorun=
allow_channels=true
max_bpp=32

[Logging]
LogFile={log}
LogLevel=INFO
EnableSyslog=false

[Channels]

[Xorg]
name=Xorg
lib=libxup.so
username=ask
password=ask
ip=127.0.0.1
port=-1
code=20
"""


class MissingBinary(RuntimeError):
    """A server binary is not installed."""


def require(binary: str) -> str:
    """Absolute path of ``binary`` or MissingBinary naming the Debian package."""
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path is None:
        package = PACKAGES.get(binary, binary)
        raise MissingBinary(f"{binary} is not installed: apt-get install {package} (make test installs it as root)")
    return path


def _listening(port: int) -> bool:
    """Is something listening on 127.0.0.1:port? (/proc/net/tcp: no connection, so no server work)."""
    wanted = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp", encoding="ascii") as handle:
            next(handle)
            return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in handle)
    except OSError:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0


def _port_free(port: int) -> bool:
    """Can we bind 127.0.0.1:port right now?"""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Server:
    """One running server: in-process services have pid None and a stop callback."""

    name: str
    kind: str
    port: int
    pid: int | None = None
    log: Path | None = None
    stop_callback: object = None
    process: subprocess.Popen | None = None


@dataclass
class ServerSet:  # pylint: disable=too-many-instance-attributes
    """Starts servers in ``workdir`` and stops every one of them by PID (or socket) in stop_all."""

    workdir: Path
    servers: dict[str, Server] = field(default_factory=dict)
    used_ports: set[int] = field(default_factory=set)
    display: str | None = None
    xvfb: subprocess.Popen | None = None
    sam_file: Path | None = None

    # ports ---------------------------------------------------------------------------------------
    def free_port(self) -> int:
        """A port of PORT_RANGE nothing listens on and this set has not handed out."""
        candidates = list(range(PORT_RANGE[0], PORT_RANGE[1] + 1))
        random.shuffle(candidates)
        for port in candidates:
            if port not in self.used_ports and _port_free(port):
                self.used_ports.add(port)
                return port
        raise RuntimeError(f"no free port in {PORT_RANGE}")

    # processes -----------------------------------------------------------------------------------
    def _spawn(self, name: str, kind: str, port: int, argv: list[str], env: dict[str, str] | None = None) -> Server:
        log = self.workdir / f"{name}.out"
        with open(log, "wb") as out:
            # start_new_session: the server never gets our terminal's signals; we stop it by PID.
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                       env=env, start_new_session=True, cwd=self.workdir)
        server = Server(name, kind, port, pid=process.pid, log=log, process=process)
        self.servers[name] = server
        return server

    def wait_listening(self, servers: list[Server], timeout: float = START_TIMEOUT) -> None:
        """Block until every server listens; RuntimeError with its log tail if one dies or hangs."""
        deadline = time.monotonic() + timeout
        pending = list(servers)
        while pending:
            for server in list(pending):
                if _listening(server.port):
                    pending.remove(server)
                elif server.process is not None and server.process.poll() is not None:
                    raise RuntimeError(f"{server.name} exited with {server.process.returncode}: {self._tail(server)}")
            if pending and time.monotonic() > deadline:
                raise RuntimeError("not listening after %.0f s: %s" % (timeout, ", ".join(
                    f"{s.name} ({self._tail(s)})" for s in pending)))
            if pending:
                time.sleep(0.005)

    @staticmethod
    def _tail(server: Server) -> str:
        text = ""
        for path in (server.log, server.log.with_suffix(".log") if server.log else None):
            if path and path.exists():
                text += path.read_text(errors="replace")[-600:]
        return text.strip().replace("\n", " | ")

    def start_xrdp(self, name: str, security_layer: str, cert: Path | None, key: Path | None,
                   ssl_protocols: str = "TLSv1.2, TLSv1.3", tls_ciphers: str | None = None) -> Server:
        """xrdp --nodaemon with its own ini (fork=false: one PID per instance), not yet waited for."""
        binary = require("xrdp")
        port = self.free_port()
        ini = self.workdir / f"{name}.ini"
        missing = self.workdir / "missing"
        ini.write_text(XRDP_INI.format(
            port=port, security_layer=security_layer, cert=cert or missing / "cert.pem", key=key or missing / "key.pem",
            ssl_protocols=ssl_protocols, tls_ciphers_line=f"tls_ciphers={tls_ciphers}" if tls_ciphers else "",
            log=self.workdir / f"{name}.log"))
        return self._spawn(name, "xrdp", port, [binary, "--nodaemon", "--config", str(ini)])

    def ensure_display(self) -> str:
        """One Xvfb for every shadow server; -displayfd picks a free display number."""
        if self.display:
            return self.display
        binary = require("Xvfb")
        # -noreset: no server reset (and no -displayfd rewrite) when the last client leaves.
        read_fd, write_fd = os.pipe()
        log = open(self.workdir / "xvfb.out", "wb")  # pylint: disable=consider-using-with
        try:
            self.xvfb = subprocess.Popen(  # pylint: disable=consider-using-with
                [binary, "-displayfd", str(write_fd), "-nolisten", "tcp", "-noreset", "-screen", "0", "1024x768x24"],
                pass_fds=(write_fd,), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            os.close(write_fd)
            log.close()
        try:
            number = _read_line(read_fd, START_TIMEOUT)
        finally:
            os.close(read_fd)
        if not number.isdigit():
            raise RuntimeError("Xvfb did not report a display: " + (self.workdir / "xvfb.out").read_text(errors="replace")[-400:])
        self.display = f":{number}"
        return self.display

    def ensure_sam(self) -> Path:
        """NTLM user database for NLA servers, written by winpr-hash."""
        if self.sam_file is None:
            line = subprocess.run([require("winpr-hash"), "-u", SAM_USER, "-p", SAM_PASSWORD, "-f", "sam"],
                                  capture_output=True, text=True, check=True, timeout=10).stdout.strip()
            self.sam_file = self.workdir / "users.sam"
            self.sam_file.write_text(line + "\n")
        return self.sam_file

    def start_shadow(self, name: str, args: list[str], cert: Path | None = None, key: Path | None = None) -> Server:
        """freerdp-shadow-cli on 127.0.0.1 with its own XDG_CONFIG_HOME (certificate placement)."""
        binary = require("freerdp-shadow-cli")
        display = self.ensure_display()
        home = self.workdir / f"{name}.home"
        shadow_dir = home / "freerdp" / "shadow"
        shadow_dir.mkdir(parents=True, exist_ok=True)
        if cert and key:
            shutil.copyfile(cert, shadow_dir / "shadow.crt")
            shutil.copyfile(key, shadow_dir / "shadow.key")
        args = [a.replace("{sam}", str(self.ensure_sam())) for a in args]
        port = self.free_port()
        env = dict(os.environ, XDG_CONFIG_HOME=str(home), HOME=str(home), DISPLAY=display)
        return self._spawn(name, "shadow", port, [binary, f"/port:{port}", "/bind-address:127.0.0.1", *args], env)

    # in-process services -------------------------------------------------------------------------
    def _listener(self, backlog: int = 16) -> tuple[socket.socket, int]:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = self.free_port()
        sock.bind(("127.0.0.1", port))
        sock.listen(backlog)
        return sock, port

    def _serve(self, name: str, kind: str, handler) -> Server:
        """Accept loop on a thread; ``handler(conn)`` runs per connection on its own thread."""
        sock, port = self._listener()
        stop = threading.Event()
        held: list[socket.socket] = []

        def loop() -> None:
            sock.settimeout(0.1)
            while not stop.is_set():
                try:
                    conn, _addr = sock.accept()
                except (socket.timeout, OSError):
                    continue
                held.append(conn)
                threading.Thread(target=_guarded, args=(handler, conn), daemon=True).start()

        threading.Thread(target=loop, daemon=True, name=name).start()

        def close() -> None:
            stop.set()
            sock.close()
            for conn in held:
                conn.close()

        server = Server(name, kind, port, stop_callback=close)
        self.servers[name] = server
        return server

    def start_ssh_banner(self, name: str = "ssh-banner") -> Server:
        """Sends an OpenSSH-style banner at once (servers speak first in SSH), then drops bad input."""
        def handle(conn: socket.socket) -> None:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            conn.settimeout(2)
            conn.recv(1024)
            conn.sendall(b"Invalid SSH identification string.\r\n")
            conn.close()
        return self._serve(name, "ssh", handle)

    def start_silent(self, name: str = "silent") -> Server:
        """Accepts and never answers (a hung service)."""
        def handle(conn: socket.socket) -> None:
            conn.settimeout(30)
            while conn.recv(1024):
                pass
        return self._serve(name, "silent", handle)

    def start_tls_service(self, cert: Path, key: Path, name: str = "tls-service") -> Server:
        """A bare TLS service (like HTTPS): handshake first, no RDP."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

        def handle(conn: socket.socket) -> None:
            conn.settimeout(5)
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1024)
        return self._serve(name, "tls", handle)

    def start_http(self, name: str = "http") -> Server:
        """The standard library's HTTP server (answers 400 to a Connection Request line)."""
        class Handler(http.server.BaseHTTPRequestHandler):
            """Replies with a status line even to HTTP/0.9-looking garbage, like nginx does."""
            default_request_version = "HTTP/1.0"
            server_version = "probe-test-http/1.0"

            def log_message(self, format, *args):  # noqa: A002  pylint: disable=redefined-builtin
                return

        port = self.free_port()
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        httpd.timeout = 2
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

        def close() -> None:
            httpd.shutdown()
            httpd.server_close()

        server = Server(name, "http", port, stop_callback=close)
        self.servers[name] = server
        return server

    def start_syn_drop(self, name: str = "syn-drop") -> Server:
        """A listener that never accepts, with its accept queue filled: the kernel drops new SYNs, so
        a client's connect times out (what a filtering firewall or a dead host looks like)."""
        sock, port = self._listener(backlog=0)
        fillers = []
        for _filler in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)

        def close() -> None:
            for filler in fillers:
                filler.close()
            sock.close()

        server = Server(name, "syn-drop", port, stop_callback=close)
        self.servers[name] = server
        return server

    def closed_port(self) -> int:
        """A port nothing listens on (connect is refused)."""
        return self.free_port()

    # stop ------------------------------------------------------------------------------------------
    def stop_all(self) -> list[str]:
        """Stop every server: SIGTERM by PID, SIGKILL after STOP_TIMEOUT; returns what needed SIGKILL."""
        killed = []
        processes = [s for s in self.servers.values() if s.process is not None]
        for server in processes:
            if server.process.poll() is None:
                os.kill(server.pid, signal.SIGTERM)
        for server in self.servers.values():
            if callable(server.stop_callback):
                server.stop_callback()
        for server in processes:
            try:
                server.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.process.wait(timeout=STOP_TIMEOUT)
                killed.append(server.name)
        if self.xvfb is not None and self.xvfb.poll() is None:
            os.kill(self.xvfb.pid, signal.SIGTERM)
            try:
                self.xvfb.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.xvfb.pid, signal.SIGKILL)
                self.xvfb.wait(timeout=STOP_TIMEOUT)
                killed.append("xvfb")
        self.servers.clear()
        return killed


def _read_line(fd: int, timeout: float) -> str:
    """Read up to the first newline. Xvfb writes the display number and the newline separately and
    dies ("Cannot write display number") if the pipe is closed in between."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        ready, _w, _x = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 32) if ready else b""
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _guarded(handler, conn: socket.socket) -> None:
    """Run a connection handler; a client going away mid-conversation is normal here."""
    try:
        handler(conn)
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()
