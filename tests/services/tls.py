"""Per-session TLS material: a throwaway CA and a server certificate for loopback.

The server certificate names ``127.0.0.1``, ``::1`` (IP SANs) and ``localhost`` (DNS SAN), so a
client that verifies against :attr:`TlsMaterial.ca_bundle` accepts any of them. Keys are ECDSA
P-256 (fast to generate; accepted by Node, OpenSSL and the Python ``ssl`` module).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.services._process import make_workdir

__all__ = ["TlsMaterial", "make_tls_material"]

DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of PEM files written by :func:`make_tls_material`.

    Attributes:
        directory: Where the files live.
        ca_cert: The CA certificate.
        ca_bundle: A bundle with only that CA; pass it as ``connection_verify=`` (Azure SDKs) or
            ``verify=`` (httpx). Verifying against it rejects every public certificate, which is
            fine because the test services live on loopback only.
        cert: The server certificate followed by the CA certificate (a full chain).
        key: The server's private key (PKCS#8, unencrypted).
    """

    directory: Path
    ca_cert: Path
    ca_bundle: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` for a server presenting :attr:`cert`."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` for a client that trusts only the session CA."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))


def make_tls_material(
    directory: Path | None = None,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    valid_for: dt.timedelta = dt.timedelta(days=2),
) -> TlsMaterial:
    """Generate a CA and a server certificate for ``hosts`` and write them as PEM files.

    Args:
        directory: Target directory (created if missing); a new temporary one when None.
        hosts: IP addresses become IP SANs, anything else a DNS SAN.
        valid_for: Validity of both certificates, starting one minute in the past.

    Returns:
        The paths of the written files.
    """
    directory = directory if directory is not None else make_workdir("tls")
    directory.mkdir(parents=True, exist_ok=True)
    not_before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    not_after = not_before + valid_for

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tiermem test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    material = TlsMaterial(
        directory=directory,
        ca_cert=directory / "ca.pem",
        ca_bundle=directory / "ca-bundle.pem",
        cert=directory / "server.pem",
        key=directory / "server-key.pem",
    )
    material.ca_cert.write_bytes(ca_pem)
    material.ca_bundle.write_bytes(ca_pem)
    material.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    material.key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    material.key.chmod(0o600)
    return material
