"""Customer-supplied endpoints (an S3 `endpoint_url`, an Azure `account_url`) are requests this
platform makes on a customer's word: one that resolves to loopback, a private network, a
link-local address (the cloud metadata services among them) or any other non-public address is
refused, so that an entry cannot make the exporter reach inside the platform's own network. The
operator may allow hosts or networks (`XEROML_ALLOW_ENDPOINTS`: comma-separated host names,
addresses or CIDR networks; the test emulators on 127.0.0.1 need it). Checked when an entry is
registered and again before its destination is used: a name may resolve elsewhere by then.

The platform's own files are out of a customer's reach likewise: a registered `local`
destination is a relative path without `..` (under the exporter's working directory), and a
GCS key file on the exporter's disk is refused (a
customer's key is a stored `service_account_json`)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.errors import ConfigError
from xeroml_pipelines.registry.entries import SECRET_FIELDS

ALLOW_ENV = "XEROML_ALLOW_ENDPOINTS"
# The environment variables a registered export may name for a credential (`*_env`): none unless
# the operator allows them (comma-separated names, a trailing `*` for a prefix). An entry naming
# any variable could send the platform's own secrets (the registry's keys) to its endpoint.
ALLOW_ENV_REFS = "XEROML_ALLOW_ENV_REFS"
_FIELDS = ("endpoint_url", "sts_endpoint_url", "account_url")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _allowed() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in (x.strip() for x in os.environ.get(ALLOW_ENV, "").split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower())
    return hosts, networks


def _public(address: Address) -> bool:
    # IPv4-mapped IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it carries
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_endpoint(url: str, field: str) -> None:
    host = urlsplit(url).hostname
    if not host:
        raise ConfigError(f"{field}: {url!r} names no host")
    hosts, networks = _allowed()
    if host.lower() in hosts:
        return
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as e:
        raise ConfigError(f"{field}: {host} does not resolve ({e.strerror})") from None
    for text in sorted(found):
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not _public(address) and not any(address in n for n in networks):
            raise ConfigError(
                f"{field}: {host} resolves to {address}, not a public address: refused for a registered export "
                f"(an operator can allow it in {ALLOW_ENV})"
            )


def _connection_string_endpoint(connection_string: str) -> str | None:
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    return parts.get("BlobEndpoint")


def _env_ref_allowed(name: str) -> bool:
    for item in (x.strip() for x in os.environ.get(ALLOW_ENV_REFS, "").split(",")):
        if item and (name == item or (item.endswith("*") and name.startswith(item[:-1]))):
            return True
    return False


def check_destination(export: ExportConfig, secrets: Mapping[str, str]) -> None:
    """Every customer-supplied endpoint, path and environment variable of a registered export's
    destination."""
    destination = export.destination
    for name in SECRET_FIELDS[destination.provider]:
        variable = getattr(destination, f"{name}_env", None)
        if variable and not _env_ref_allowed(variable):
            raise ConfigError(
                f"destination.{name}_env: {variable} is not an environment variable a registered export may name "
                f"(an operator allows them in {ALLOW_ENV_REFS}); store the credential instead (secrets.{name})"
            )
    for field in _FIELDS:
        url = getattr(destination, field, None)
        if url:
            check_endpoint(url, f"destination.{field}")
    blob_endpoint = _connection_string_endpoint(secrets.get("connection_string", ""))
    if blob_endpoint:
        check_endpoint(blob_endpoint, "secrets.connection_string (BlobEndpoint)")
    if getattr(destination, "service_account_file", None):
        raise ConfigError(
            "destination.service_account_file: a registered export cannot read a file on the exporter's disk; "
            "store the key as secrets.service_account_json"
        )
    path = getattr(destination, "path", None) if destination.provider == "local" else None
    if path is not None:
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts:
            raise ConfigError(f"destination.path: {path!r}: a registered local destination is a relative path without '..'")
