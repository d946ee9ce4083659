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

SERVER_HOSTS = ("127.0.0.1", "localhost")
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
    except ValueError:
        return False
    return cert.not_valid_after_utc - _RENEW_BEFORE > dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write through a temporary file so a reader never sees half a PEM."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def ensure_ca(state_dir: Path) -> SandboxTLS:
    """Create the CA and a server certificate for 127.0.0.1/localhost under state_dir, once.

    Existing files are reused while the certificate has more than a week left, so clients
    that already trust ca.pem keep working across sandbox restarts.
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
