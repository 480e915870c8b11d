"""The relay's configuration: one pydantic model, loaded once from relay.toml.

Every key has a default, so an empty file (or none at all) is a working
configuration for a single node on loopback. Unknown keys are errors: a typo
in a mail gateway's config should stop it, not be silently ignored.
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from filters.settings import FiltersConfig

DEFAULT_PATH = Path("relay.toml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(2525, ge=0, le=65535)
    hostname: str = "relay.localhost"
    """EHLO name and banner."""
    max_message_size: int = Field(0, ge=0)
    """Advertised with SIZE; 0 means derived from [filters.attachments] max_total_bytes."""
    shutdown_grace: float = Field(30.0, ge=0)
    """Seconds a begun transaction may take to finish after SIGTERM."""
    session_timeout: float = Field(300.0, gt=0)
    """RFC 5321 4.5.3.2.7: a server should wait at least 5 minutes for a command."""
    workers: int = Field(0, ge=0)
    """Processes that parse and rewrite messages; 0 means one per core (shared among the processes)."""
    processes: int = Field(1, ge=1, le=64)
    """Relays listening on the port together (SO_REUSEPORT), each a node of its own on the same store:
    one event loop uses one core, so one per core uses them all (relay/processes.py)."""
    max_relay_hops: int = Field(10, ge=1)
    """A message that already passed this many relays is a loop and is refused."""
    protocol: Literal["smtp", "lmtp"] = "smtp"
    """lmtp for an MTA in front (RFC 2033): one reply per recipient after DATA."""
    max_recipients: int = Field(50, ge=1)
    """Aliases one transaction may name; each gets its own decision and copy."""
    trusted_peers: list[str] = Field(default_factory=list)
    """Addresses or networks (127.0.0.1, 10.0.0.0/8) of MTAs in front, whose XFORWARD the relay believes."""
    node: str = ""
    """This node's name in the shared queue's claims; empty: HOSTNAME:PORT. Keep it the same across restarts."""
    tls_cert: str = ""
    """PEM certificate (chain) offered with STARTTLS, relative to the config file; empty: no STARTTLS.
    `relay tls selfsigned` writes a development pair; SIGHUP reads the files again."""
    tls_key: str = ""
    """Its PEM private key."""
    require_tls: bool = False
    """Refuse MAIL (530 5.7.0) until the client has started TLS; needs tls_cert."""

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: give both, or neither")
        if self.require_tls and not self.tls_cert:
            raise ValueError("require_tls needs tls_cert and tls_key")
        return self

    @field_validator("trusted_peers")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for peer in value:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise ValueError(f"{peer!r} is not an address or network such as 127.0.0.1 or 10.0.0.0/8") from None
        return value

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(peer, strict=False) for peer in self.trusted_peers)


class AuthConfig(Section):
    require: Literal["dmarc", "spf-or-dkim", "none"] = "dmarc"
    """dmarc: the From domain's DMARC policy is honoured, and mail from a seller whose domain publishes none
    must still pass SPF or DKIM for it; spf-or-dkim: every message must; none: closed networks only."""


class LimitsConfig(Section):
    """What one message may cost the relay; a message over a limit is refused 552 and its worker replaced."""

    message_cpu_seconds: float = Field(4.0, ge=0.01)
    """CPU time to read, judge and rewrite one message, plus message_cpu_seconds_per_mb for each MB of it."""
    message_cpu_seconds_per_mb: float = Field(3.0, ge=0)
    """Reading is linear in the size, so a big message may take longer; a small one that takes long is hostile.
    A seller's plain 10 MB letter takes about 18 s on a 2026 server core (every content rule reads it):
    the budget is well above what ordinary mail costs, so only hostile mail reaches it."""
    worker_memory_mb: int = Field(1024, ge=0)
    """Address space of a worker process (0: no limit)."""
    worker_recycle_mb: int = Field(256, ge=0)
    """A worker holding more resident memory than this after a message is replaced (0: never)."""
    max_connections: int = Field(1000, ge=1)
    """Connections at once; past it: 421 4.3.2 (the process's own file limit is raised to allow them)."""
    max_connections_per_client: int = Field(20, ge=1)
    """Connections at once from one address; past it: 421 4.7.0, and a second address is still served."""
    max_session_seconds: float = Field(1800.0, gt=0)
    """A session's whole life, however busy (a client sending a byte a second, or NOOP for ever)."""
    max_commands_per_session: int = Field(500, ge=1)
    """Times one command may be given in a session (aiosmtpd's call limit); past it: 421 4.7.0."""
    max_errors_per_session: int = Field(20, ge=1)
    """5xx replies in a session before it is closed with 421 4.7.0."""
    max_transactions_per_session: int = Field(100, ge=1)
    max_header_fields: int = Field(500, ge=1)
    max_header_bytes: int = Field(256 * 1024, ge=1024)
    """The top-level header block; past either header limit: 552 5.3.4."""
    messages_per_hour_per_party: int = Field(500, ge=1)
    """Messages a sending party may have accepted in an hour (all its conversations); past it: 451 4.7.1."""
    messages_per_hour_per_conversation: int = Field(100, ge=1)
    max_refused_recipients: int = Field(5, ge=1)
    """Refused RCPTs (an unknown alias, a sender who is not its counterpart) per client address or alias
    in refused_recipients_window seconds; then every RCPT there gets the same 450 4.7.1 for
    refused_recipients_block seconds, so RCPT cannot tell a guessed counterpart from a wrong one."""
    refused_recipients_window: float = Field(600.0, gt=0)
    refused_recipients_block: float = Field(900.0, gt=0)


    def cpu_seconds(self, size: int) -> float:
        return self.message_cpu_seconds + self.message_cpu_seconds_per_mb * size / 1_000_000


class AliasesConfig(Section):
    domain: str = "relay.localhost"
    """Masked addresses live here."""

    @field_validator("domain")
    @classmethod
    def _lower(cls, value: str) -> str:
        if not value or "@" in value or any(c.isspace() for c in value):
            raise ValueError("must be a bare domain name such as relay.example")
        return value.lower()


class DeliveryConfig(Section):
    smarthost: str = "127.0.0.1:2526"
    """Next hop for every outgoing message, HOST:PORT; empty: each recipient domain's MX hosts."""
    mx_port: int = Field(25, ge=1, le=65535)
    """The port at MX hosts (tests point it at a local sink)."""
    timeout: float = Field(60.0, gt=0)
    """Seconds to wait for each answer of a next hop."""
    require_tls: bool = False
    """Deliver only over STARTTLS; a host that does not offer it is tried again later."""
    verify_tls: bool = False
    """Check the next hop's certificate and name (opportunistic TLS, as between MTAs, does not)."""
    concurrency: int = Field(20, ge=1)
    """Deliveries under way at once on this node."""
    retry_base: float = Field(60.0, gt=0)
    """Seconds before the first retry; each later one waits twice as long, up to retry_cap, with jitter."""
    retry_cap: float = Field(4 * 3600.0, gt=0)
    give_up_after: float = Field(4 * 86400.0, gt=0)
    """Seconds after which a message still not delivered fails, and its sender is told (RFC 5321 4.5.4.1)."""
    warn_after: float = Field(4 * 3600.0, ge=0)
    """Seconds after which the sender of a forward still not delivered is told it is delayed; 0: never."""
    lease_seconds: float = Field(300.0, gt=0)
    """How long a claim on a queued message lasts: a node that dies loses its claims after this."""
    idle_seconds: float = Field(30.0, ge=0)
    """How long a connection to a next hop stays open for the next message."""
    poll_seconds: float = Field(1.0, gt=0)
    """How often the queue is looked at for messages due (new ones wake delivery at once)."""

    @field_validator("smarthost")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not value:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, for example 127.0.0.1:2526, or empty for MX delivery")
        return value

    @property
    def host(self) -> str:
        return self.smarthost.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.smarthost.rpartition(":")[2])


