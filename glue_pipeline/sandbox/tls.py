"""The sandbox's throwaway certificate authority and its server certificate.

Clients trust exactly `ca.pem`; nothing is added to the system trust store, so a client that
does not pass the CA fails verification just as it would against a stranger.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509

GRAPH_HOST = "127.0.0.1"  # the identity platform and Graph
# Report downloads: Graph sends them to a host of their own, so a client's bearer token has a host
# change to stay behind at. Another name of this machine, served by the same server.
DOWNLOAD_HOST = "localhost"
SERVER_HOSTS = (GRAPH_HOST, DOWNLOAD_HOST)
_RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class SandboxTLS:
    ca_file: Path
    cert_file: Path  # server certificate followed by its chain
    key_file: Path


def _paths(state_dir: Path) -> SandboxTLS:
    return SandboxTLS(state_dir / "ca.pem", state_dir / "server.pem", state_dir / "server.key")


def _usable(tls: SandboxTLS) -> bool:
    if not all(p.is_file() for p in (tls.ca_file, tls.cert_file, tls.key_file)):
        return False
    try:
        cert = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    named = {*names.get_values_for_type(x509.DNSName), *map(str, names.get_values_for_type(x509.IPAddress))}
    return named >= set(SERVER_HOSTS) and cert.not_valid_after_utc - _RENEW_BEFORE > dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write through a temporary file so a reader never sees half a PEM."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def ensure_ca(state_dir: Path) -> SandboxTLS:
    """Create the CA and a server certificate for SERVER_HOSTS under state_dir, once.

    Existing files are reused while the certificate names every host and has more than a week
    left, so clients that already trust ca.pem keep working across sandbox restarts.
    """
    state_dir = Path(state_dir)
    tls = _paths(state_dir)
    if _usable(tls):
        return tls
    state_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="glue-pipeline sandbox")
    leaf = ca.issue_cert(*SERVER_HOSTS)
    _write(tls.key_file, leaf.private_key_pem.bytes(), mode=0o600)
    _write(tls.cert_file, b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    _write(tls.ca_file, ca.cert_pem.bytes())
    return tls
