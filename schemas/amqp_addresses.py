"""Several RabbitMQ node addresses in one AMQP URL, for a cluster.

The form, shared by the hub's `INBEELD_AMQP_URL` and the connector's `[broker] url`:

    amqp[s]://[user:password@]host1[:port1],host2[:port2],.../vhost[?query]

One scheme, one set of credentials, one vhost and one query for every node (a RabbitMQ
cluster shares its users and vhosts); each host with its own port, default 5672 (amqp) or
5671 (amqps). An IPv6 host goes in brackets (`[::1]:5672`). A URL with one host is the
ordinary AMQP URL and means exactly what it meant before.

`node_urls(url)` splits it into one ordinary URL per node, in the order given; clients connect
to the first that answers and, when that node goes away, move on to the next (round robin).
A malformed list raises `ValueError` naming what is wrong (never echoing the password).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["node_addresses", "node_urls", "shown_addresses"]

_DEFAULT_PORT = {"amqp": 5672, "amqps": 5671}


def _split_netloc(url: str) -> tuple[str, str, str]:
    """(scheme, credentials part with its '@' or '', the hosts part) of `url`."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORT:
        raise ValueError("must be an amqp:// or amqps:// URL")
    creds, at, hosts = parts.netloc.rpartition("@")
    return parts.scheme, creds + at, hosts


def node_addresses(url: str) -> list[tuple[str, int]]:
    """(host, port) of every node in `url`, in order; `ValueError` if one is malformed."""
    scheme, _, hosts = _split_netloc(url)
    if not hosts:
        raise ValueError("must name a host (host:port, or several: host1:port1,host2:port2)")
    found: list[tuple[str, int]] = []
    for i, item in enumerate(hosts.split(","), start=1):
        item = item.strip()
        if item.startswith("["):  # [IPv6]:port
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"address {i} ({item!r}) is not [ipv6]:port")
            port_text = rest[1:]
        else:
            host, _, port_text = item.partition(":")
        if not host:
            raise ValueError(f"address {i} of the node list has no host (write host:port,host:port)")
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"address {i} ({item!r}) has no valid port (1-65535)")
            port = int(port_text)
        else:
            port = _DEFAULT_PORT[scheme]
        if (host.lower(), port) in found:
            raise ValueError(f"address {i} ({item!r}) is listed twice")
        found.append((host.lower(), port))
    return found


def node_urls(url: str) -> list[str]:
    """One ordinary AMQP URL per node of `url` (credentials, vhost and query kept)."""
    scheme, creds, _ = _split_netloc(url)
    parts = urlsplit(url)
    out = []
    for host, port in node_addresses(url):
        shown = f"[{host}]" if ":" in host else host
        out.append(urlunsplit((scheme, f"{creds}{shown}:{port}", parts.path, parts.query, "")))
    return out


def shown_addresses(url: str) -> str:
    """`host:port` of every node, comma-separated, for messages (never the credentials)."""
    try:
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in node_addresses(url))
    except ValueError:
        return "(malformed URL)"
