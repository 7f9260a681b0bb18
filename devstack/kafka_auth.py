"""The local stack's Kafka credentials: a CA, the brokers' TLS certificate, the admin SCRAM
principal, and a librdkafka properties file for people (``kcat -F``).

Every broker of ``srs dev up`` has two client listeners, both on 127.0.0.1 only:

- **PLAINTEXT**, the fast path every test, the demo and the operator on the local stack use.
  Its connections carry the principal ``User:ANONYMOUS``, which is a super user: with the
  authorizer on, anything less would need ACLs for every client srs has. That is acceptable
  on loopback only — the listener is bound to 127.0.0.1, advertised nowhere else, and trusts
  a local process as much as etcd's loopback listener does — and it exists only on the local
  stack (the kind cluster's and a production cluster's brokers have no such listener).
- **SASL_SSL**, what agents use where credentials matter: TLS with a certificate signed by
  this stack's own CA (names ``localhost`` and ``127.0.0.1``), SASL SCRAM-SHA-512, Kafka's
  StandardAuthorizer with ``allow.everyone.if.no.acl.found=false``: a principal may do only
  what ACLs grant it, except the super users ANONYMOUS and :data:`ADMIN_USER`.

The admin principal is bootstrapped when the broker's storage is formatted (``StorageTool
format --add-scram``), with a password made at random for each stack. Everything secret is
in files only their owner may read, under ``.devstack/kafka-auth/``; no secret is written to a
log, a command line or ``.devstack/env`` (which names the files).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from devstack import pki

#: The admin principal (a super user) of the SASL_SSL listener.
ADMIN_USER = "srs-admin"
MECHANISM = "SCRAM-SHA-512"
#: What the brokers' certificate is valid for: they listen on loopback only.
BROKER_NAMES = ("localhost",)
BROKER_IPS = ("127.0.0.1",)
#: Kafka's principals with every right: the PLAINTEXT loopback listener's and the admin's.
SUPER_USERS = ("User:ANONYMOUS", f"User:{ADMIN_USER}")


@dataclass(frozen=True)
class KafkaAuth:
    """The files of the stack's Kafka credentials, in one folder (mode 0700)."""

    folder: Path

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients trust (``ssl.ca.location``)."""
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def broker_keystore(self) -> Path:
        """The brokers' key, certificate and CA in one PEM file (``ssl.keystore.type=PEM``)."""
        return self.folder / "broker.pem"

    @property
    def password_file(self) -> Path:
        return self.folder / "admin.password"

    @property
    def client_config(self) -> Path:
        """The librdkafka properties of the admin over SASL_SSL (``KAFKA_CLIENT_CONFIG``)."""
        return self.folder / "client.properties"

    def admin_password(self) -> str:
        return self.password_file.read_text().strip()

    def scram_argument(self) -> str:
        """The value of ``StorageTool format --add-scram`` that bootstraps the admin."""
        return f"{MECHANISM}=[name={ADMIN_USER},password={self.admin_password()}]"

    def admin_settings(self, sasl_bootstrap: str) -> dict[str, str]:
        """librdkafka settings of the admin principal on the SASL_SSL listener(s)."""
        return {
            "bootstrap.servers": sasl_bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": MECHANISM,
            "sasl.username": ADMIN_USER,
            "sasl.password": self.admin_password(),
            "ssl.ca.location": str(self.ca_file),
        }


def ensure(folder: Path) -> tuple[KafkaAuth, bool]:
    """The stack's Kafka credentials, made the first time and kept afterwards (a restart keeps
    every client's trust and password valid). Returns them and whether the admin password was
    made just now (a broker formatted before it must be told: :func:`admin_upsert`)."""
    auth = KafkaAuth(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    if not (auth.ca_file.is_file() and auth.ca_key.is_file()):
        pki.CertificateAuthority.new("srs-devstack-kafka-ca").save(auth.ca_file, auth.ca_key)
        auth.broker_keystore.unlink(missing_ok=True)  # signed by the CA it replaces
    if not auth.broker_keystore.is_file():
        ca = pki.CertificateAuthority.load(auth.ca_file, auth.ca_key)
        key, cert = ca.issue("srs-devstack-kafka", BROKER_NAMES, BROKER_IPS)
        pki.write_key_and_chain(auth.broker_keystore, key, cert, ca.cert)
    new_password = not auth.password_file.is_file()
    if new_password:
        # URL-safe characters only: nothing the storage tool's [name=…,password=…] parser or a
        # properties file would read specially.
        pki.write_private(auth.password_file, secrets.token_urlsafe(24).encode())
    return auth, new_password


def write_client_config(auth: KafkaAuth, sasl_bootstrap: str) -> Path:
    """Write the admin's librdkafka properties (owner-only): ``kcat -F FILE -L`` reads it."""
    lines = [f"{key}={value}" for key, value in auth.admin_settings(sasl_bootstrap).items()]
    body = "# Written by `srs dev up`: the local Kafka's admin over SASL_SSL (kcat -F this-file -L).\n"
    pki.write_private(auth.client_config, (body + "\n".join(lines) + "\n").encode())
    return auth.client_config


def read_client_config(path: Path) -> dict[str, str]:
    """The settings of a librdkafka properties file (``key=value`` lines, ``#`` comments)."""
    settings: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def admin_upsert(plaintext_bootstrap: str, auth: KafkaAuth, *, force: bool, timeout: float = 30) -> bool:
    """Give the admin principal its SCRAM credential through the PLAINTEXT listener (whose
    ANONYMOUS principal may) when the cluster lacks it — a stack formatted before its SASL_SSL
    listener existed — or when ``force`` (the password was made after the storage was
    formatted). Returns whether it wrote one."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": plaintext_bootstrap, "log_level": 0})
    if not force:
        try:
            described = admin.describe_user_scram_credentials([ADMIN_USER], request_timeout=timeout)
            assert isinstance(described, dict)  # one future per user named
            info = described[ADMIN_USER].result(timeout=timeout)
            if any(c.mechanism == ScramMechanism.SCRAM_SHA_512 for c in info.scram_credential_infos):
                return False
        except KafkaException as e:
            if e.args[0].name() != "RESOURCE_NOT_FOUND":
                raise
    upsert = UserScramCredentialUpsertion(
        ADMIN_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), auth.admin_password().encode()
    )
    admin.alter_user_scram_credentials([upsert], request_timeout=timeout)[ADMIN_USER].result(timeout=timeout)
    return True


def env_lines(auth: KafkaAuth, sasl_bootstrap: str) -> str:
    """``.devstack/env``'s Kafka security exports: where the SASL_SSL listeners are, the CA to
    trust, and the admin's properties file (paths only; no secret)."""
    return (
        f"export SRS_KAFKA_SASL_BOOTSTRAP_SERVERS={sasl_bootstrap}\n"
        f"export SRS_KAFKA_CA_FILE={auth.ca_file}\n"
        f"export KAFKA_CLIENT_CONFIG={auth.client_config}\n"
    )
