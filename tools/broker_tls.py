"""A throwaway certificate authority and broker certificate for the secured test broker.

Why made here and not committed: a key in the repository is a key anyone has;
these live in the broker's temporary data dir and die with it. PEM files, because
Kafka 3.9 reads PEM key stores and trust stores directly (`ssl.keystore.type=PEM`,
KIP-651) and Python's `ssl` reads the same CA file, so no keytool and no PKCS12.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKER_COMMON_NAME = "tradelane-test-broker"
"""The broker certificate's subject: `User:CN=tradelane-test-broker` is its principal
when it authenticates with it (the controller listener, mutual TLS)."""
VALID_DAYS = 7


@dataclass(frozen=True)
class BrokerCertificates:
    """Where the PEM files are: the CA to trust, and the broker's key with its chain."""

    ca_file: Path
    keystore_file: Path
    """The broker's private key (PKCS#8, unencrypted) followed by its certificate and the CA."""

    @property
    def broker_principal(self) -> str:
        return f"User:CN={BROKER_COMMON_NAME}"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_broker_certificates(directory: Path, hosts: tuple[str, ...]) -> BrokerCertificates:
    """A new CA and a broker certificate for `hosts` (names or IP addresses), as PEM files.

    The broker certificate serves TLS (serverAuth) and also identifies the broker to
    its own controller listener (clientAuth). Files are readable by the owner only.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("tradelane test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(BROKER_COMMON_NAME))
        .issuer_name(ca_name)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    ca_file = directory / "ca.crt"
    keystore_file = directory / "broker-keystore.pem"
    ca_file.write_bytes(ca_cert.public_bytes(pem))
    keystore_file.touch(mode=0o600)
    keystore_file.write_bytes(
        broker_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + broker_cert.public_bytes(pem)
        + ca_cert.public_bytes(pem)
    )
    return BrokerCertificates(ca_file, keystore_file)
