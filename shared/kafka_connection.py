"""How a Tradelane process connects to Kafka: where, over which protocol, as whom.

One place turns the settings into what each client library wants, so the
services (Faust, over aiokafka), the topic creator and the CLI and tools
(kafka-python) log in the same way: PLAINTEXT on a dev broker, TLS (`SSL`),
or SCRAM over TLS (`SASL_SSL`) on a real cluster such as Strimzi's port 9093.
The password never leaves this object except into a client's configuration;
its `repr` shows the user only.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.settings import HIDDEN, ConfigError, Settings

if TYPE_CHECKING:
    import faust


@dataclass(frozen=True)
class KafkaConnection:
    """The bootstrap servers and the login a client uses (built from `Settings`)."""

    bootstrap: str
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        return cls(
            bootstrap=settings.kafka_bootstrap_servers,
            protocol=settings.kafka_security_protocol,
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_username,
            password=settings.kafka_password_value(),
            ca_file=settings.kafka_ssl_ca_file,
            cert_file=settings.kafka_ssl_cert_file,
            key_file=settings.kafka_ssl_key_file,
        )

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def servers(self) -> list[str]:
        return [server.strip() for server in self.bootstrap.split(",") if server.strip()]

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS 1.2 or later, the broker's certificate checked against the CA and its name.

        With `KAFKA_SSL_CA_FILE` only that CA is trusted, without it the system's.

        Built fresh per client (a context is cheap, and the files are read at start-up).
        A CA or key file that is not PEM fails naming its variable.
        """
        if not self.uses_tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the certificate and name
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file is None:
            context.load_default_certs()  # a managed cluster's publicly trusted certificate
        else:  # only this CA: a Strimzi cluster CA vouches for its own brokers, nobody else
            try:
                context.load_verify_locations(cafile=str(self.ca_file))
            except (ssl.SSLError, OSError) as error:
                raise ConfigError(
                    f"bad configuration: KAFKA_SSL_CA_FILE={str(self.ca_file)!r}: not a PEM "
                    f"CA certificate ({error.__class__.__name__})"
                ) from None
        if self.cert_file is not None:
            try:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
            except (ssl.SSLError, OSError) as error:
                raise ConfigError(
                    f"bad configuration: KAFKA_SSL_CERT_FILE={str(self.cert_file)!r} and "
                    f"KAFKA_SSL_KEY_FILE={str(self.key_file)!r}: not a PEM certificate and "
                    f"its key ({error.__class__.__name__})"
                ) from None
        return context

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's producer, consumer and admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.protocol == "SASL_SSL":
            options.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return options

    def faust_brokers(self) -> list[str]:
        return [f"kafka://{server}" for server in self.servers]

    def faust_credentials(self) -> faust.SASLCredentials | faust.SSLCredentials | None:
        """Faust's `broker_credentials`; aiokafka gets protocol, mechanism and login from them.

        `SASLCredentials` with an SSL context means SASL_SSL, and its mechanism is
        passed through as aiokafka's `sasl_mechanism` (faust.transport.drivers.aiokafka,
        `credentials_to_aiokafka_auth`).
        """
        import faust  # only the services need it: the CLI stays quick to start

        context = self.ssl_context()
        if self.protocol == "SASL_SSL":
            return faust.SASLCredentials(
                username=self.username,
                password=self.password,
                ssl_context=context,
                mechanism=self.mechanism,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None

    def describe(self) -> str:
        """Where and as whom, for a message: never the password."""
        who = f" as {self.username} ({self.mechanism})" if self.protocol == "SASL_SSL" else ""
        return f"{self.bootstrap} over {self.protocol}{who}"


def kafka_connection(kafka: KafkaConnection | str) -> KafkaConnection:
    """A connection, or a bare bootstrap address taken to mean a PLAINTEXT dev broker."""
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(kafka)


class _PasswordHidden(logging.Filter):
    """kafka-python's admin client logs its whole configuration at DEBUG, password included
    (`Starting KafkaAdminClient with configuration: {...}`): the password is starred out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = _without_password(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(_without_password(arg) for arg in record.args)
        return True


def _without_password(value: object) -> Any:
    if isinstance(value, Mapping) and value.get("sasl_plain_password") is not None:
        return {**value, "sasl_plain_password": HIDDEN}
    return value


logging.getLogger("kafka.admin.client").addFilter(_PasswordHidden())
