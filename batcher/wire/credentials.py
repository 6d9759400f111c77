"""Where the Tencent Cloud credentials come from, and keeping the secret key out of sight.

Order (docs/operating.md#credentials, the official SDK's `DefaultCredentialProvider`):

1. the environment: `TENCENTCLOUD_SECRET_ID` + `TENCENTCLOUD_SECRET_KEY`, with an optional session
   token in `TENCENTCLOUD_TOKEN` (tccli's name) or `TENCENTCLOUD_SESSION_TOKEN`;
2. the profile file: `~/.tencentcloud/credentials`, else `/etc/tencentcloud/credentials` (INI,
   section `[default]` or the one `--profile` / `TENCENTCLOUD_PROFILE` names, keys `secret_id`,
   `secret_key`, optional `token`);
3. on a Tencent Cloud server, the CVM role's temporary credentials from the instance metadata
   service (`CvmRoleCredentials`, the SDK's `CVMRoleCredential`: the role name from
   `cam/security-credentials/`, then that role's `TmpSecretId`/`TmpSecretKey`/`Token`, fetched
   again when less than 300 s of `ExpiredTime` remain).

Every request asks its `CredentialsProvider` at the moment it is signed, so a long run signs each
request with the credentials valid when it leaves. `Credentials` never shows its key or token in a
repr, str or error message.
"""

from __future__ import annotations

import configparser
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from batcher.exceptions import CredentialsError

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"
ENV_TOKEN = "TENCENTCLOUD_TOKEN"
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"
ENV_PROFILE = "TENCENTCLOUD_PROFILE"
ENV_METADATA_URL = "BATCHER_METADATA_URL"
"""Where the instance metadata service is (a loopback stand-in in tests)."""
PROFILE_RELATIVE_PATH = Path(".tencentcloud") / "credentials"
SYSTEM_PROFILE_PATH = Path("/etc/tencentcloud/credentials")
DEFAULT_PROFILE = "default"
METADATA_URL = "http://metadata.tencentyun.com/latest/meta-data/"
"""The CVM instance metadata service, as the SDK's `CVMRoleCredential` reaches it."""
ROLE_PATH = "cam/security-credentials/"
REFRESH_MARGIN_SECONDS = 300
"""Fetch new role credentials when fewer seconds than this remain (the SDK's rule: a signature
is good for 5 minutes, so credentials with more left outlive every request signed with them)."""
METADATA_TIMEOUT_SECONDS = 2.0

log = logging.getLogger("batcher")

if TYPE_CHECKING:
    import asyncio

    import aiohttp


@dataclass(frozen=True, slots=True)
class Credentials:
    """A secret id and key (and a session token for temporary credentials)."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "environment"

    def __str__(self) -> str:
        return f"secret id {mask(self.secret_id)} from {self.source}"


class CredentialsProvider(Protocol):
    """What the client asks for the credentials to sign the request it is about to send."""

    async def current(self) -> Credentials: ...


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Credentials that do not change during a run (environment or profile file)."""

    credentials: Credentials

    async def current(self) -> Credentials:
        return self.credentials


@dataclass(frozen=True, slots=True)
class CredentialSources:
    """Where to look, injectable for tests: the CLI builds it from the real environment."""

    environ: Mapping[str, str]
    profile_files: Sequence[Path]
    """Tried in order; the first one that exists is read (the SDK reads only one)."""
    profile: str | None = None
    """`--profile`; None = `TENCENTCLOUD_PROFILE`, else `default`."""
    metadata_url: str | None = None
    """None = `BATCHER_METADATA_URL`, else the real metadata service."""

    @classmethod
    def standard(
        cls, environ: Mapping[str, str], home: Path, profile: str | None = None
    ) -> CredentialSources:
        return cls(environ, (home / PROFILE_RELATIVE_PATH, SYSTEM_PROFILE_PATH), profile)

    @property
    def profile_name(self) -> str:
        return self.profile or self.environ.get(ENV_PROFILE, "").strip() or DEFAULT_PROFILE

    @property
    def metadata(self) -> str:
        url = self.metadata_url or self.environ.get(ENV_METADATA_URL, "").strip() or METADATA_URL
        return url if url.endswith("/") else url + "/"


def mask(secret_id: str) -> str:
    """A secret id shortened for logs: enough to tell keys apart, not enough to use one."""
    if len(secret_id) <= 8:
        return "****"
    return f"{secret_id[:4]}****{secret_id[-4:]}"


def load_credentials(
    environ: Mapping[str, str], home: Path, profile: str | None = None
) -> Credentials:
    """The first complete set of credentials from the environment or a profile file."""
    sources = CredentialSources.standard(environ, home, profile)
    found = _from_environment(environ) or _from_profile_files(sources)
    if found is None:
        raise CredentialsError(_nothing_found(sources, cvm_role=False))
    return found


def find_credentials(sources: CredentialSources) -> CredentialsProvider:
    """Environment, then profile file; without either, the CVM role (checked on first use)."""
    found = _from_environment(sources.environ) or _from_profile_files(sources)
    if found is not None:
        return StaticCredentials(found)
    nothing_found = _nothing_found(sources, cvm_role=True)
    return CvmRoleCredentials(sources.metadata, nothing_found=nothing_found)


def _nothing_found(sources: CredentialSources, *, cvm_role: bool) -> str:
    files = " or ".join(str(path) for path in sources.profile_files)
    text = (
        f"no Tencent Cloud credentials: set {ENV_SECRET_ID} and {ENV_SECRET_KEY} "
        f"(and {ENV_TOKEN} for temporary keys), or write secret_id and secret_key "
        f"under [{sources.profile_name}] in {files}"
    )
    if cvm_role:
        text += ", or run on a Tencent Cloud server (CVM) with a role bound to it"
    return text


