"""A real Dovecot IMAP server for the test session (and the ingest benchmark): loopback, temp dir.

Debian's ``dovecot-imapd`` binaries run from a private config in a temp directory: plaintext
IMAP and implicit TLS (a self-signed certificate made with ``openssl``) on free loopback ports,
passwd-file users with known passwords, maildir storage. Dovecot refuses to deliver mail as
root, so when the tests run as root mail belongs to Debian's ``mail`` user and Dovecot's own
processes run as ``dovecot``/``dovenull``.

Users: ``alice``/``alice-pw``, ``bob``/``bob-pw``, ``carol``/``carol-pw``, ``dave``/``dave-pw``
and ``oauth`` whose password doubles as an OAuth2 bearer token (``oauth-token``): Dovecot 2.3's
XOAUTH2/OAUTHBEARER mechanisms check the token against the passdb like a password, which is
enough to exercise the client side of token login.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import pytest

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"

USERS: dict[str, str] = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "carol": "carol-pw",
    "dave": "dave-pw",
    "erin": "erin-pw",
    "oauth": "oauth-token",
}

_CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
instance_name = jeeves-test-{port}
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {uid}
last_valid_uid = 0
mail_uid = {uid}
mail_gid = {gid}
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0 secs
mail_location = maildir:{base}/mail/%u:LAYOUT=fs
mail_fsync = never
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = 1 mins
ssl = yes
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
ssl_min_protocol = TLSv1.2
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
  process_min_avail = 1
}}
service imap {{
  process_limit = 200
}}
service anvil {{
  chroot =
  # No growing delay after failed logins: tests log in wrongly on purpose.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DovecotServer:
    """One Dovecot instance in ``base``; start/stop/restart keep its mail and ports."""

    def __init__(self, base: Path, *, port: int | None = None, tls_port: int | None = None,
                 users: dict[str, str] | None = None) -> None:
        if not Path(DOVECOT).exists():
            raise RuntimeError(
                f"{DOVECOT} is missing: install Debian's dovecot-imapd (apt-get install dovecot-imapd) "
                "or run the suite through the README's test command, which installs it"
            )
        self.base = Path(base)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.tls_port = tls_port or free_port()
        self.config = self.base / "dovecot.conf"
        self.ca_file = self.base / "cert.pem"
        self.passwords = dict(USERS) | dict(users or {})
        self._proc: subprocess.Popen | None = None
        self._prepare()

    # --- lifecycle ------------------------------------------------------------------------

    def _prepare(self) -> None:
        root = os.geteuid() == 0
        mail_user = pwd.getpwnam("mail") if root else pwd.getpwuid(os.geteuid())
        self.uid, self.gid = mail_user.pw_uid, mail_user.pw_gid
        for sub in ("run", "state", "mail", "home"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        for sub in ("mail", "home"):
            os.chown(self.base / sub, self.uid, self.gid) if root else None
        (self.base / "passwd").write_text("".join(f"{u}:{p}::::::nodelay=y\n" for u, p in self.passwords.items()))
        os.chmod(self.base / "passwd", 0o644)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "3", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.base / "key.pem"), "-out", str(self.ca_file)],
            check=True, capture_output=True,
        )
        if root:
            users = {"internal_user": "dovecot", "internal_group": "dovecot", "login_user": "dovenull"}
        else:  # an unprivileged Dovecot runs everything as the current user
            import grp

            me = pwd.getpwuid(os.geteuid()).pw_name
            users = {"internal_user": me, "internal_group": grp.getgrgid(os.getegid()).gr_name, "login_user": me}
        self.config.write_text(_CONFIG.format(base=self.base, port=self.port, tls_port=self.tls_port, uid=self.uid, gid=self.gid, **users))

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        log = open(self.base / "stderr.log", "ab")
        self._proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)], stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"dovecot exited at start: {self.log_tail()}")
            if self._accepts(self.port) and self._accepts(self.tls_port):
                return
            time.sleep(0.02)
        raise RuntimeError(f"dovecot did not listen within 10 s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the server and every connection it holds (clients see the socket close)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # Signal the whole process group: the master alone waits for its children to notice.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        # Child processes (imap, auth) leave with their master; wait until the ports are free.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (self._accepts(self.port) or self._accepts(self.tls_port)):
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("stderr.log", "dovecot.log"):
            path = self.base / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def kill_connections(self, user: str = "*") -> None:
        """Drop every IMAP connection of ``user`` (all users by default), as a flaky network would."""
        subprocess.run([DOVEADM, "-c", str(self.config), "kick", user], capture_output=True, timeout=10)

    # --- client-side helpers ----------------------------------------------------------------

    def account(self, user: str = "alice", **overrides):
        """AccountSettings for ``user`` on the plaintext loopback port (``tls="implicit"`` picks the
        TLS port; pass ``ca_file=server.ca_file`` to trust it). Unlike the product default,
        ``first_sync`` is "all", so mail appended before the first sync is fetched."""
        from pydantic import SecretStr

        from jeeves.config import AccountSettings

        values = {
            "name": user,
            "host": self.host,
            "port": self.port,
            "tls": "none",
            "username": user,
            "password": SecretStr(self.passwords.get(user, "")),
            "idle": True,
            "first_sync": "all",
            "connect_timeout": 5.0,
            "read_timeout": 20.0,
        }
        if overrides.get("tls") == "implicit" and "port" not in overrides:
            values["port"] = self.tls_port
        if isinstance(overrides.get("password"), str):
            overrides["password"] = SecretStr(overrides["password"])
        values.update(overrides)
        return AccountSettings(**values)

    def client(self, user: str = "alice"):
        from imapclient import IMAPClient, SocketTimeout

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=SocketTimeout(connect=5, read=30))
        client.login(user, self.passwords[user])
        return client

    def _folder_client(self, user: str, folder: str):
        client = self.client(user)
        if folder.upper() != "INBOX" and not client.folder_exists(folder):
            client.create_folder(folder)
        return client

    def append(self, user: str, folder: str, raw: bytes, flags: Sequence[str] = (), msg_time=None) -> None:
        with self._folder_client(user, folder) as client:
            client.append(folder, raw, flags=tuple(flags), msg_time=msg_time)

    def append_many(self, user: str, folder: str, raws: Iterable[bytes], *, chunk: int = 200) -> int:
        """APPEND many messages over one connection (MULTIAPPEND in chunks); returns the count."""
        count = 0
        with self._folder_client(user, folder) as client:
            batch: list[bytes] = []
            for raw in raws:
                batch.append(raw)
                if len(batch) >= chunk:
                    client.multiappend(folder, batch)
                    count += len(batch)
                    batch = []
            if batch:
                client.multiappend(folder, batch)
                count += len(batch)
        return count

    def create_folder(self, user: str, folder: str) -> None:
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)

    def delete_folder(self, user: str, folder: str) -> None:
        with self.client(user) as client:
            if client.folder_exists(folder):
                client.delete_folder(folder)

    def set_flags(self, user: str, folder: str, uids: Sequence[int], flags: Sequence[str], *, add: bool = True) -> None:
        with self.client(user) as client:
            client.select_folder(folder)
            (client.add_flags if add else client.remove_flags)(list(uids), list(flags))

    def copy(self, user: str, folder: str, uids: Sequence[int], target: str) -> None:
        with self._folder_client(user, target) as client:
            client.select_folder(folder)
            client.copy(list(uids), target)

    def uids(self, user: str, folder: str) -> list[int]:
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            return sorted(client.search("ALL"))

    def empty_mailbox(self, user: str) -> None:
        """Delete every folder but INBOX and empty INBOX, so a test starts from nothing."""
        with self.client(user) as client:
            for _flags, _sep, name in client.list_folders():
                if name.upper() != "INBOX":
                    try:
                        client.delete_folder(name)
                    except Exception:  # noqa: BLE001 - parent folders may already be gone
                        pass
            client.select_folder("INBOX")
            uids = client.search("ALL")
            if uids:
                client.delete_messages(uids)
                client.expunge()


def start_dovecot(base: Path | None = None, **kwargs) -> DovecotServer:
    """A started server; also stopped at interpreter exit, so an interrupted run leaves none behind."""
    server = DovecotServer(Path(base or tempfile.mkdtemp(prefix="jeeves-dovecot-")), **kwargs)
    server.start()
    atexit.register(server.close)
    return server


@pytest.fixture(scope="session")
def dovecot_server():
    """A running Dovecot for the session. Tests should use their own user or empty it first."""
    if not Path(DOVECOT).exists():
        pytest.fail(
            f"{DOVECOT} is missing: install Debian's dovecot-imapd (apt-get install dovecot-imapd), "
            "or run the test suite through the README's test command, which installs it"
        )
    server = start_dovecot()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def dovecot(dovecot_server):
    """The session's Dovecot, running, with alice's and bob's mailboxes emptied for this test."""
    dovecot_server.start()
    for user in ("alice", "bob"):
        dovecot_server.empty_mailbox(user)
    return dovecot_server
