"""Node configuration, read once from environment variables (documented in .env.example)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .identity import NodeKey
from .retry import Backoff
from .transfer import TransferLimits

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """A missing or malformed setting; its message names the variable."""


@dataclass(frozen=True)
class Config:
    dms_base_url: str
    dds_base_url: str
    node_key: NodeKey
    registration_secret: str
    tasks_root: Path
    register_interval_secs: float
    disable_tasks_cleanup: bool
    run_script: Path
    log_format: str
    log_level: str
    health_port: int
    client_id: str
    http_timeout_secs: float
    retry: Backoff
    idle_poll_secs: float
    kill_grace_secs: float
    transfer: TransferLimits
    node_variables: frozenset[str]
    """Every variable the node reads: run.py gets none of them."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values no one else may see: the private key (hex) and the registration secret."""
        return (self.node_key.secret.hex(), self.registration_secret)


def load_config(env: Mapping[str, str], cwd: Path) -> Config:
    """Build the configuration; relative paths resolve against cwd, the directory the node starts in."""
    reader = _EnvReader(env)
    return Config(
        dms_base_url=reader.text("DMS_BASE_URL", "https://dms.auki.network/v1").rstrip("/"),
        dds_base_url=reader.text("DDS_BASE_URL", "https://dds.auki.network").rstrip("/"),
        node_key=reader.node_key("SECP256K1_PRIVHEX"),
        registration_secret=reader.required("REG_SECRET"),
        tasks_root=cwd / reader.text("TASKS_ROOT", "tasks"),
        register_interval_secs=reader.positive_number("REGISTER_INTERVAL_SECS", 120),
        disable_tasks_cleanup=reader.flag("DISABLE_TASKS_CLEANUP", False),
        run_script=cwd / reader.text("SPLATTER_RUN_PY", "run.py"),
        log_format=reader.choice("LOG_FORMAT", "human", ("human", "json")),
        log_level=reader.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        health_port=int(reader.number("HEALTH_PORT", 8080, minimum=0, maximum=65535)),
        client_id=reader.text("POSEMESH_CLIENT_ID", f"splatter-node/{__version__}"),
        http_timeout_secs=reader.positive_number("HTTP_TIMEOUT_SECS", 60),
        retry=Backoff(
            initial_secs=reader.positive_number("RETRY_INITIAL_SECS", 1),
            cap_secs=reader.positive_number("RETRY_MAX_SECS", 60),
            attempts=int(reader.number("RETRY_ATTEMPTS", 5, minimum=1)),
        ),
        idle_poll_secs=reader.positive_number("IDLE_POLL_SECS", 1),
        kill_grace_secs=reader.number("KILL_GRACE_SECS", 10, minimum=0),
        transfer=TransferLimits(
            deadline_secs=reader.positive_number("TRANSFER_DEADLINE_SECS", 7200),
            min_bytes_per_sec=reader.number("TRANSFER_MIN_BYTES_PER_SEC", 64 * 1024, minimum=0),
            rate_window_secs=reader.positive_number("TRANSFER_RATE_WINDOW_SECS", 60),
            max_bytes=int(reader.positive_number("DOWNLOAD_MAX_BYTES", 32 * 1024**3)),
            size_slack_bytes=int(reader.number("DOWNLOAD_SIZE_SLACK_BYTES", 1024**2, minimum=0)),
        ),
        node_variables=reader.names_read(),  # keyword arguments run in order: this one sees every read
    )


class _EnvReader:
    """Typed reads of variables, remembering which ones were read."""

    def __init__(self, env: Mapping[str, str]):
        self._env = env
        self._read: set[str] = set()

    def names_read(self) -> frozenset[str]:
        return frozenset(self._read)

    def text(self, name: str, default: str) -> str:
        value = self._get(name).strip()
        return value or default

    def required(self, name: str) -> str:
        value = self._get(name).strip()
        if not value:
            raise ConfigError(f"{name} is required but not set")
        return value

    def node_key(self, name: str) -> NodeKey:
        try:
            return NodeKey.from_hex(self.required(name))
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{name} is not a valid secp256k1 private key: {exc}") from None

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if not value:
            return default
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")

    def number(self, name: str, default: float, minimum: float, maximum: float | None = None) -> float:
        value = self._get(name).strip()
        if not value:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if number < minimum or (maximum is not None and number > maximum):
            upper = f" and at most {maximum:g}" if maximum is not None else ""
            raise ConfigError(f"{name} must be at least {minimum:g}{upper}, got {value!r}")
        return number

    def positive_number(self, name: str, default: float) -> float:
        number = self.number(name, default, minimum=0)
        if number == 0:
            raise ConfigError(f"{name} must be greater than 0")
        return number

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def _get(self, name: str) -> str:
        self._read.add(name)
        return self._env.get(name, "")
