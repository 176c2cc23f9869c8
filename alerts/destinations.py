"""Where webhooks may be sent: public addresses only, unless the administrator allows an internal receiver.

A subscription names a URL; whoever registers it (a partner's key is enough) must not make the hub post to its own
network: loopback, link-local (cloud metadata at 169.254.169.254 and fd00:ec2::254), private and unique-local,
shared (CGNAT), multicast, unspecified and reserved ranges, and IPv6 forms that embed such an IPv4 address
(IPv4-mapped, 6to4, NAT64). The host is resolved and every address checked when the subscription is registered,
and again at each delivery; the delivery then connects to the very address that was checked (the URL's host
is replaced by it, the Host header and TLS name stay the host's), so a DNS answer that changes between the check
and the connection (rebinding) cannot send it elsewhere.

``MIMAMORI_ALERTS_WEBHOOK_ALLOW`` lists CIDRs (addresses in them are admitted) and host names (admitted whatever
they resolve to) for real internal receivers.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from mimamori.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""(host, port) -> its addresses, as text; raises OSError when the name does not resolve."""

# Named for a clearer refusal; the ranges' own rules below refuse them anyway.
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DestinationRefused(Exception):
    """The URL may not be posted to; the message says why."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address a webhook may reach (None: it is)."""
    if ip in _METADATA:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_refusal(embedded)
            if inner is not None:
                return f"{inner} (embedded in IPv6)"
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private", "site_local"):
        if getattr(ip, f"is_{kind}", False):
            return kind.replace("_", "-")
    if not ip.is_global:  # shared address space (100.64/10), documentation ranges and the like
        return "not globally routable"
    return None


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked webhook target: connect to ``address``, tell the server ``host``."""

    url: str
    host: str
    address: str

    @property
    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address (brackets for IPv6)."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def host_header(self) -> str:
        parts = urlsplit(self.url)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if parts.port is None else f"{host}:{parts.port}"


class WebhookDestinations:
    """The address rules with the administrator's allowlist; ``resolve`` is the system's resolver unless a test
    gives its own (real DNS cannot be made to rebind in a test)."""

    def __init__(self, allow: Iterable[str] = (), resolve: Resolver = system_resolver) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        for entry in allow:
            entry = entry.strip()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))
        self.resolve = resolve

    @classmethod
    def from_settings(cls, settings: Settings, resolve: Resolver = system_resolver) -> WebhookDestinations:
        return cls(settings.alerts_webhook_allow, resolve)

    def check(self, url: str) -> Destination:
        """The address to connect to for ``url``; DestinationRefused when any of the host's addresses is off
        limits (one public answer beside a private one is no reason to trust the name)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DestinationRefused("url must be an http:// or https:// URL with a host")
        host = parts.hostname.lower().rstrip(".")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise DestinationRefused("url has a bad port") from None
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in self.resolve(host, port)]
        except (OSError, UnicodeError, ValueError):
            raise DestinationRefused(f"{host} does not resolve") from None
        if not addresses:
            raise DestinationRefused(f"{host} does not resolve")
        if host not in self.hosts:
            for ip in addresses:
                reason = address_refusal(ip)
                if reason is not None and not any(ip in n for n in self.networks):
                    raise DestinationRefused(f"{host} resolves to a {reason} address")
        return Destination(url=url, host=host, address=str(addresses[0]))
