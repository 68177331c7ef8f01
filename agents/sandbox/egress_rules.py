"""Which destinations a setup step may reach: pure functions of (host, port, addresses).

A destination is admitted only when both hold:
- its host is on the allow list (exact names, or `*.suffix` for subdomains of suffix; ports 80
  and 443 unless the entry names one; IP literals only when listed as such), and
- every address the name resolves to is public (no loopback, private, link-local, CGNAT,
  multicast, reserved or unspecified address, nor an IPv4-mapped, NAT64 or 6to4 form of one).
`allow_private` names `host[:port]` destinations (an internal registry) that are admitted without
the public-address rule; nothing else is. The proxy (agents.sandbox.egress) applies these.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The registries of the common package managers, and GitHub for git and tarball dependencies.
DEFAULT_ALLOW: tuple[str, ...] = (
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "github.com",
    "codeload.github.com",
    "objects.githubusercontent.com",
    "crates.io",
    "index.crates.io",
    "static.crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "rubygems.org",
    "repo.maven.apache.org",
    "repo1.maven.org",
)

DEFAULT_PORTS: frozenset[int] = frozenset({80, 443})
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


# ---------------------------------------------------------------------------------------------
# Policy: pure functions of (host, port, addresses), tested without sockets.


class BadRequest(ValueError):
    """The client sent something this proxy does not parse; answered 400 (or `status`)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One allow-list entry: `host`, `*.suffix`, `host:port`, `1.2.3.4`, `[::1]:8080`."""

    host: str
    wildcard: bool = False
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> AllowRule:
        text = entry.strip()
        wildcard = text.startswith("*.")
        try:
            host, port = split_authority(text[2:] if wildcard else text, default_port=None)
        except BadRequest as exc:
            raise ValueError(f"invalid egress allow-list entry {entry!r}: {exc}") from None
        if wildcard and is_ip(host):
            raise ValueError(f"invalid egress allow-list entry {entry!r}: `*.` needs a name")
        return cls(host, wildcard, port)

    def matches(self, host: str, port: int) -> bool:
        if port not in (DEFAULT_PORTS if self.port is None else {self.port}):
            return False
        if self.wildcard:
            # An IP literal is admitted only by an entry naming exactly that address.
            return not is_ip(host) and host.endswith("." + self.host)
        return host == self.host


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Which destinations a setup step may reach (see the module docstring)."""

    allow: tuple[AllowRule, ...]
    allow_private: tuple[AllowRule, ...] = ()

    @classmethod
    def from_entries(
        cls, allow: Iterable[str] = DEFAULT_ALLOW, allow_private: Iterable[str] = ()
    ) -> EgressPolicy:
        return cls(
            tuple(AllowRule.parse(e) for e in allow),
            tuple(AllowRule.parse(e) for e in allow_private),
        )

    def is_private_allowed(self, host: str, port: int) -> bool:
        return any(rule.matches(host, port) for rule in self.allow_private)

    def destination_refusal(self, host: str, port: int) -> str | None:
        """Why (host, port) is refused before any lookup, or None when it is listed."""
        if self.is_private_allowed(host, port):
            return None
        if any(rule.matches(host, port) for rule in self.allow):
            return None
        if is_ip(host):
            return "IP addresses are refused unless listed as such; use the registry's host name"
        if any(
            rule.host == host or (rule.wildcard and host.endswith("." + rule.host))
            for rule in self.allow
        ):
            return f"port {port} is not allowed for this host (80 and 443 unless listed)"
        return "not on the egress allow list"

    def address_refusal(self, host: str, port: int, addresses: Sequence[IPAddress]) -> str | None:
        """Why the resolved `addresses` are refused, or None when every one may be used."""
        if not addresses:
            return "the host name resolved to no address"
        if self.is_private_allowed(host, port):
            return None
        for address in addresses:
            kind = address_refusal(address)
            if kind is not None:
                return f"resolves to {address}, {kind}"
        return None


def address_refusal(address: IPAddress) -> str | None:
    """None for a public unicast address; otherwise what it is (e.g. "a loopback address")."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _embedded(address.ipv4_mapped, "IPv4-mapped")
        if address in _NAT64:
            return _embedded(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64")
        if address.sixtofour is not None and address_refusal(address.sixtofour) is not None:
            return _embedded(address.sixtofour, "6to4")
        if address.is_site_local:
            return "a site-local address"
    checks = (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_multicast, "a multicast address"),
        (
            isinstance(address, ipaddress.IPv4Address) and address in _CGNAT,
            "a carrier-grade NAT address",
        ),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((why for hit, why in checks if hit), None)


def _embedded(inner: ipaddress.IPv4Address, form: str) -> str | None:
    kind = address_refusal(inner)
    return None if kind is None else f"the {form} form of {inner}, {kind}"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def normalize_host(raw: str) -> str:
    """A canonical host: an IP literal's compressed form, or a lower-case name without a
    trailing dot. Anything else (spaces, `%`, `@`, empty labels, over-long names) is refused."""
    host = raw.lower()
    if ":" in host or _looks_like_ipv4(host):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise BadRequest(f"malformed address {raw[:80]!r}") from None
        mapped = getattr(address, "ipv4_mapped", None)
        # str() would print ::ffff:7f00:1; keep the form people recognise.
        return f"::ffff:{mapped}" if mapped is not None else str(address)
    host = host.removesuffix(".")
    if not host or len(host) > 253 or not all(_LABEL.fullmatch(x) for x in host.split(".")):
        raise BadRequest(f"malformed host name {raw[:80]!r}")
    return host


def _looks_like_ipv4(host: str) -> bool:
    return bool(host) and all(part.isdigit() for part in host.split("."))


def split_authority(text: str, *, default_port: int | None) -> tuple[str, int | None]:
    """`host:port`, `[v6]:port`, or (with a default port) just the host, normalized."""
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise BadRequest(f"malformed authority {text[:80]!r}")
        host, port_text = inner, rest[1:] if rest else None
        if not is_ip(host) or ":" not in host:
            raise BadRequest(f"malformed IPv6 literal {text[:80]!r}")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise BadRequest(f"an IPv6 address needs brackets: {text[:80]!r}")
    else:
        host, port_text = text, None
    if port_text is None:
        return normalize_host(host), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536 or len(port_text) > 5:
        raise BadRequest(f"malformed port in {text[:80]!r}")
    return normalize_host(host), int(port_text)


def format_destination(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
