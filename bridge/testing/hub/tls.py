"""Throw-away TLS material for the stand-in: a self-signed CA and a server certificate it signs.

Both surfaces present the same server certificate. Its subject alternative names cover
``localhost``, ``127.0.0.1`` and the hub's host name, because IoT Hub clients verify the host
name they dial (azure-iot-device always does). Keys are ECDSA P-256: generated in milliseconds,
accepted by OpenSSL, proton and paho alike. Made with the ``openssl`` command so the package
needs no crypto dependency.
"""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
#: Long enough for a demo left running over a weekend, short enough to stay throw-away.
VALIDITY_DAYS = 30


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """PEM files: ``ca_file`` is what clients trust; cert/key are the server's."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate (TLS 1.2 or later)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def _san(names: list[str]) -> str:
    entries: list[str] = []
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            entry = f"DNS:{name}"
        else:
            entry = f"IP:{name}"
        if entry not in entries:
            entries.append(entry)
    return ",".join(entries)


def make_tls_material(directory: Path, host_names: list[str] | None = None) -> TLSFiles:
    """Write ``ca.crt``, ``server.crt`` and ``server.key`` into *directory* and return them.

    The certificate covers ``localhost``, ``127.0.0.1`` and every name in *host_names*.
    Raises ``RuntimeError`` (with openssl's message) if a step fails.
    """
    directory.mkdir(parents=True, exist_ok=True)
    names = ["localhost", "127.0.0.1", *(host_names or [])]
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName={_san(names)}\n"
                   "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")

    def openssl(*args: str) -> None:
        result = subprocess.run([OPENSSL, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()[-500:]}")

    openssl("req", "-x509", *curve, "-nodes", "-days", str(VALIDITY_DAYS),
            "-subj", "/CN=bridge IoT Hub stand-in CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(ca_key), "-out", str(ca_crt))
    openssl("req", *curve, "-nodes", "-subj", "/CN=localhost", "-keyout", str(key),
            "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", str(VALIDITY_DAYS), "-extfile", str(ext),
            "-out", str(crt))
    for private in (ca_key, key):
        private.chmod(0o600)
    return TLSFiles(ca_file=ca_crt, cert_file=crt, key_file=key)
