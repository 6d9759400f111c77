"""docs/operating.md#credentials: environment, then ~/.tencentcloud/credentials (else /etc/...),
then the CVM role from the instance metadata service (a loopback stand-in here); the key stays
hidden."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from batcher.emulator.config import TemporaryKey
from batcher.emulator.runner import running_emulator
from batcher.exceptions import ExitCode
from batcher.wire.credentials import (
    REFRESH_MARGIN_SECONDS,
    CredentialsError,
    CredentialSources,
    CvmRoleCredentials,
    StaticCredentials,
    find_credentials,
    load_credentials,
)
from tests.helpers import (
    emulator_settings,
    event_counts,
    ledger_of,
    metadata_service,
    submit,
    write_manifest,
)

SECRET = "s3cr3t-KEY-value-0123456789"


def write_profile(home, text):
    folder = home / ".tencentcloud"
    folder.mkdir()
    (folder / "credentials").write_text(text)


def test_environment_variables_win_over_the_profile_file(tmp_path):
    write_profile(tmp_path, "[default]\nsecret_id = AKIDfile\nsecret_key = filekey\n")
    env = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": SECRET,
           "TENCENTCLOUD_SESSION_TOKEN": "tok"}
    credentials = load_credentials(env, tmp_path)
    assert (credentials.secret_id, credentials.secret_key, credentials.token) == (
        "AKIDenv", SECRET, "tok")


def test_profile_file_default_section_is_used_without_environment(tmp_path):
    write_profile(tmp_path, "[default]\nsecret_id = AKIDfile\nsecret_key = filekey\n")
    credentials = load_credentials({}, tmp_path)
    assert (credentials.secret_id, credentials.secret_key, credentials.token) == (
        "AKIDfile", "filekey", None)
    assert str(tmp_path / ".tencentcloud" / "credentials") in credentials.source


def test_no_credentials_anywhere_names_both_places(tmp_path):
    with pytest.raises(CredentialsError) as error:
        load_credentials({}, tmp_path)
    assert "TENCENTCLOUD_SECRET_ID" in str(error.value)
    assert ".tencentcloud/credentials" in str(error.value)


def test_half_set_environment_says_which_variable_is_missing(tmp_path):
    with pytest.raises(CredentialsError, match="TENCENTCLOUD_SECRET_KEY is not set"):
        load_credentials({"TENCENTCLOUD_SECRET_ID": "AKIDenv"}, tmp_path)


def test_profile_without_key_or_section_is_a_clear_error(tmp_path):
    write_profile(tmp_path, "[other]\nsecret_id = a\n")
    with pytest.raises(CredentialsError, match=r"no \[default\] section"):
        load_credentials({}, tmp_path)


def test_broken_profile_file_error_does_not_quote_its_content(tmp_path):
    write_profile(tmp_path, f"secret_key = {SECRET}\n[default\n")
    with pytest.raises(CredentialsError) as error:
        load_credentials({}, tmp_path)
    assert SECRET not in str(error.value)


def test_secret_key_and_token_never_appear_in_repr_or_str(tmp_path):
    env = {"TENCENTCLOUD_SECRET_ID": "AKIDenvironment123", "TENCENTCLOUD_SECRET_KEY": SECRET,
           "TENCENTCLOUD_SESSION_TOKEN": "token-secret-xyz"}
    credentials = load_credentials(env, tmp_path)
    for text in (repr(credentials), str(credentials), f"{credentials}"):
        assert SECRET not in text
        assert "token-secret-xyz" not in text
    assert "AKIDenvironment123" not in str(credentials)  # masked in log lines


# --- where the SDK looks: tccli's token name, /etc, named profiles ---------------------------


def sources(tmp_path, environ=None, profile=None):
    home_file = tmp_path / "home" / ".tencentcloud" / "credentials"
    system_file = tmp_path / "etc" / "tencentcloud" / "credentials"
    return CredentialSources(environ or {}, (home_file, system_file), profile,
                             metadata_url="http://127.0.0.1:9/")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def static(found):
    assert isinstance(found, StaticCredentials)
    return await found.current()


async def test_the_session_token_is_also_read_from_tccli_s_name(tmp_path):
    env = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": SECRET,
           "TENCENTCLOUD_TOKEN": "tccli-token"}
    assert (await static(find_credentials(sources(tmp_path, env)))).token == "tccli-token"
    assert load_credentials(env, tmp_path).token == "tccli-token"


async def test_the_system_profile_file_is_read_when_the_home_one_is_missing(tmp_path):
    where = sources(tmp_path)
    write(where.profile_files[1], "[default]\nsecret_id = AKIDetc\nsecret_key = etckey\n")
    found = await static(find_credentials(where))
    assert (found.secret_id, found.secret_key) == ("AKIDetc", "etckey")
    write(where.profile_files[0], "[default]\nsecret_id = AKIDhome\nsecret_key = homekey\n")
    assert (await static(find_credentials(where))).secret_id == "AKIDhome"


def test_the_standard_places_are_the_sdks():
    standard = CredentialSources.standard({}, Path("/home/u"))
    assert standard.profile_files == (Path("/home/u/.tencentcloud/credentials"),
                                      Path("/etc/tencentcloud/credentials"))
    assert standard.metadata == "http://metadata.tencentyun.com/latest/meta-data/"


async def test_a_named_profile_comes_from_the_option_or_the_environment(tmp_path):
    profile_text = ("[default]\nsecret_id = AKIDdefault\nsecret_key = k0\n"
                    "[prod]\nsecret_id = AKIDprod\nsecret_key = k1\n"
                    "[test]\nsecret_id = AKIDtest\nsecret_key = k2\n")
    where = sources(tmp_path)
    write(where.profile_files[0], profile_text)
    assert (await static(find_credentials(where))).secret_id == "AKIDdefault"
    by_env = sources(tmp_path, {"TENCENTCLOUD_PROFILE": "test"})
    assert (await static(find_credentials(by_env))).secret_id == "AKIDtest"
    by_option = sources(tmp_path, {"TENCENTCLOUD_PROFILE": "test"}, profile="prod")
    found = await static(find_credentials(by_option))
    assert (found.secret_id, found.secret_key) == ("AKIDprod", "k1")
    assert "[prod]" in found.source
    with pytest.raises(CredentialsError, match=r"no \[staging\] section"):
        find_credentials(sources(tmp_path, profile="staging"))


# --- the CVM role, from a metadata service on loopback -------------------------------------


async def test_without_environment_or_file_the_cvm_role_is_used_and_refreshed(tmp_path):
    now = time.time()
    issued = [("AKIDrole1", "key-1", "token-1", now + REFRESH_MARGIN_SECONDS + 1000),
              ("AKIDrole2", "key-2", "token-2", now + 7200)]
    clock = [now]
    async with metadata_service(issued) as (service, url):
        provider = CvmRoleCredentials(url, clock=lambda: clock[0])
        first = await provider.current()
        assert (first.secret_id, first.secret_key, first.token) == ("AKIDrole1", "key-1",
                                                                    "token-1")
        clock[0] = now + 999  # more than 300 s left: the same credentials, no new fetch
        assert await provider.current() is first
        clock[0] = now + 1001  # fewer than 300 s left: new ones, fetched once for all callers
        again = await asyncio.gather(*(provider.current() for _ in range(10)))
        assert {c.secret_id for c in again} == {"AKIDrole2"}
        assert (service.role_asks, service.credential_asks) == (1, 2)
    assert "key-2" not in repr(provider) and "token-2" not in repr(again[0])


async def test_a_failed_refresh_keeps_credentials_that_are_still_valid(tmp_path):
    now = time.time()
    async with metadata_service([("AKIDrole1", "key-1", "token-1", now + 400)]) as (
            service, url):
        clock = [now]
        provider = CvmRoleCredentials(url, clock=lambda: clock[0])
        first = await provider.current()
        service.up = False
        clock[0] = now + 200  # refresh due, metadata down, 200 s left: keep them
        assert await provider.current() is first
        clock[0] = now + 401  # expired and no new ones: an error, not a doomed signature
        with pytest.raises(CredentialsError, match="metadata service"):
            await provider.current()


async def test_no_credentials_and_no_metadata_service_is_one_error_naming_every_place(tmp_path):
    provider = find_credentials(sources(tmp_path))
    with pytest.raises(CredentialsError) as error:
        await provider.current()
    text = str(error.value)
    for place in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_TOKEN", "/etc/tencentcloud/credentials",
                  ".tencentcloud/credentials", "CVM", "metadata service"):
        assert place in text, place


async def test_a_role_expiring_in_the_middle_of_a_run_is_replaced_before_it_is_refused(tmp_path):
    """The first role credentials are due for refresh 1 s into a 3 s run, and the emulator
    refuses them from 1.5 s on: every request must be signed with the credentials valid when it
    leaves, not those the run started with."""
    now = time.time()
    switch_at = now + 1.0
    issued = [("AKIDroleFirst00000", "key-1", "token-1", switch_at + REFRESH_MARGIN_SECONDS),
              ("AKIDroleSecond0000", "key-2", "token-2", now + 7200)]
    config = emulator_settings(rate=20, temporary_keys=(
        TemporaryKey(*issued[0][:3], expires_at=switch_at + 0.5),
        TemporaryKey(*issued[1][:3], expires_at=None),
    ))
    manifest = write_manifest(tmp_path, vod=30, mps=30)
    async with metadata_service(issued) as (service, url), running_emulator(config) as emulator:
        result = await submit(manifest, emulator.url, rate=10,
                              credentials=CvmRoleCredentials(url))
        records = emulator.records
    assert result.exit_code is ExitCode.OK, [r.code for r in records if r.code != "ok"]
    assert [r.code for r in records if r.code != "ok"] == []
    assert len(records) == 60
    assert max(r.wall for r in records) > switch_at + 0.5, "the run outlived the first keys"
    assert service.credential_asks == 2
    assert event_counts(ledger_of(manifest)) == {"submitted": 60}
