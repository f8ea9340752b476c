"""Environment profiles: the pydantic schema, the TOML loader and factor paths.

A profile (``data/profiles/<name>.toml``) describes one environment the backend
runs in -- its process environment, startup state, number of instances -- and
the traffic that environment really sees (the clients and what they send).

Two views of a profile exist:

- the model (:class:`Profile`), validated with ``extra="forbid"`` so a typo is
  an error, never a silently ignored key;
- the flat factor view (:func:`flatten_profile`), a mapping from factor paths
  such as ``env.K_SERVICE`` or ``clients[0].headers.X-Test-Type`` to hashable
  values. Delta debugging mixes the factors of a passing and a failing profile;
  :func:`unflatten_profile` turns any such mixture back into a profile.

Every problem with a profile surfaces as one :class:`ProfileError`, whose
``str()`` is the one-line message ``"{file}: {field}: {reason}"``.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import os
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_PROFILES_DIR: Path = Path(__file__).resolve().parents[1] / "data" / "profiles"

TokenKind = Literal["auth_service", "e2e_suite", "expired", "bad_signature", "alg_none", "none", "literal"]
TokenVia = Literal["bearer", "subprotocol", "query"]
MessageType = Literal["chat", "user_message", "start_agent", "ping", "raw"]
Routing = Literal["sticky", "round_robin"]

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

MAX_VIRTUAL_S = 1_000_000.0
"""Bound on every time in a profile and on each client's last start (11.6 days; the shipped
profiles stay within 3600 s): the backend's heartbeat and cleanup timers tick all through a
run, so a run to 1e300 virtual seconds never ends."""
MAX_CONNECTIONS = 10_000
"""Bound on a profile's connections, all clients together (the shipped ones open at most 36):
the model runs about two thousand a second, and a notebook or an isolation reruns a profile
many times; a count of 10**8 ate gigabytes before the first connection ran."""
MAX_HELD_S = 10_000_000.0
"""Bound on the connection-seconds a profile holds open, the sum of connections * hold_s
(the shipped ones hold at most 12 300): an open connection wakes at every heartbeat
interval, about a microsecond of real time per virtual second it stays open."""
MAX_INSTANCES = 1_000
"""Bound on backend instances (the shipped profiles use at most 4): each is a process state
with its own factory and cleanup timer."""
_BOUND_REASON = "(a bound so that the model runs it in seconds; see profiles.py)"


class ShownAsOneLine(Exception):
    """An error whose ``str()`` is a complete one-line report of bad input.

    In a notebook (IPython) it shows as that line alone: the line already names what is wrong
    and where, and a traceback through the library would only bury it.
    """

    def _render_traceback_(self) -> list[str]:
        """What IPython prints instead of the traceback: the one line."""
        return [f"{type(self).__name__}: {self}"]


class ProfileError(ShownAsOneLine):
    """A profile that cannot be used; ``str()`` is ``"{file}: {field}: {reason}"``."""

    def __init__(self, file: str | Path, field: str, reason: str) -> None:
        super().__init__(str(file), field, reason)
        self.file = str(file)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


def _list_to_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _non_json_part(value: object) -> str | None:
    """Describe the first part of ``value`` that JSON cannot hold (None if all of it can)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"float {value!r}"
    if value is None or isinstance(value, (str, int, bool)):
        return None
    if isinstance(value, list):
        return next((part for item in value if (part := _non_json_part(item)) is not None), None)
    if isinstance(value, dict):
        if any(not isinstance(key, str) for key in value):
            return "a table key that is not a string"
        return next((part for item in value.values() if (part := _non_json_part(item)) is not None), None)
    return type(value).__name__


def _require_json(value: object) -> object:
    """A JWT claim must be JSON (str, number, bool, null, arrays and tables of those)."""
    if (part := _non_json_part(value)) is not None:
        raise ValueError(f"a claim must be a JSON value (string, number, boolean, array or table), got {part}")
    return value


JsonClaim = Annotated[Any, AfterValidator(_require_json)]


class Message(BaseModel):
    """One message a client sends while a connection is open."""

    model_config = _MODEL_CONFIG

    at_s: float = Field(
        ge=0,
        le=MAX_VIRTUAL_S,
        description=f"When it is sent, in virtual seconds after the connection's start; at most {MAX_VIRTUAL_S:g} "
        + _BOUND_REASON,
    )
    type: MessageType = Field(description="Message type as the backend's message loop sees it.")
    text: str = Field(default="", description="Text of a chat/user_message, or the whole frame of a raw message.")


