"""A real Kannel for tests: bearerbox, smsbox and fakesmsc (Debian's kannel, kannel-extras).

The fixture writes a kannel.conf into a temporary directory (everything on 127.0.0.1, free
ports): a core group with internal DLR storage, an `smsc = fake` group, an smsbox with its
sendsms port, one sendsms-user and a default sms-service whose get-url is
`kannel_inbound_url(...)` pointing at a small HTTP receiver that this module runs in a thread.
The receiver records every request Kannel makes (delivery reports on /webhooks/kannel/sms-status,
inbound SMS on /webhooks/kannel/sms) as `InboundRequest`s for the provider's verify/parse.

fakesmsc is the "network": it runs in interactive mode, logs every MT message it gets
("Got message N: <from to text|ucs-2|data payload>", read back by `mt_messages()`) and sends
each line written to its stdin as an MO message (`send_mo`). Kannel's fake SMSC acknowledges
every submit, so a message with dlr-mask 31 gets a DLR of type 8 (SMSC submit, reply "ACK/")
and then one of type 1 (delivered).

Register the fixture (named `kannel`, one Kannel per test module) by importing it:
`from tests.kannel import kannel_fixture  # noqa: F401`. Missing binaries fail the test with
the install hint; they never skip it.

To have Kannel call something else with inbound SMS (the app itself), build `Kannel(workdir)`,
use its ports and credentials (`sendsms_url`, `username`, `password`), then
`start(get_url=kannel_inbound_url(app_url, secret, ...))` and inject MO messages with
`inject_mo` (the recording receiver then sees only what is addressed to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import parse_qsl, quote_plus, unquote_to_bytes, urlencode, urlsplit
from urllib.request import urlopen

import pytest

from telephony_gateway.providers.base import InboundRequest
from telephony_gateway.providers.kannel import (
    INBOUND_PATH,
    STATUS_PATH,
    KannelSms,
    kannel_inbound_url,
)

INSTALL_HINT = "install Kannel: apt-get install -y kannel kannel-extras (Debian packages)"
FAKESMSC_CANDIDATES = ("/usr/lib/kannel/test/fakesmsc", "/usr/sbin/fakesmsc", "/usr/bin/fakesmsc")
SMSC_ID = "fake1"
START_TIMEOUT = 15.0
FAKESMSC_LINE_MAX = 254  # fakesmsc reads stdin with a 256-byte fgets buffer
T = TypeVar("T")
_MT_LINE = re.compile(r"Got message \d+: <(.*)>\s*$")


def _binary(name: str, *candidates: str) -> str:
    for path in (shutil.which(name), *candidates):
        if path and Path(path).is_file():
            return path
    pytest.fail(f"Kannel's {name} is not installed: {INSTALL_HINT}", pytrace=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class MtMessage:
    """An SMS that reached the fake network, decoded."""

    sender: str
    receiver: str
    coding: str  # fakesmsc's word for it: "text" (GSM-7), "ucs-2" or "data" (8-bit)
    text: str


def parse_mt_line(line: str) -> MtMessage | None:
    """One "Got message" line of fakesmsc: `from to type payload`. Kannel url-encodes ucs-2 and
    data payloads (UTF-16BE and raw bytes); text payloads are plain (UTF-8)."""
    found = _MT_LINE.search(line)
    if not found:
        return None
    sender, receiver, coding, payload = [*found.group(1).split(" ", 3), "", "", ""][:4]
    if coding == "ucs-2":
        text = unquote_to_bytes(payload.replace("+", " ")).decode("utf-16-be", "replace")
    elif coding == "data":
        text = unquote_to_bytes(payload.replace("+", " ")).decode("utf-8", "replace")
    else:
        text = payload
    return MtMessage(sender, receiver, coding, text)


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.requests: list[InboundRequest] = []
        self.lock = threading.Lock()


class _RecordingHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        host, port = self.server.server_address[:2]
        query = urlsplit(self.path).query
        request = InboundRequest(
            url=f"http://{host!s}:{port}{self.path}",
            method=self.command,
            headers={key.lower(): value for key, value in self.headers.items()},
            # As a web framework decodes it (UTF-8): the provider must not rely on it for text.
            query=dict(parse_qsl(query, keep_blank_values=True)),
            form=dict(parse_qsl(body, keep_blank_values=True)),
        )
        with self.server.lock:
            self.server.requests.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._record()

    def do_POST(self) -> None:
        self._record()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Kannel:
    """The running daemons and what they did."""

    def __init__(self, workdir: Path, *, get_url: str | None = None) -> None:
        self.workdir = workdir
        #: The sms-service get-url (Kannel's escape codes included); by default the receiver's.
        self.get_url = get_url
        self.bearerbox = _binary("bearerbox", "/usr/sbin/bearerbox")
        self.smsbox = _binary("smsbox", "/usr/sbin/smsbox")
        self.fakesmsc = _binary("fakesmsc", *FAKESMSC_CANDIDATES)
        self.username = "depotline"
        self.password = secrets.token_urlsafe(12)
        self.admin_password = secrets.token_urlsafe(12)
        self.webhook_secret = secrets.token_bytes(32)
        self.smsc_id = SMSC_ID
        self.admin_port = _free_port()
        self.smsbox_port = _free_port()
        self.smsc_port = _free_port()
        self.sendsms_port = _free_port()
        self.sendsms_url = f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"
        self._receiver = _Receiver()
        self.receiver_url = f"http://127.0.0.1:{self._receiver.server_address[1]}"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._mt: list[MtMessage] = []
        self._fakesmsc_lines: list[str] = []
        self._lock = threading.Lock()
        self._serving = False

    # -- what tests use ------------------------------------------------------------------------

    def provider(self, *, password: str | None = None) -> KannelSms:
        """A provider for this Kannel (with another password, to be refused)."""
        return KannelSms(
            sendsms_url=self.sendsms_url,
            username=self.username,
            password=self.password if password is None else password,
            webhook_secret=self.webhook_secret,
            smsc_id=self.smsc_id,
        )

    def _received(self, path: str) -> list[InboundRequest]:
        with self._receiver.lock:
            return [r for r in self._receiver.requests if urlsplit(r.url).path == path]

    def received_dlrs(self) -> list[InboundRequest]:
        return self._received(STATUS_PATH)

    def received_inbound(self) -> list[InboundRequest]:
        return self._received(INBOUND_PATH)

    def mt_messages(self) -> list[MtMessage]:
        with self._lock:
            return list(self._mt)

    async def wait_for(self, probe: Callable[[], T], what: str, seconds: float = 10.0) -> T:
        """Poll `probe` until it returns something truthy."""
        deadline = time.monotonic() + seconds
        while True:
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.diagnostics()}")
            await asyncio.sleep(0.05)

    def inject_mo(self, sender: str, receiver: str, text: str) -> None:
        """Hand fakesmsc an MO SMS (as text when it is plain ASCII, else as UCS-2); smsbox then
        passes it on to the get-url. Wait for it to arrive before the next one (see below)."""
        if text.isascii() and text.isprintable() and text.strip() == text:
            line = f"{sender} {receiver} text {text}"
        else:
            line = f"{sender} {receiver} ucs2 {quote_plus(text.encode('utf-16-be'))}"
        assert len(line.encode()) <= FAKESMSC_LINE_MAX, "too long for one fakesmsc line"
        stdin = self._processes["fakesmsc"].stdin
        assert stdin is not None
        # One line at a time: fakesmsc select()s on stdin, then fgets() one line, so a second
        # line already in its stdio buffer would wait for the next write.
        stdin.write(line.encode() + b"\n")
        stdin.flush()

    async def send_mo(self, sender: str, receiver: str, text: str) -> InboundRequest:
        """Inject an MO SMS through fakesmsc and wait for smsbox to deliver it to the
        receiver's get-url (the default one); returns that request."""
        before = len(self.received_inbound())
        self.inject_mo(sender, receiver, text)
        arrived = await self.wait_for(
            lambda: self.received_inbound()[before:], f"inbound SMS {text!r}"
        )
        return arrived[0]

    def diagnostics(self) -> str:
        parts = []
        for name in ("bearerbox.log", "smsbox.log"):
            path = self.workdir / name
            if path.exists():
                tail = path.read_text("utf-8", "replace").splitlines()[-25:]
                parts.append(f"--- {name}\n" + "\n".join(tail))
        with self._lock:
            parts.append("--- fakesmsc\n" + "\n".join(self._fakesmsc_lines[-15:]))
        return "\n".join(parts)

    # -- lifecycle -----------------------------------------------------------------------------

    def config(self) -> str:
        inbound = self.get_url or kannel_inbound_url(self.receiver_url, self.webhook_secret)
        return f"""\
group = core
admin-port = {self.admin_port}
admin-interface = 127.0.0.1
admin-password = "{self.admin_password}"
admin-allow-ip = "127.0.0.1"
smsbox-port = {self.smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
dlr-storage = internal
log-file = "{self.workdir / "bearerbox.log"}"
log-level = 0

group = smsc
smsc = fake
smsc-id = {SMSC_ID}
port = {self.smsc_port}
our-host = 127.0.0.1
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.smsbox_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{self.workdir / "smsbox.log"}"
log-level = 0

group = sendsms-user
username = "{self.username}"
password = "{self.password}"
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
get-url = "{inbound}"
max-messages = 0
omit-empty = true
"""

    def _spawn(self, name: str, argv: list[str], *, interactive: bool = False) -> None:
        """Start a daemon with its output in a file; `interactive` pipes stdin and stderr."""
        log = (self.workdir / f"{name}.out").open("wb")
        self._logs.append(log)
        self._processes[name] = subprocess.Popen(
            argv,
            cwd=self.workdir,
            stdin=subprocess.PIPE if interactive else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.PIPE if interactive else log,
        )

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            for name, process in self._processes.items():
                if process.poll() is not None:
                    self._fail(f"{name} exited with {process.returncode} while waiting for {what}")
            if time.monotonic() > deadline:
                self._fail(f"timed out waiting for {what}")
            time.sleep(0.05)

    def _fail(self, message: str) -> None:
        diagnostics = self.diagnostics()
        self.stop()
        pytest.fail(f"Kannel did not start: {message}\n{diagnostics}", pytrace=False)

    def _status_page(self) -> str:
        query = urlencode({"password": self.admin_password})
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?{query}"
        try:
            with urlopen(url, timeout=1) as response:
                page: bytes = response.read()
        except OSError:
            return ""
        return page.decode("utf-8", "replace")

    def _online(self) -> bool:
        page = self._status_page()
        smsc_online = re.search(rf"^\s*{SMSC_ID}\[{SMSC_ID}\].*\(online", page, re.MULTILINE)
        return bool(smsc_online) and "(on-line" in page and _accepts(self.sendsms_port)

    def _read_fakesmsc(self, stream: IO[bytes]) -> None:
        with (self.workdir / "fakesmsc.log").open("w", encoding="utf-8") as log:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                message = parse_mt_line(line)
                with self._lock:
                    self._fakesmsc_lines.append(line)
                    if message is not None:
                        self._mt.append(message)

    def start(self, *, get_url: str | None = None) -> None:
        """Start the daemons; `get_url` (if given) replaces the sms-service get-url."""
        if get_url is not None:
            self.get_url = get_url
        threading.Thread(target=self._receiver.serve_forever, daemon=True).start()
        self._serving = True
        conf = self.workdir / "kannel.conf"
        conf.write_text(self.config(), encoding="utf-8")
        self._spawn("bearerbox", [self.bearerbox, str(conf)])
        self._wait(lambda: _accepts(self.smsbox_port) and _accepts(self.smsc_port), "bearerbox")
        self._spawn("smsbox", [self.smsbox, str(conf)])
        self._wait(lambda: _accepts(self.sendsms_port), "smsbox")
        # Interactive mode (no messages on the command line): MO lines come from stdin.
        argv = [self.fakesmsc, "-H", "127.0.0.1", "-r", str(self.smsc_port), "-i", "0"]
        self._spawn("fakesmsc", argv, interactive=True)
        stderr = self._processes["fakesmsc"].stderr
        assert stderr is not None  # fakesmsc logs what it receives on stderr
        threading.Thread(target=self._read_fakesmsc, args=(stderr,), daemon=True).start()
        self._wait(self._online, "the fake SMSC and smsbox to be on-line")

    def stop(self) -> None:
        fakesmsc = self._processes.get("fakesmsc")
        if fakesmsc is not None and fakesmsc.stdin is not None and not fakesmsc.stdin.closed:
            with contextlib.suppress(OSError):
                fakesmsc.stdin.close()
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._serving:
            self._receiver.shutdown()
            self._serving = False
        self._receiver.server_close()


@pytest.fixture(name="kannel", scope="module")
def kannel_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kannel]:
    """bearerbox + smsbox + fakesmsc on 127.0.0.1, stopped at the end of the module."""
    kannel = Kannel(tmp_path_factory.mktemp("kannel"))
    kannel.start()
    try:
        yield kannel
    finally:
        kannel.stop()
