"""One settings object, read from STREAMREC_* environment variables.

Every process (worker, producer, services, tests) builds its configuration here, so an invalid value
stops start-up with one message that names the variable and what it accepts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar, overload

from ..schema import EXCLUDE_POLICIES

PREFIX = "STREAMREC_"
# read by the tools or filled into the deploy files' templates, not by these settings
OTHER_VARIABLES = (
    "JARS_DIR",
    "TOOLS_BIN",
    "IMAGE",
    "CUDA_IMAGE",
    "WORKERS",
    "GPU_WORKERS",
    "WORKER_CPUS",
    "WORKER_MEMORY",
)
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")  # json: one object per line, for log shippers (runtime/logs.py)
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOCAL_STACKS = ("apache", "light")  # Apache Kafka + Neo4j (needs Java and Maven); the PyPI stand-ins
LOCAL_NEO4J_PASSWORD = "streamrec-local"  # only for the local loopback servers
# the database each local graph server serves: Neo4j Community has one user database, "neo4j"
LOCAL_DATABASE = {"apache": "neo4j", "light": "recs"}
LOCAL_USER = {"apache": "neo4j", "light": "root"}
# The light stack's broker (Tansu) holds every fetch for the full wait, so a short one keeps freshness low
# there; Apache Kafka answers a fetch as soon as data arrives, and its client default only paces idle polls.
FETCH_MAX_WAIT_MS = {"apache": 500, "light": 20}


N = TypeVar("N", int, float)  # a numeric setting's type


class SettingsError(ValueError):
    """A STREAMREC_* variable holds a value the system cannot run with."""


# A variable whose name holds one of these words is a secret: its value is never shown (Settings' repr).
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")
HIDDEN = "<hidden>"


# the metadata of a field that holds a secret: Settings' repr shows only whether it is set
SECRET = {"secret": True}


@dataclass(frozen=True, repr=False)
class Settings:
    home: Path
    data_dir: Path
    model_dir: Path
    model_version: str | None  # the pinned version (a folder under model_dir); None: the one CURRENT names
    # which local servers `streamrec services` starts (and whose behaviour the clients allow for)
    local_stack: str
    # Kafka: None means "start and use the local broker"
    kafka_bootstrap: str | None
    kafka_security_protocol: str
    kafka_sasl_mechanism: str | None
    kafka_sasl_username: str | None
    kafka_sasl_password: str | None = field(metadata=SECRET)
    kafka_ssl_cafile: str | None
    local_kafka_port: int
    local_kafka_controller_port: int | None  # None: a free port, picked when the local broker starts
    topic_prefix: str
    partitions: int
    replication_factor: int | None  # None: min(3, brokers in the cluster), decided when the topics are created
    session_timeout_s: float
    # a worker whose graph writes have failed this long leaves the consumer group (exit status 3); 0: never
    write_stall_leave_s: float
    fetch_max_wait_ms: int
    # graph store: None means "start and use the local Bolt server"
    neo4j_uri: str | None
    neo4j_user: str
    neo4j_password: str = field(metadata=SECRET)
    neo4j_database: str | None
    local_bolt_port: int
    local_http_port: int
    # worker behaviour
    app_id: str
    batch_size: int
    batch_wait_ms: int
    graph_flush_ms: int  # how long the graph write behind the lists gathers batches (one transaction)
    top_k: int
    because: int  # reasons per list entry (the most-attended neighbours); 0 leaves them out
    exclude: str
    diversity: float  # λ of the MMR re-ranking of every list (model_server/diversity.py); 0 = off
    model_poll_s: float
    torch_threads: int
    follow_all_partitions: bool  # every worker's model folds in every partition's events (stream/replica.py)
    retention_days: float  # edges older than this behind the newest event are forgotten (model and graph); 0 = never
    retention_prune_s: float  # the least time between two deletions of forgotten edges from the graph
    metrics_host: str
    advertised_host: str  # how the other workers reach this one's HTTP port (a lookup of a user it owns)
    metrics_port: int
    log_level: str
    log_format: str
    extra: Mapping[str, str] = field(default_factory=dict)
    unknown_variables: tuple[str, ...] = ()  # one warning per STREAMREC_* variable no setting reads

    def __repr__(self) -> str:
        """Every field, secrets as <hidden>, so printing or logging the settings never repeats a password;
        `extra` (the STREAMREC_* variables as read) hides the values of the variables named like a secret."""
        shown = []
        for f in fields(self):
            value: Any = getattr(self, f.name)
            if f.metadata.get("secret") and value is not None:
                value = HIDDEN
            elif f.name == "extra":
                value = {k: HIDDEN if any(w in k.upper() for w in SECRET_WORDS) else v for k, v in value.items()}
            shown.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def http_url(self) -> str:
        """This worker's HTTP endpoint as the other workers of its group see it."""
        host = f"[{self.advertised_host}]" if ":" in self.advertised_host else self.advertised_host
        return f"http://{host}:{self.metrics_port}"

    @property
    def retention_ms(self) -> int:
        return round(self.retention_days * 86_400_000)

    @property
    def uses_local_kafka(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def uses_local_graph(self) -> bool:
        return self.neo4j_uri is None

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.local_kafka_port}"

    @property
    def bolt_uri(self) -> str:
        return self.neo4j_uri or f"bolt://127.0.0.1:{self.local_bolt_port}"

    @property
    def database(self) -> str | None:
        return (
            self.neo4j_database
            if not self.uses_local_graph
            else (self.neo4j_database or LOCAL_DATABASE[self.local_stack])
        )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def kafka_client_options(self) -> dict[str, str | None]:
        """Security options in kafka-python's spelling (aiokafka/faust take the same names)."""
        options: dict[str, str | None] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self.kafka_sasl_password,
            )
        if self.kafka_ssl_cafile:
            options["ssl_cafile"] = self.kafka_ssl_cafile
        return options