class Client(BaseModel):
    """One client (a browser tab, a test process) and the connections it opens."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, description="Unique name of the client within the profile.")
    user_id: str = Field(description="Identity the client presents (the JWT sub); defaults to the client's name.")
    claims: dict[str, JsonClaim] = Field(
        default_factory=dict, description='Extra or overriding JWT claims (JSON values: no TOML dates or times; "sub" here wins).'
    )
    token: TokenKind = Field(default="auth_service", description="Which kind of token the client presents.")
    token_literal: str = Field(
        default="",
        description='The exact token sent when token = "literal". Its iat, nbf and exp are judged against the '
        "run's clock: simulate (and --wire) start a virtual clock at 2025-09-08T21:06:50Z (clock.EPOCH_MS), "
        "serve uses the wall clock, so a token made for one may be not yet valid or expired in the other.",
    )
    token_via: TokenVia = Field(
        default="bearer", description="Where the token travels: Authorization header, jwt.* subprotocol, or ?token=."
    )
    subprotocols: tuple[str, ...] = Field(default=(), description="Offered subprotocols besides the jwt.* one.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers (name -> value).")
    connections: int = Field(
        default=1,
        ge=0,
        le=MAX_CONNECTIONS,
        description=f"How many connections the client opens, one after another; at most {MAX_CONNECTIONS} for all "
        "clients together " + _BOUND_REASON,
    )
    start_s: float = Field(
        default=0.0,
        ge=0,
        le=MAX_VIRTUAL_S,
        description=f"Start of the first connection (virtual seconds); the last one starts by {MAX_VIRTUAL_S:g} "
        + _BOUND_REASON,
    )
    spacing_s: float = Field(
        default=0.0,
        ge=0,
        le=MAX_VIRTUAL_S,
        description="Time between the starts of consecutive connections.",
    )
    hold_s: float = Field(
        default=10.0,
        ge=0,
        le=MAX_VIRTUAL_S,
        description="How long each connection stays open before the client leaves; connections * hold_s of all "
        f"clients together at most {MAX_HELD_S:g} " + _BOUND_REASON,
    )
    messages: tuple[Message, ...] = Field(
        default=(), description="Messages sent on every connection of this client, each before hold_s."
    )

    @model_validator(mode="before")
    @classmethod
    def _user_id_defaults_to_name(cls, data: object) -> object:
        if isinstance(data, dict) and "user_id" not in data and "name" in data:
            return {**data, "user_id": data["name"]}
        return data

    @field_validator("subprotocols", "messages", mode="before")
    @classmethod
    def _toml_arrays_as_tuples(cls, value: object) -> object:
        return _list_to_tuple(value)

    @model_validator(mode="after")
    def _literal_token_is_given(self) -> Client:
        if self.token == "literal" and "token_literal" not in self.model_fields_set:
            raise ValueError('token = "literal" needs token_literal, the exact token sent ("" for an empty one)')
        return self

    @model_validator(mode="after")
    def _last_start_within_bound(self) -> Client:
        last_start_s = self.start_s + max(self.connections - 1, 0) * self.spacing_s
        if last_start_s > MAX_VIRTUAL_S:
            raise ValueError(
                f"the last connection starts at {last_start_s:g} s (start_s + (connections - 1) * spacing_s); "
                f"at most {MAX_VIRTUAL_S:g} {_BOUND_REASON}"
            )
        return self

    @model_validator(mode="after")
    def _messages_sent_while_open(self) -> Client:
        for index, message in enumerate(self.messages):
            if message.at_s >= self.hold_s:
                raise ValueError(
                    f"messages[{index}].at_s is {message.at_s:g} s, not before hold_s ({self.hold_s:g} s): "
                    "the connection has closed by then and the message would never be sent"
                )
        return self

    @field_validator("headers")
    @classmethod
    def _header_names_unique_ignoring_case(cls, headers: dict[str, str]) -> dict[str, str]:
        lowered = [name.lower() for name in headers]
        duplicates = sorted({name for name in lowered if lowered.count(name) > 1})
        if duplicates:
            raise ValueError(f"header names are case-insensitive; given twice: {', '.join(duplicates)}")
        return headers


class Startup(BaseModel):
    """State of the application's startup and its dependencies."""

    model_config = _MODEL_CONFIG

    complete: bool = Field(default=True, description="App startup is complete at t=0.")
    complete_after_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_VIRTUAL_S,
        description="If complete is false: startup completes at this time; omitted = never.",
    )
    agent_supervisor: bool = Field(default=True, description="The agent supervisor dependency is present.")
    thread_service: bool = Field(default=True, description="The thread service dependency is present.")
    id_generator_fails: bool = Field(default=False, description="Inject a failure: UnifiedIdGenerator raises.")


