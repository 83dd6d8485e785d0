"""One authenticated IMAP connection: TLS, login (password, XOAUTH2, OAUTHBEARER), logout.

The promises: TLS certificates are checked unless the account opts out (``insecure``);
plaintext IMAP is refused except to this machine (``is_loopback_host``, the one definition of
"this machine", which the configuration check uses too) or when the account opts in; every
failure becomes one actionable ``SourceError`` that never contains a secret, and a broken link
is a ``ConnectionLost`` (reconnecting is the cure). An OAuth2 token is reused until the server
rejects it, then fetched afresh once.
"""

from __future__ import annotations

import ipaddress

import logging
import socket
import ssl
from typing import TYPE_CHECKING

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import CapabilityError, IMAPClientAbortError, IMAPClientError, LoginError

from jeeves.errors import AuthenticationError, ConfigError, SourceError

if TYPE_CHECKING:  # jeeves.config imports is_loopback_host from here: no import back at load time
    from jeeves.config import AccountSettings

log = logging.getLogger(__name__)


class ConnectionLost(SourceError):
    """The link to the server broke (timeout, reset, EOF); reconnecting is the cure."""


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine ("localhost", 127.0.0.0/8 or ::1), where plaintext
    IMAP exposes nothing on the wire. The one definition: the settings check it when they load,
    the session when it connects. A host *name* that starts with "127." is not loopback: it
    resolves wherever its DNS says."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, not an address
        return False


def server_text(exc: Exception) -> str:
    """The server's own words from an imapclient error, without imapclient's wrapping."""
    text = str(exc)
    for prefix in ("login failed: ", "select failed: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.strip("[]'\" b") or type(exc).__name__


class Session:
    """Connects on first use and keeps the connection; ``drop`` forgets a broken one."""

    def __init__(self, account: "AccountSettings") -> None:
        self.account = account
        self.client: IMAPClient | None = None
        self._token: str | None = None

    @property
    def name(self) -> str:
        return self.account.name

    def connect(self) -> IMAPClient:
        """The connected client: connect, secure and authenticate, or raise one ``SourceError``."""
        if self.client is not None:
            return self.client
        acct = self.account
        host, port = acct.host, acct.effective_port
        where = f"{host}:{port}"
        if acct.tls == "none" and not (is_loopback_host(host) or acct.insecure):
            raise SourceError(f"account {self.name}: refusing plaintext IMAP to {where}; use tls = 'implicit' or 'starttls' (or set insecure = true)")
        context = self._ssl_context() if acct.tls != "none" else None
        timeout = SocketTimeout(connect=acct.connect_timeout, read=acct.read_timeout)
        try:
            client = IMAPClient(host, port=port, ssl=acct.tls == "implicit", ssl_context=context, timeout=timeout)
            if acct.tls == "starttls":
                client.starttls(context)
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(
                f"account {self.name}: the TLS certificate of {where} is not trusted ({exc.verify_message}); "
                f"set ca_file to the CA that signed it, or fix the server's certificate"
            ) from None
        except ssl.SSLError as exc:
            raise SourceError(f"account {self.name}: TLS handshake with {where} failed ({exc.reason or exc}); check port and tls mode") from None
        except CapabilityError:
            raise SourceError(f"account {self.name}: {where} does not offer STARTTLS; use tls = 'implicit' (usually port 993)") from None
        except socket.timeout:
            raise ConnectionLost(f"account {self.name}: connecting to {where} timed out after {acct.connect_timeout:g} s") from None
        except (OSError, IMAPClientAbortError) as exc:
            raise ConnectionLost(f"account {self.name}: cannot connect to {where}: {exc}") from None
        except IMAPClientError as exc:
            raise SourceError(f"account {self.name}: {where} refused the session: {exc}") from None
        client.normalise_times = False  # aware datetimes: INTERNALDATE compares with notify_after
        try:
            self._login(client)
        except BaseException:
            _shutdown(client)
            raise
        log.info("imap account %s connected to %s (tls=%s)", self.name, where, acct.tls,
                 extra={"account": self.name, "host": host, "port": port, "tls": acct.tls})
        self.client = client
        return client

    def drop(self) -> None:
        """Forget a connection that is (or may be) broken, without talking to the server."""
        client, self.client = self.client, None
        if client is not None:
            _shutdown(client)

    def close(self) -> None:
        """Log out politely; a broken link is simply dropped."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            _shutdown(client)

    def _ssl_context(self) -> ssl.SSLContext:
        acct = self.account
        try:
            context = ssl.create_default_context(cafile=str(acct.ca_file) if acct.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(f"account {self.name}: cannot load ca_file {acct.ca_file}: {exc}") from None
        if acct.insecure:
            # Opt-in only: the user said this server's certificate cannot be checked.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _login(self, client: IMAPClient) -> None:
        acct = self.account
        try:
            if acct.auth == "password":
                if acct.password is None:
                    raise AuthenticationError(f"account {self.name}: no password configured (password or password_env)")
                client.login(acct.username, acct.password.get_secret_value())
                return
            for attempt in (1, 2):
                if self._token is None or attempt == 2:
                    from jeeves.config_sources import oauth_token

                    try:
                        self._token = oauth_token(acct)
                    except ConfigError as exc:
                        raise AuthenticationError(str(exc)) from None
                try:
                    if acct.auth == "xoauth2":
                        client.oauth2_login(acct.username, self._token)
                    else:
                        client.oauthbearer_login(acct.username, self._token)
                    return
                except LoginError:
                    if attempt == 2:
                        raise
                    log.info("imap account %s: the server rejected the OAuth2 token; fetching a fresh one", self.name, extra={"account": self.name})
        except LoginError as exc:
            self._token = None
            what = "password" if acct.auth == "password" else f"{acct.auth.upper()} token"
            raise AuthenticationError(
                f"account {self.name}: {acct.host} refused the login for {acct.username!r} ({server_text(exc)}); "
                f"check the {what}"
            ) from None
        except (OSError, IMAPClientAbortError) as exc:
            raise ConnectionLost(f"account {self.name}: connection lost while logging in: {exc}") from None


def _shutdown(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception:  # noqa: BLE001 - already broken
        pass