class _Reader:
    """Reads and checks variables; collects every problem before failing, so one run shows them all."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []
        self.names: set[str] = set(OTHER_VARIABLES)  # every name looked up

    def raw(self, name: str) -> str | None:
        self.names.add(name)
        value = self.env.get(PREFIX + name)
        return value if value not in (None, "") else None

    @overload
    def text(self, name: str, default: str) -> str: ...
    @overload
    def text(self, name: str, default: None) -> str | None: ...
    def text(self, name: str, default: str | None) -> str | None:
        return self.raw(name) or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return self._number(name, default, low, high, int, "an integer")

    def number(self, name: str, default: float, low: float, high: float) -> float:
        return self._number(name, default, low, high, float, "a number")

    @overload
    def choice(
        self, name: str, default: str, allowed: tuple[str, ...], fold: Callable[[str], str] = str.lower
    ) -> str: ...
    @overload
    def choice(
        self, name: str, default: None, allowed: tuple[str, ...], fold: Callable[[str], str] = str.lower
    ) -> str | None: ...
    def choice(
        self, name: str, default: str | None, allowed: tuple[str, ...], fold: Callable[[str], str] = str.lower
    ) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if fold(value) not in allowed:
            self.problems.append(f"{PREFIX}{name}={value!r}: must be one of {', '.join(allowed)}")
            return default
        return fold(value)

    def _number(self, name: str, default: N, low: N, high: N, kind: Callable[[str], N], kind_name: str) -> N:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = kind(value)
        except ValueError:
            self.problems.append(f"{PREFIX}{name}={value!r}: must be {kind_name} between {low} and {high}")
            return default
        if not low <= parsed <= high:
            self.problems.append(f"{PREFIX}{name}={value!r}: must be between {low} and {high}")
            return default
        return parsed


def _read_secret(reader: _Reader, name: str) -> str | None:
    """A secret comes from STREAMREC_<NAME> or from the file named by STREAMREC_<NAME>_FILE."""
    path = reader.raw(name + "_FILE")
    if path is None:
        return reader.raw(name)
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        reader.problems.append(f"{PREFIX}{name}_FILE={path!r}: cannot read it ({exc.strerror})")
        return None


def load_settings(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    r = _Reader(env)
    home = Path(r.text("HOME", str(cwd / ".streamrec"))).expanduser().resolve()

    bootstrap = r.raw("KAFKA_BOOTSTRAP")
    if bootstrap is not None and not all(_is_host_port(part) for part in bootstrap.split(",")):
        r.problems.append(f"{PREFIX}KAFKA_BOOTSTRAP={bootstrap!r}: must be host:port[,host:port...]")
    neo4j_uri = r.raw("NEO4J_URI")
    if neo4j_uri is not None and not neo4j_uri.startswith(
        ("bolt://", "bolt+s://", "bolt+ssc://", "neo4j://", "neo4j+s://", "neo4j+ssc://")
    ):
        r.problems.append(f"{PREFIX}NEO4J_URI={neo4j_uri!r}: must start with bolt://, neo4j:// (or +s/+ssc)")
    password = _read_secret(r, "NEO4J_PASSWORD")
    if neo4j_uri is not None and password is None:
        r.problems.append(
            f"{PREFIX}NEO4J_PASSWORD (or {PREFIX}NEO4J_PASSWORD_FILE): required when {PREFIX}NEO4J_URI is set"
        )
    sasl_mechanism = r.choice("KAFKA_SASL_MECHANISM", None, SASL_MECHANISMS, fold=str.upper)
    sasl_password = _read_secret(r, "KAFKA_SASL_PASSWORD")
    if sasl_mechanism and (r.raw("KAFKA_SASL_USERNAME") is None or sasl_password is None):
        r.problems.append(
            f"{PREFIX}KAFKA_SASL_USERNAME and {PREFIX}KAFKA_SASL_PASSWORD: required with {PREFIX}KAFKA_SASL_MECHANISM"
        )

    local_stack = r.choice("LOCAL_STACK", "apache", LOCAL_STACKS)
    replication = r.raw("REPLICATION_FACTOR")
    settings = Settings(
        home=home,
        local_stack=local_stack,
        data_dir=Path(r.text("DATA_DIR", str(home / "data"))).expanduser(),  # the public data sets (eval, bench)
        model_dir=Path(r.text("MODEL_DIR", str(home / "models"))).expanduser(),
        model_version=_model_version(r),
        kafka_bootstrap=bootstrap,
        kafka_security_protocol=r.choice(
            "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", KAFKA_SECURITY_PROTOCOLS, fold=str.upper
        ),
        kafka_sasl_mechanism=sasl_mechanism,
        kafka_sasl_username=r.raw("KAFKA_SASL_USERNAME"),
        kafka_sasl_password=sasl_password,
        kafka_ssl_cafile=r.raw("KAFKA_SSL_CAFILE"),
        local_kafka_port=r.integer("LOCAL_KAFKA_PORT", 9092, 1, 65535),
        # only the local broker itself connects to its controller port: a free one unless the operator sets it
        local_kafka_controller_port=(
            None
            if r.raw("LOCAL_KAFKA_CONTROLLER_PORT") is None
            else r.integer("LOCAL_KAFKA_CONTROLLER_PORT", 0, 1, 65535)
        ),
        topic_prefix=_topic_prefix(r),
        partitions=r.integer("PARTITIONS", 4, 1, 10_000),
        replication_factor=None if replication is None else r.integer("REPLICATION_FACTOR", 1, 1, 32),
        session_timeout_s=r.number("SESSION_TIMEOUT_S", 6.0, 1.0, 300.0),
        write_stall_leave_s=_write_stall_leave_s(r),
        fetch_max_wait_ms=r.integer(
            "FETCH_MAX_WAIT_MS", FETCH_MAX_WAIT_MS[local_stack if bootstrap is None else "apache"], 1, 30_000
        ),
        neo4j_uri=neo4j_uri,
        neo4j_user=r.text("NEO4J_USER", "neo4j" if neo4j_uri else LOCAL_USER[local_stack]),
        neo4j_password=password or LOCAL_NEO4J_PASSWORD,
        neo4j_database=r.raw("NEO4J_DATABASE"),
        local_bolt_port=r.integer("LOCAL_BOLT_PORT", 7687, 1, 65535),
        local_http_port=r.integer("LOCAL_HTTP_PORT", 2480, 1, 65535),
        app_id=r.text("APP_ID", "streamrec"),
        batch_size=r.integer("BATCH_SIZE", 2000, 1, 100_000),
        batch_wait_ms=r.integer("BATCH_WAIT_MS", 5, 0, 60_000),
        graph_flush_ms=r.integer("GRAPH_FLUSH_MS", 200, 0, 10_000),
        top_k=r.integer("TOP_K", 20, 1, 1000),
        because=r.integer("BECAUSE", 3, 0, 20),
        exclude=r.choice("EXCLUDE", "purchased", EXCLUDE_POLICIES),
        diversity=r.number("DIVERSITY", 0.0, 0.0, 1.0),
        model_poll_s=r.number("MODEL_POLL_S", 10.0, 0.5, 86_400.0),
        torch_threads=r.integer("TORCH_THREADS", 1, 1, 1024),
        follow_all_partitions=r.choice("FOLLOW_ALL_PARTITIONS", "on", ("on", "off")) == "on",
        retention_days=r.number("RETENTION_DAYS", 0.0, 0.0, 36_500.0),
        retention_prune_s=r.number("RETENTION_PRUNE_S", 60.0, 0.1, 86_400.0),
        metrics_host=(metrics_host := _host(r, "METRICS_HOST", "127.0.0.1")),
        advertised_host=_host(r, "ADVERTISED_HOST", _reachable_name(metrics_host)),
        metrics_port=r.integer("METRICS_PORT", 9464, 0, 65535),
        log_level=r.choice("LOG_LEVEL", "info", LOG_LEVELS),
        log_format=r.choice("LOG_FORMAT", "text", LOG_FORMATS),
        extra={k: v for k, v in env.items() if k.startswith(PREFIX)},
        unknown_variables=_unknown_variables(env, r.names),
    )
    if r.problems:
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(r.problems))
    return settings


def _unknown_variables(env: Mapping[str, str], known: set[str]) -> tuple[str, ...]:
    """A misspelt variable would be ignored in silence: say so, with the nearest known name."""
    import difflib

    warnings: list[str] = []
    for variable in sorted(k for k in env if k.startswith(PREFIX) and k[len(PREFIX) :] not in known):
        nearest = difflib.get_close_matches(variable[len(PREFIX) :], sorted(known), n=1, cutoff=0.6)
        hint = f": did you mean {PREFIX}{nearest[0]}?" if nearest else " (docs/configuration.md lists the settings)"
        warnings.append(f"{variable} is not a streamrec setting and is ignored{hint}")
    return tuple(warnings)


def _reachable_name(bound_host: str) -> str:
    """The address that bound_host can be reached at from elsewhere: a wildcard (every interface) is not one,
    the machine's name is (a pod's hostname in Kubernetes)."""
    import socket

    return socket.gethostname() if bound_host in ("0.0.0.0", "::", "[::]") else bound_host


def _is_host(text: str) -> bool:
    """An IPv4/IPv6 address, or a DNS name (labels of letters, digits and hyphens); "256.1.1.1" is neither."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        pass
    if re.fullmatch(r"[\d.]+", text):
        return False  # all digits and dots, yet not an address
    return bool(
        re.fullmatch(
            r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
            text,
        )
    )