class Process(BaseModel):
    """Facts about the backend process beyond its environment variables."""

    model_config = _MODEL_CONFIG

    pytest_loaded: bool = Field(default=False, description="The backend process runs under pytest (spec 6).")
    dotenv: dict[str, str] = Field(
        default_factory=dict, description="Contents of a .env file in the working directory (key -> value)."
    )


LOCAL_ENVIRONMENT_VALUES = frozenset({"test", "development"})
"""ENVIRONMENT values of a run on a developer's machine (the report's local debug run sets test)."""


class Profile(BaseModel):
    """One environment and the traffic it sees."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, description="Profile name: the TOML file's stem (not a key in the file).")
    description: str = Field(min_length=1, description="What real situation this profile stands for.")
    seed: int = Field(default=0, description="Seed of the run's random source.")
    instances: int = Field(
        default=1,
        ge=1,
        le=MAX_INSTANCES,
        description=f"Number of backend instances (processes); at most {MAX_INSTANCES} " + _BOUND_REASON,
    )
    routing: Routing = Field(
        default="sticky",
        description='How connections spread over instances: "sticky" (client k -> instance k % instances) '
        'or "round_robin" (connection n in start order -> n % instances).',
    )
    duration_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_VIRTUAL_S,
        description="Stop the run at this virtual time; omitted = when the traffic ends.",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Process environment variables (strings); an absent key is unset."
    )
    process: Process = Field(default_factory=Process, description="Facts about the backend process.")
    startup: Startup = Field(default_factory=Startup, description="Application startup state.")
    clients: tuple[Client, ...] = Field(default=(), description="The clients and their traffic.")

    @property
    def on_cloud_run(self) -> bool:
        """Cloud Run sets K_SERVICE in every service's environment (spec 4.3 reads it non-empty)."""
        return bool(self.env.get("K_SERVICE"))

    @property
    def runs_locally(self) -> bool:
        """A developer's machine or a pytest run, not a deployment: off Cloud Run, with ENVIRONMENT test or
        development, or pytest loaded."""
        return not self.on_cloud_run and (
            self.env.get("ENVIRONMENT") in LOCAL_ENVIRONMENT_VALUES or self.process.pytest_loaded)

    @field_validator("description")
    @classmethod
    def _description_is_one_line(cls, description: str) -> str:
        if any(unicodedata.category(char) == "Cc" for char in description):
            raise ValueError(
                "must be one line without tabs or other control characters (`profiles` prints name<TAB>description)"
            )
        return description

    @field_validator("clients", mode="before")
    @classmethod
    def _toml_array_as_tuple(cls, value: object) -> object:
        return _list_to_tuple(value)

    @field_validator("clients")
    @classmethod
    def _client_names_unique(cls, clients: tuple[Client, ...]) -> tuple[Client, ...]:
        names = [client.name for client in clients]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"client names must be unique; given twice: {', '.join(duplicates)}")
        return clients

    @field_validator("clients")
    @classmethod
    def _traffic_within_bounds(cls, clients: tuple[Client, ...]) -> tuple[Client, ...]:
        connections = sum(client.connections for client in clients)
        if connections > MAX_CONNECTIONS:
            raise ValueError(f"{connections} connections in all; at most {MAX_CONNECTIONS} {_BOUND_REASON}")
        held_s = sum(client.connections * client.hold_s for client in clients)
        if held_s > MAX_HELD_S:
            raise ValueError(
                f"connections * hold_s of all clients is {held_s:g} connection-seconds; at most {MAX_HELD_S:g} "
                + _BOUND_REASON
            )
        return clients


