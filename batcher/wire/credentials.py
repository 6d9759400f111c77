"""Where the Tencent Cloud credentials come from, and keeping the secret key out of sight.

Order (SPEC §2): `TENCENTCLOUD_SECRET_ID` + `TENCENTCLOUD_SECRET_KEY` (+ optional
`TENCENTCLOUD_SESSION_TOKEN`) from the environment, then the SDK's profile file
`~/.tencentcloud/credentials` (INI, section `[default]`, keys `secret_id`, `secret_key`, optional
`token`). `Credentials` never shows its key or token in a repr, str or error message.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from batcher.exceptions import CredentialsError

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"
PROFILE_RELATIVE_PATH = Path(".tencentcloud") / "credentials"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A secret id and key (and a session token for temporary credentials)."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "environment"

    def __str__(self) -> str:
        return f"secret id {mask(self.secret_id)} from {self.source}"


def mask(secret_id: str) -> str:
    """A secret id shortened for logs: enough to tell keys apart, not enough to use one."""
    if len(secret_id) <= 8:
        return "****"
    return f"{secret_id[:4]}****{secret_id[-4:]}"


def load_credentials(environ: Mapping[str, str], home: Path) -> Credentials:
    """The first complete set of credentials, from the environment, then the profile file."""
    from_env = _from_environment(environ)
    if from_env is not None:
        return from_env
    profile = home / PROFILE_RELATIVE_PATH
    from_file = _from_profile(profile)
    if from_file is not None:
        return from_file
    raise CredentialsError(
        f"no Tencent Cloud credentials: set {ENV_SECRET_ID} and {ENV_SECRET_KEY} "
        f"(and {ENV_SESSION_TOKEN} for temporary keys), or write secret_id and secret_key "
        f"under [default] in {profile}"
    )


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
    token = environ.get(ENV_SESSION_TOKEN, "").strip() or None
    return Credentials(secret_id, secret_key, token, source="environment")


def _from_profile(path: Path) -> Credentials | None:
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as error:
        # The parser's message may quote a line of the file, which may hold the key: name only
        # the kind of problem.
        raise CredentialsError(
            f"{path}: cannot read the credentials file ({type(error).__name__}): "
            "it must be INI with a [default] section"
        ) from None
    if not parser.has_section("default"):
        raise CredentialsError(
            f"{path}: no [default] section: add one with secret_id and secret_key"
        )
    section = parser["default"]
    secret_id = section.get("secret_id", "").strip()
    secret_key = section.get("secret_key", "").strip()
    if not secret_id or not secret_key:
        missing = "secret_key" if secret_id else "secret_id"
        raise CredentialsError(f"{path}: [default] has no {missing}: add it")
    token = section.get("token", "").strip() or None
    return Credentials(secret_id, secret_key, token, source=str(path))