def _topic_prefix(reader: _Reader) -> str:
    """Kafka topic names allow letters, digits, '.', '_' and '-' (and 249 characters at most)."""
    import re

    value = reader.text("TOPIC_PREFIX", "")
    if not re.fullmatch(r"[A-Za-z0-9._-]{0,200}", value):
        reader.problems.append(
            f"{PREFIX}TOPIC_PREFIX={value!r}: may hold only letters, digits, '.', '_' and '-' "
            "(Kafka's topic-name characters), at most 200 of them"
        )
        return ""
    return value


def _write_stall_leave_s(reader: _Reader) -> float:
    """0 turns leaving off; below 1 s a leader change or a brief lock wait (normal for a graph server) would make
    workers leave the group, and the partitions move, for nothing."""
    value = reader.number("WRITE_STALL_LEAVE_S", 60.0, 0.0, 86_400.0)
    if 0 < value < 1:
        reader.problems.append(
            f"{PREFIX}WRITE_STALL_LEAVE_S={value:g}: must be 0 (never leave the group) or at least 1 second"
        )
        return 60.0
    return value


def _model_version(reader: _Reader) -> str | None:
    """A version is a folder directly under STREAMREC_MODEL_DIR: one path component. Whether it exists is checked
    when the worker starts (streamrec/runtime/worker.py), so `streamrec models list` still runs to find the name."""
    from .model_versions import VERSION_NAME

    value = reader.raw("MODEL_VERSION")
    if value is not None and not VERSION_NAME.fullmatch(value):
        reader.problems.append(
            f"{PREFIX}MODEL_VERSION={value!r}: must be the name of a version folder under "
            f"{PREFIX}MODEL_DIR (letters, digits, '.', '_', '-'; `streamrec models list` shows them)"
        )
        return None
    return value


def _host(reader: _Reader, name: str, default: str) -> str:
    value = reader.text(name, default)
    if not _is_host(value):
        reader.problems.append(
            f"{PREFIX}{name}={value!r}: must be an IP address or a host name (e.g. 127.0.0.1, 0.0.0.0)"
        )
        return default
    return value


def _is_host_port(text: str) -> bool:
    host, _, port = text.strip().rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536
