"""Server-side HTTP fetches that cannot be pointed at the server's own network (SSRF guard).

Every fetch the server makes on a user's behalf (URL ingest, webhooks, campaign page
pre-flights) goes through `guarded_client()` / `open_url()`; the campaign page capture
(render_nodes/campaigns/capture.py) checks every request its browser makes with
`AddressPolicy`. It lives on the ground floor so that render nodes can use it too:

- only `http` and `https` URLs, with a host and without userinfo (`user:pw@`); any port;
- the host is resolved with `socket.getaddrinfo` and the fetch is refused when ANY of its
  addresses is private, loopback, link-local, multicast, reserved, unspecified, CGNAT
  (100.64.0.0/10), a cloud metadata address (169.254.169.254, fd00:ec2::254) or otherwise
  not globally routable, unless it lies inside a network of `fetch_allow_networks`;
- the socket is then opened to one of the addresses that were checked: the name is not
  resolved a second time, so a DNS answer that changes between check and connect
  (DNS rebinding) cannot slip a private address in;
- redirects are followed by hand (at most `max_redirects`), and each hop is checked again.

How the address is pinned: the check runs inside the connection layer itself, an
httpcore network backend whose `connect_tcp` resolves, checks and connects to the
checked IP. The request keeps its real URL, so the Host header, TLS SNI, certificate
verification and the connection pool all work on the original name, and no code path
can open a connection without passing the check. (Rewriting the URL to the IP with a
Host header and `sni_hostname` would pool connections by IP: a redirect to a second
name on the same IP could reuse a TLS connection verified for the first name.)
Proxies from the environment are never used: through a proxy the check would see the
proxy's address, not the target's.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SCHEMES = ("http", "https")
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)


class FetchError(Exception):
    """A fetch failed; str() is short and readable by the user who asked for it."""


class FetchRefused(FetchError):
    """The URL, or an address its host resolves to, is not allowed."""


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR strings -> networks; ValueError naming the bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP network in CIDR form: {cidr!r} ({exc})") from None
    return tuple(networks)


def refused_reason(ip: IPAddress) -> str | None:
    """Why `ip` may not be fetched from (e.g. 'a private address'), or None when it is public."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 reaches the IPv4 host: judge that one.
        embedded = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        if embedded is not None:
            return refused_reason(embedded)
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a shared (CGNAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses fetches may reach: public ones, plus any inside `allow`."""

    allow: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, settings) -> AddressPolicy:
        return cls(allow=parse_networks(settings.fetch_allow_networks))

    def refused_reason(self, ip: IPAddress) -> str | None:
        if any(ip.version == net.version and ip in net for net in self.allow):
            return None
        return refused_reason(ip)

    def resolve(self, host: str, port: int) -> list[tuple[socket.AddressFamily, tuple]]:
        """Resolve `host`; FetchRefused if any address is refused, FetchError if none is found."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(f"could not resolve host {host} ({exc})") from None
        addresses = []
        for family, _type, _proto, _canon, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(sockaddr[0])
            reason = self.refused_reason(ip)
            if reason is not None:
                name = str(ip) if _same_host(host, ip) else f"{host} resolves to {ip}, which"
                raise FetchRefused(f"{name} is {reason}")
            if (family, sockaddr) not in addresses:
                addresses.append((family, sockaddr))
        if not addresses:
            raise FetchError(f"could not resolve host {host} (no addresses)")
        return addresses

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """Parse and check a URL up front (scheme, userinfo, resolved addresses)."""
        parsed = check_url_syntax(url)
        self.resolve(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
        return parsed


def _same_host(host: str, ip: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]) == ipaddress.ip_address(str(ip).split("%")[0])
    except ValueError:
        return False


def check_url_syntax(url: str | httpx.URL) -> httpx.URL:
    """An absolute http(s) URL with a host and no userinfo; FetchRefused otherwise."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url).strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchRefused(f"not a valid URL ({exc})") from None
    if parsed.scheme not in SCHEMES:
        raise FetchRefused(f"only http and https URLs are allowed (not {parsed.scheme}:)"
                           if parsed.scheme else "not an absolute http(s) URL")
    if not parsed.host:
        raise FetchRefused("the URL has no host")
    if parsed.userinfo:
        raise FetchRefused("URLs with a user name or password are not allowed")
    return parsed


class GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy allows, and only to the address it checked."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last_error: Exception | None = None
        for _family, sockaddr in self.policy.resolve(host, port):
            try:
                # An IP literal: create_connection parses it, no second DNS lookup.
                return super().connect_tcp(sockaddr[0], port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def connect_unix_socket(self, *args, **kwargs):
        raise FetchRefused("unix sockets are not allowed")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool whose every socket comes from GuardedBackend."""

    def __init__(self, policy: AddressPolicy, *, verify: ssl.SSLContext | bool = True,
                 limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        super().__init__(trust_env=False)
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        # httpx builds its pool in __init__ with no way to pass a network backend: replace it.
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


def guarded_client(policy: AddressPolicy, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                   headers: dict[str, str] | None = None, verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """An httpx client that never follows redirects itself and never uses environment proxies."""
    return httpx.Client(
        transport=GuardedTransport(policy, verify=verify),
        trust_env=False,
        follow_redirects=False,
        timeout=timeout,
        headers=headers,
    )


def describe(exc: Exception) -> str:
    """A short reason for a failed fetch."""
    if isinstance(exc, FetchError):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect ({exc})"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__} ({exc})" if str(exc) else type(exc).__name__
    return str(exc) or type(exc).__name__


@contextmanager
def open_url(url: str | httpx.URL, *, policy: AddressPolicy, max_redirects: int = DEFAULT_MAX_REDIRECTS,
             timeout: httpx.Timeout = DEFAULT_TIMEOUT, headers: dict[str, str] | None = None,
             client: httpx.Client | None = None) -> Iterator[httpx.Response]:
    """GET `url` as a stream, following at most `max_redirects` redirects, each hop checked.

    Yields the final response (2xx only; read it with `iter_bytes()`). Raises FetchRefused,
    FetchError (`HTTP 404`, too many redirects...) or httpx's transport errors.
    """
    own_client = client is None
    client = client or guarded_client(policy, timeout=timeout, headers=headers)
    try:
        current = check_url_syntax(url)
        for _hop in range(max_redirects + 1):
            response = client.send(client.build_request("GET", current), stream=True)
            if response.is_redirect:
                location = response.headers.get("location", "")
                response.close()
                try:
                    current = check_url_syntax(current.join(location))
                except FetchRefused as exc:
                    raise FetchRefused(f"redirect to {location[:200]!r} refused: {exc}") from None
                continue
            try:
                if response.status_code >= 400 or response.status_code < 200:
                    raise FetchError(f"HTTP {response.status_code}")
                yield response
            finally:
                response.close()
            return
        raise FetchError(f"more than {max_redirects} redirects")
    finally:
        if own_client:
            client.close()