# ---------------------------------------------------------------------------
# Loading


def profile_from_dict(name: str, data: Mapping[str, object], source: str | Path = "<dict>") -> Profile:
    """Validate ``data`` (a parsed TOML document) as the profile called ``name``.

    Raises:
        ProfileError: naming ``source``, the dotted path of the first bad field and the reason.
    """
    if "name" in data:
        raise ProfileError(source, "name", "unknown key (the profile's name is its file name)")
    try:
        return Profile.model_validate({**data, "name": name})
    except ValidationError as error:
        raise _profile_error_from_validation(source, error) from None


def load_profile_file(path: str | Path) -> Profile:
    """Load and validate one profile file; its name is the file's stem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ProfileError(path, "<file>", f"cannot read: {error.strerror or error}") from None
    if raw.startswith(codecs.BOM_UTF8):
        raise ProfileError(path, "<toml>", "starts with a byte-order mark (BOM); TOML is UTF-8 without one")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ProfileError(path, "<toml>", f"not UTF-8 text (byte {error.start})") from None
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(path, "<toml>", f"malformed TOML: {error}") from None
    except RecursionError:
        raise ProfileError(path, "<toml>", "arrays or tables nested too deeply to parse") from None
    return profile_from_dict(path.stem, data, source=path)


PROFILES_DIR_ENV = "INVESTIGATION_PROFILES_DIR"
"""Environment variable naming an extra profiles directory: how ``investigation run
--profiles-dir`` reaches the notebook kernels it starts."""


def active_profiles_dir() -> Path | None:
    """The extra profiles directory named by ``PROFILES_DIR_ENV``, or None.

    Loading needs no argument (``load_profile(name)`` already reads the variable); this is for
    keying a cache by the profiles a result was computed from.
    """
    value = os.environ.get(PROFILES_DIR_ENV, "")
    return Path(value) if value else None


def profile_paths(profiles_dir: str | Path | None = None) -> dict[str, Path]:
    """Map each known profile name to its file: data/profiles, then an extra directory (which wins).

    The extra directory is ``profiles_dir``; when that is None, the directory named by the
    environment variable ``PROFILES_DIR_ENV`` (if set and not empty).
    """
    extra = profiles_dir if profiles_dir is not None else active_profiles_dir()
    paths = _profile_files(DEFAULT_PROFILES_DIR) if DEFAULT_PROFILES_DIR.is_dir() else {}
    if extra is not None:
        override = Path(extra)
        if not override.is_dir():
            raise ProfileError(override, "profiles_dir", "not a directory")
        paths.update(_profile_files(override))
    return dict(sorted(paths.items()))


def load_profile(name: str, profiles_dir: str | Path | None = None) -> Profile:
    """Load the profile called ``name`` (a name in ``profiles_dir`` wins over data/profiles)."""
    paths = profile_paths(profiles_dir)
    if name not in paths:
        extra = profiles_dir if profiles_dir is not None else active_profiles_dir()
        searched = Path(extra) if extra is not None else DEFAULT_PROFILES_DIR
        known = ", ".join(paths) or "(none)"
        raise ProfileError(searched, "name", f"unknown profile {name!r}; known profiles: {known}")
    return load_profile_file(paths[name])


def list_profiles(profiles_dir: str | Path | None = None) -> list[Profile]:
    """All known profiles, loaded and validated, sorted by name."""
    return [load_profile_file(path) for path in profile_paths(profiles_dir).values()]


def _profile_files(directory: Path) -> dict[str, Path]:
    return {path.stem: path for path in directory.glob("*.toml") if path.is_file()}


def _profile_error_from_validation(source: str | Path, error: ValidationError) -> ProfileError:
    first = error.errors(include_url=False)[0]
    location = tuple(part for part in first["loc"] if part != "[key]")
    field = _dotted_path(location) or "<profile>"
    return ProfileError(source, field, _reason(first))


def _dotted_path(location: Iterable[str | int]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


_SHORT_VALUE_CHARS = 24
_TOML_WORDS = {"tuple_type": "Input should be an array", "dict_type": "Input should be a table"}


def _string_table_hint(location: tuple[str | int, ...]) -> str:
    """Name the string-valued table an entry belongs to ("" if it is not in one)."""
    if location[:1] == ("env",):
        return "environment variables"
    if location[:2] == ("process", "dotenv"):
        return ".env values"
    if "headers" in location:
        return "header values"
    return ""


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing required field"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    reason = _TOML_WORDS.get(kind, str(error["msg"]))
    location = tuple(error["loc"])
    if "[key]" in location:
        reason = f"key: {reason}"
    elif kind == "string_type" and (hint := _string_table_hint(location)):
        reason += f" ({hint} are strings: quote the value)"
    value = error.get("input")
    if is_secret_factor(_dotted_path(part for part in location if part != "[key]")):
        return f"{reason}, got {type(value).__name__} (the value of a secret is not shown)"
    return f"{reason}, got {_describe_input(value, show_strings=kind == 'literal_error')}"


def _describe_input(value: object, show_strings: bool) -> str:
    """Name the offending input without ever echoing a long string (it could be a secret or token)."""
    if isinstance(value, str):
        if show_strings and len(value) <= _SHORT_VALUE_CHARS:
            return repr(value)
        return f"a string of {len(value)} characters"
    if isinstance(value, (bool, int, float)):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


# ---------------------------------------------------------------------------
# Factors: the flat view used by delta debugging

_TOP_LEVEL_FACTORS = ("seed", "instances", "routing", "duration_s")
_STARTUP_FACTORS = tuple(Startup.model_fields)
_CLIENT_SCALAR_FACTORS = (
    "name",
    "user_id",
    "token",
    "token_literal",
    "token_via",
    "connections",
    "start_s",
    "spacing_s",
    "hold_s",
)
_CLIENT_WHOLE_FACTORS = ("subprotocols", "messages")
_CLIENT_TABLE_FACTORS = ("headers", "claims")
_CLIENT_PATH = re.compile(r"clients\[(\d+)\]\.(\w+)(?:\.(.+))?")


@dataclass(frozen=True)
class ClaimTable:
    """A TOML table used as a claim value, frozen so the factor stays hashable."""

    items: tuple[tuple[str, object], ...]


def flatten_profile(profile: Profile) -> dict[str, object]:
    """The profile as factor path -> hashable value (``description`` and ``name`` excluded).

    An unset env var, .env key, header or claim is absent from the result.
    """
    factors: dict[str, object] = {key: getattr(profile, key) for key in _TOP_LEVEL_FACTORS}
    factors.update({f"env.{key}": value for key, value in profile.env.items()})
    factors["process.pytest_loaded"] = profile.process.pytest_loaded
    factors.update({f"process.dotenv.{key}": value for key, value in profile.process.dotenv.items()})
    factors.update({f"startup.{key}": getattr(profile.startup, key) for key in _STARTUP_FACTORS})
    for index, client in enumerate(profile.clients):
        factors.update(_flatten_client(index, client))
    return dict(sorted(factors.items()))


def _flatten_client(index: int, client: Client) -> dict[str, object]:
    prefix = f"clients[{index}]"
    factors: dict[str, object] = {f"{prefix}.{key}": getattr(client, key) for key in _CLIENT_SCALAR_FACTORS}
    factors.update({f"{prefix}.{key}": getattr(client, key) for key in _CLIENT_WHOLE_FACTORS})
    factors.update({f"{prefix}.headers.{name}": value for name, value in client.headers.items()})
    factors.update({f"{prefix}.claims.{name}": _freeze(value) for name, value in client.claims.items()})
    return factors


def unflatten_profile(
    name: str, factors: Mapping[str, object], base: Profile | None = None
) -> Profile:
    """Build the profile called ``name`` from factor values (any mixture of flattened profiles).

    Factors are complete: whatever is absent is unset or takes the schema default. ``base``
    supplies only what factors never carry, the description. Clients are built by index from
    the fields present; a client without a name is called ``client{i}``, and an index with no
    field at all (a gap) becomes an idle client with 0 connections, so later clients keep
    their index (and with sticky routing their instance).

    Raises:
        ProfileError: an unknown factor path, or a mixture that is not a valid profile.
    """
    source = "<factors>"
    description = base.description if base is not None else f"Factor mixture {name}"
    data: dict[str, Any] = {"description": description, "env": {}, "process": {"dotenv": {}}, "startup": {}}
    clients: dict[int, dict[str, Any]] = {}
    for path, value in factors.items():
        _place_factor(data, clients, path, value, source)
    data["clients"] = [_client_data(index, clients.get(index)) for index in range(max(clients, default=-1) + 1)]
    return profile_from_dict(name, data, source=source)


def _place_factor(
    data: dict[str, Any], clients: dict[int, dict[str, Any]], path: str, value: object, source: str
) -> None:
    head, _, rest = path.partition(".")
    if path in _TOP_LEVEL_FACTORS:
        if value is not None:
            data[path] = value
    elif head == "env" and rest:
        data["env"][rest] = value
    elif path == "process.pytest_loaded":
        data["process"]["pytest_loaded"] = value
    elif path.startswith("process.dotenv.") and len(path) > len("process.dotenv."):
        data["process"]["dotenv"][path.removeprefix("process.dotenv.")] = value
    elif head == "startup" and rest in _STARTUP_FACTORS:
        if value is not None:
            data["startup"][rest] = value
    elif (match := _CLIENT_PATH.fullmatch(path)) is not None:
        _place_client_factor(clients.setdefault(int(match[1]), {}), match[2], match[3], value, path, source)
    else:
        raise ProfileError(source, path, "unknown factor")


def _place_client_factor(
    client: dict[str, Any], field: str, key: str | None, value: object, path: str, source: str
) -> None:
    if key is None and field in _CLIENT_SCALAR_FACTORS + _CLIENT_WHOLE_FACTORS:
        client[field] = value
    elif key is not None and field in _CLIENT_TABLE_FACTORS:
        client.setdefault(field, {})[key] = _thaw(value) if field == "claims" else value
    else:
        raise ProfileError(source, path, "unknown factor")


def _client_data(index: int, fields: dict[str, Any] | None) -> dict[str, Any]:
    if fields is None:
        return {"name": f"client{index}", "connections": 0}
    return {"name": f"client{index}", **fields}


def _freeze(value: object) -> object:
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    if isinstance(value, dict):
        return ClaimTable(tuple(sorted((key, _freeze(item)) for key, item in value.items())))
    return value


def _thaw(value: object) -> object:
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    if isinstance(value, ClaimTable):
        return {key: _thaw(item) for key, item in value.items}
    return value


# ---------------------------------------------------------------------------
# Showing factor values in outputs

_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|[_-]KEY$", re.IGNORECASE)
_SECRET_HEADERS = frozenset({"authorization", "cookie", "sec-websocket-protocol"})
_TOKEN_SUBPROTOCOL_PREFIX = "jwt."


def is_secret_factor(path: str) -> bool:
    """Whether a factor's value may be a secret or a whole token (never print it).

    ``clients[i].subprotocols`` is not secret as a whole: only its ``jwt.*`` entries
    are (``jsonable_factor_value`` redacts those and keeps the others).
    """
    last = path.rsplit(".", 1)[-1]
    if path.endswith(".token_literal"):
        return True
    if ".headers." in path:
        return last.lower() in _SECRET_HEADERS or bool(_SECRET_NAME.search(last))
    if path.startswith(("env.", "process.dotenv.")):
        return bool(_SECRET_NAME.search(last))
    return False


def jsonable_factor_value(path: str, value: object) -> object:
    """A factor value fit for JSON output; secrets become a length-and-hash placeholder."""
    if is_secret_factor(path) and isinstance(value, str):
        return _redacted(value)
    if path.endswith(".subprotocols") and isinstance(value, tuple):
        return [_redacted_subprotocol(entry) if isinstance(entry, str) else _jsonable(entry) for entry in value]
    return _jsonable(value)


def _redacted(value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]
    return f"<redacted: {len(value)} chars, sha256 {digest}>"


def _redacted_subprotocol(entry: str) -> str:
    """A ``jwt.<token>`` entry as ``jwt.<redacted ...>``; any other subprotocol as it is."""
    stripped = entry.strip()
    if not stripped.lower().startswith(_TOKEN_SUBPROTOCOL_PREFIX):
        return entry
    return _TOKEN_SUBPROTOCOL_PREFIX + _redacted(stripped[len(_TOKEN_SUBPROTOCOL_PREFIX) :])


def _jsonable(value: object) -> object:
    if isinstance(value, Message):
        return value.model_dump()
    if isinstance(value, ClaimTable):
        return {key: _jsonable(item) for key, item in value.items}
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
