"""Key material of the local stacks: certificate authorities, serving certificates, the
service-account signing key and static bearer tokens.

The control plane's CA signs the apiserver's certificate once and its key is not kept;
Kafka's CA (:mod:`devstack.kafka_auth`) is kept with its key, to sign a certificate for
each listener that asks for one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVING_NAMES = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
]
SERVING_IPS = ["127.0.0.1", "10.0.0.1"]
#: How long a certificate of the local stacks is valid.
VALIDITY = dt.timedelta(days=365)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    """The key in unencrypted PKCS#8 PEM (what Kafka's PEM key store reads, and Go and OpenSSL)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` into a file only its owner may read, never readable by others meanwhile."""
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(data)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA's key and self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def new(cls, common_name: str) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        return cls(key, cert)

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> CertificateAuthority:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file}: not the EC key of a CA made by devstack.pki")
        return cls(key, x509.load_pem_x509_certificate(cert_file.read_bytes()))

    def save(self, cert_file: Path, key_file: Path) -> None:
        """The certificate as PEM; the key as PEM readable by its owner only."""
        cert_file.write_bytes(self.cert_pem())
        write_private(key_file, _pem_key(self.key))

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        dns_names: Sequence[str] = (),
        ips: Sequence[str] = (),
        *,
        server: bool = True,
        client: bool = False,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A new key and a certificate for it, signed by this CA, for the names and addresses
        given (its subject alternative names) and the uses asked for (TLS server and/or client)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())


def write_key_and_chain(
    path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, ca: x509.Certificate
) -> None:
    """One PEM file (owner-only) holding the key, its certificate and the CA's: Kafka's PEM key
    store (``ssl.keystore.type=PEM``) reads exactly this."""
    pem = serialization.Encoding.PEM
    write_private(path, _pem_key(key) + cert.public_bytes(pem) + ca.public_bytes(pem))


def write_pki(folder: Path) -> None:
    """Write ca.crt, apiserver.crt/.key and sa.key into ``folder`` (mode 0700)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca = CertificateAuthority.new("srs-devstack-ca")
    key, cert = ca.issue("kube-apiserver", SERVING_NAMES, SERVING_IPS)
    (folder / "ca.crt").write_bytes(ca.cert_pem())
    (folder / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "apiserver.key").write_bytes(_pem_key(key))
    (folder / "sa.key").write_bytes(_pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048)))


def new_token() -> str:
    """A random bearer token for the static token file."""
    return secrets.token_urlsafe(32)
