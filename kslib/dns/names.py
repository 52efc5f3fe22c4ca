"""DNS names as resolvers and servers see them: what a valid name is, fully qualified form, zones,
and the dashed form of an IP that Kubernetes DNS uses as a label (``10-244-1-5``)."""
from __future__ import annotations

import ipaddress
import re

from ..api.errors import invalid

MAX_NAME = 253        # characters of a name without its trailing dot (RFC 1035's 255 octets on the wire)
MAX_LABEL = 63
_LABEL = re.compile(r"[A-Za-z0-9_-]+")     # letters, digits, '-', and '_' for SRV's _port._proto


def check(name, field: str = "name") -> str:
    """``name`` as typed (a trailing dot allowed), lowercased; ValueError naming ``field`` and the rule."""
    if not isinstance(name, str) or not name:
        raise ValueError(str(invalid(field, name, "must be a non-empty DNS name such as web or "
                                                  "web.shop.svc.cluster.local")))
    bare = name[:-1] if name.endswith(".") else name
    rule = None
    if not bare:
        rule = "the root (.) alone names no host"
    elif len(bare) > MAX_NAME:
        rule = f"must be no more than {MAX_NAME} characters"
    elif "" in bare.split("."):
        rule = "must not contain an empty label (a leading dot or two dots in a row)"
    elif any(len(label) > MAX_LABEL for label in bare.split(".")):
        rule = f"each label (the text between dots) must be no more than {MAX_LABEL} characters"
    elif not all(_LABEL.fullmatch(label) for label in bare.split(".")):
        rule = "labels may contain only letters, digits, '-' and '_'"
    if rule:
        raise ValueError(str(invalid(field, name, rule)))
    return name.lower()


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def in_zone(name: str, zone: str) -> bool:
    """Whether the fully qualified ``name`` is ``zone`` or lies under it (both with trailing dots)."""
    return name == zone or name.endswith("." + zone)


def dashed(ip: str) -> str:
    """An IP as one label: '.' or ':' become '-' (CoreDNS kubernetes.go endpointHostname)."""
    return ip.replace(".", "-").replace(":", "-")


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def address_type(ip: str) -> str:
    """"A" for an IPv4 address, "AAAA" for IPv6."""
    return "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"


def reverse_ip(name: str) -> str | None:
    """The address a full in-addr.arpa / ip6.arpa name stands for, or None
    (CoreDNS dnsutil.ExtractAddressFromReverse)."""
    if name.endswith(".in-addr.arpa."):
        parts = name[:-len(".in-addr.arpa.")].split(".")
        text = ".".join(reversed(parts)) if len(parts) == 4 else ""
    elif name.endswith(".ip6.arpa."):
        nibbles = name[:-len(".ip6.arpa.")].split(".")
        digits = "".join(reversed(nibbles)) if len(nibbles) == 32 else ""
        text = ":".join(digits[i:i + 4] for i in range(0, 32, 4)) if digits else ""
    else:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