class DnsConfig(Section):
    servers: list[str] = Field(default_factory=list)
    """Resolvers as "IP" or "IP:PORT"; empty: the system's (/etc/resolv.conf)."""
    timeout: float = Field(5.0, gt=0)
    cache_size: int = Field(10000, ge=0)

    @field_validator("servers")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for server in value:
            host, sep, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            if sep and not port.isdigit():
                raise ValueError(f"{server!r} must be IP or IP:PORT")
        return value

    def addresses(self) -> list[tuple[str, int]]:
        found = []
        for server in self.servers:
            host, sep, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            found.append((host if sep else server, int(port) if sep else 53))
        return found


class DkimConfig(Section):
    key_file: str = ""
    """PEM private key (`relay dkim keygen` writes one), relative to the config file; empty: nothing is signed."""
    selector: str = "relay"

    @field_validator("selector")
    @classmethod
    def _label(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_" for c in value):
            raise ValueError("must be a DNS label such as relay or 2026-12")
        return value


class DatabaseConfig(Section):
    url: str = "sqlite:///relay.db"
    """A relative SQLite path is taken relative to the config file's folder."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


class RewriteConfig(Section):
    scrub_metadata: bool = True
    """Attachments lose what names their author (EXIF GPS and owner, PDF Author and XMP, docx creator);
    pixels and text are untouched, and an attachment with nothing to remove leaves byte-identical."""


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("must be HOST:PORT, for example 127.0.0.1:8025")
    return value


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class ApiConfig(Section):
    """The HTTP API and the operator console (relay/api), served by `relay serve` beside SMTP."""

    enabled: bool = False
    listen: str = "127.0.0.1:8025"
    """HOST:PORT; behind a TLS-terminating proxy when it leaves the machine: tokens travel in every request."""
    _check = field_validator("listen")(classmethod(lambda cls, value: _listen(value)))

    @property
    def address(self) -> tuple[str, int]:
        return _split(self.listen)


class MetricsConfig(Section):
    """/metrics (Prometheus text format) and /healthz, without a token, on an address of their own."""

    enabled: bool = False
    listen: str = "127.0.0.1:9101"
    _check = field_validator("listen")(classmethod(lambda cls, value: _listen(value)))

    @property
    def address(self) -> tuple[str, int]:
        return _split(self.listen)


class RetentionConfig(Section):
    days: float = Field(90, gt=0)
    """Bodies (what each party saw) are kept this long for disputes, then purged; the log rows stay."""
    purge_every: float = Field(3600.0, gt=0)
    """Seconds between purges while the relay runs (`relay purge` runs one now)."""


class MessagesConfig(Section):
    """Standard messages a seller sends by name, and the review request (relay/standard.py)."""

    templates: str = ""
    """A folder of LOCALE.toml files, relative to this file; "" = the shipped ones (relay/templates)."""
    review_after_days: int = Field(5, ge=0)
    review_until_days: int = Field(30, ge=1)
    """A review may be requested once per order, this many days after its delivery and no later."""


class LogConfig(Section):
    format: Literal["json", "text"] = "json"
    real_addresses: bool = False
    """Real addresses appear in logs only when an operator opts in."""
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    pseudonym_key: str | None = Field(default=None, min_length=32)
    """The secret behind log pseudonyms; set the same value on every node for logs that match up."""
    pseudonym_key_file: str = "log-pseudonym.key"
    """Where the secret is kept when pseudonym_key is unset: generated, mode 0600, on first start."""
    file: str = ""
    """Also write the log here, as JSON lines whatever format says, for `relay logs`; relative to this file."""


class NoticesConfig(Section):
    from_name: str = "Marketplace Messaging"
    from_local_part: str = "mailer-daemon"
    """Notices come from "<from_name>" <from_local_part@[aliases] domain>, with the null envelope sender."""

    @field_validator("from_name", "from_local_part")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ord(c) < 32 or c in "<>@\"" for c in value) or not value.strip():
            raise ValueError("must be a non-empty single line without <, >, @ or quotes")
        return value.strip()


class Config(Section):
    server: ServerConfig = ServerConfig()
    limits: LimitsConfig = LimitsConfig()
    rewrite: RewriteConfig = RewriteConfig()
    auth: AuthConfig = AuthConfig()
    aliases: AliasesConfig = AliasesConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    dns: DnsConfig = DnsConfig()
    dkim: DkimConfig = DkimConfig()
    database: DatabaseConfig = DatabaseConfig()
    log: LogConfig = LogConfig()
    filters: FiltersConfig = FiltersConfig()
    notices: NoticesConfig = NoticesConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    retention: RetentionConfig = RetentionConfig()
    messages: MessagesConfig = MessagesConfig()
    source: Path | None = Field(None, exclude=True)
    """The file this configuration came from, if any."""

    def size_limit(self) -> int:
        """The SIZE the server advertises and enforces at MAIL FROM.

        Attachments travel base64-encoded in 76-character lines (x 1.37); 4 MB
        more leaves room for text, HTML and headers. A message just over the
        attachment limit still arrives, so its sender can get a notice instead
        of a bare 552.
        """
        if self.server.max_message_size:
            return self.server.max_message_size
        return int(self.filters.attachments.max_total_bytes * 4 / 3 * 78 / 76) + 4_000_000

    def relative(self, path: str) -> Path:
        """A path from the config file, anchored at the config file's folder."""
        found = Path(path)
        return found if found.is_absolute() or self.source is None else (self.source.parent / found).resolve()

    def database_url(self) -> str:
        """The database URL with a relative SQLite path anchored at the config file."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and self.source is not None:
            path = url[len(prefix):]
            if path and path != ":memory:" and not Path(path).is_absolute():
                return prefix + str((self.source.parent / path).resolve())
        return url


class ConfigError(Exception):
    """A configuration problem, worded as one line for the operator."""


def _describe(error: dict) -> str:
    loc = [str(part) for part in error["loc"]]
    tables = 2 if loc[:1] == ["filters"] and len(loc) > 2 else 1  # [filters.links] is a table of its own
    section, key = (".".join(loc[:tables]), ".".join(loc[tables:])) if len(loc) > 1 else (None, loc[0] if loc else "?")
    where = f"[{section}] {key}" if section else key
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key" if section else f"[{where}]: unknown section"
    message = error["msg"].removeprefix("Value error, ")
    if len(loc) == 1 and error["type"] == "value_error":  # a rule over several keys of one table
        return f"[{loc[0]}]: {message}"
    return f"{where}: {message} (got {error.get('input')!r})"


def resolve_path(explicit: str | None) -> Path | None:
    """--config, then $RELAY_CONFIG, then ./relay.toml if it exists."""
    if explicit:
        return Path(explicit)
    if os.environ.get("RELAY_CONFIG"):
        return Path(os.environ["RELAY_CONFIG"])
    return DEFAULT_PATH if DEFAULT_PATH.exists() else None


def load(explicit: str | None = None) -> Config:
    path = resolve_path(explicit)
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if "source" in data:
        raise ConfigError(f"{path}: source: unknown key")
    try:
        return Config(**data, source=path.resolve())
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more)" if more else ""
        raise ConfigError(f"{path}: {_describe(first)}{suffix}") from None
