"""SPEC §2 credentials: environment, then ~/.tencentcloud/credentials; the key stays hidden."""

from __future__ import annotations

import pytest

from batcher.wire.credentials import CredentialsError, load_credentials

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