def _from_environment(environ: Mapping[str, str]) -> Credentials | None:
    secret_id = environ.get(ENV_SECRET_ID, "").strip()
    secret_key = environ.get(ENV_SECRET_KEY, "").strip()
    if not secret_id and not secret_key:
        return None
    if not secret_id or not secret_key:
        missing = ENV_SECRET_KEY if secret_id else ENV_SECRET_ID
        raise CredentialsError(
            f"{missing} is not set: set both {ENV_SECRET_ID} and {ENV_SECRET_KEY}"
        )
    token = (environ.get(ENV_TOKEN, "").strip()
             or environ.get(ENV_SESSION_TOKEN, "").strip() or None)
    return Credentials(secret_id, secret_key, token, source="environment")


def _from_profile_files(sources: CredentialSources) -> Credentials | None:
    for path in sources.profile_files:
        if path.is_file():
            return _from_profile(path, sources.profile_name)
    return None


def _from_profile(path: Path, section_name: str) -> Credentials:
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as error:
        # The parser's message may quote a line of the file, which may hold the key: name only
        # the kind of problem.
        raise CredentialsError(
            f"{path}: cannot read the credentials file ({type(error).__name__}): "
            f"it must be INI with a [{section_name}] section"
        ) from None
    if not parser.has_section(section_name):
        raise CredentialsError(
            f"{path}: no [{section_name}] section: add one with secret_id and secret_key"
        )
    section = parser[section_name]
    secret_id = section.get("secret_id", "").strip()
    secret_key = section.get("secret_key", "").strip()
    if not secret_id or not secret_key:
        missing = "secret_key" if secret_id else "secret_id"
        raise CredentialsError(f"{path}: [{section_name}] has no {missing}: add it")
    token = section.get("token", "").strip() or None
    source = str(path) if section_name == DEFAULT_PROFILE else f"{path} [{section_name}]"
    return Credentials(secret_id, secret_key, token, source=source)


class CvmRoleCredentials:
    """The CVM role's temporary credentials, fetched from the instance metadata service.

    `current()` returns the cached credentials while more than `REFRESH_MARGIN_SECONDS` of their
    `ExpiredTime` remain, else fetches new ones (one fetch at a time, however many requests ask).
    A failed refresh keeps the old credentials while they have not expired (logged); with none
    left, it raises `CredentialsError`.
    """

    def __init__(
        self,
        metadata_url: str = METADATA_URL,
        *,
        nothing_found: str = "no credentials from the CVM role",
        clock: Callable[[], float] = time.time,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self._role_url = metadata_url.rstrip("/") + "/" + ROLE_PATH
        self._nothing_found = nothing_found
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._role: str | None = None
        self._credentials: Credentials | None = None
        self._expires_at = 0.0
        self._lock: asyncio.Lock | None = None
        """Made on first use, inside the run's event loop."""

    def __repr__(self) -> str:
        return f"CvmRoleCredentials(role={self._role!r})"

    async def current(self) -> Credentials:
        if self._credentials is not None and not self._needs_refresh():
            return self._credentials
        if self._lock is None:
            import asyncio  # here, not at the top: the CLI's parser imports this module's names

            self._lock = asyncio.Lock()
        async with self._lock:  # the first caller fetches; the others then find them fresh
            if self._credentials is None or self._needs_refresh():
                await self._refresh()
            assert self._credentials is not None
            return self._credentials

    def _needs_refresh(self) -> bool:
        return self._expires_at - self._clock() <= self._refresh_margin

    async def _refresh(self) -> None:
        try:
            credentials, expires_at = await self._fetch()
        except CredentialsError as error:
            if self._credentials is not None and self._clock() < self._expires_at:
                log.warning("cannot refresh the CVM role credentials (%s): the current ones "
                            "are valid for %.0f s more", error, self._expires_at - self._clock())
                return
            raise
        self._credentials, self._expires_at = credentials, expires_at

    async def _fetch(self) -> tuple[Credentials, float]:
        import aiohttp  # here, not at the top: the CLI's parser imports this module's names

        timeout = aiohttp.ClientTimeout(total=METADATA_TIMEOUT_SECONDS)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                if self._role is None:
                    self._role = _role_name(await _get(session, self._role_url))
                answer = await _get(session, self._role_url + self._role)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise CredentialsError(
                f"{self._nothing_found} (the metadata service at {self._role_url} did not "
                f"answer: {type(error).__name__})"
            ) from None
        return _role_credentials(answer, self._role, self._role_url)


async def _get(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.text()


def _role_name(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise CredentialsError("the metadata service names no CVM role: bind one to the server")
    return lines[0]


def _role_credentials(text: str, role: str, url: str) -> tuple[Credentials, float]:
    try:
        answer = json.loads(text)
        if answer.get("Code") != "Success":
            raise ValueError(str(answer.get("Code")))
        credentials = Credentials(
            str(answer["TmpSecretId"]), str(answer["TmpSecretKey"]), str(answer["Token"]),
            source=f"CVM role {role}",
        )
        return credentials, float(answer["ExpiredTime"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        # Never quote the answer: it holds the temporary key.
        raise CredentialsError(
            f"the metadata service at {url}{role} gave no usable credentials "
            f"({type(error).__name__})"
        ) from None
