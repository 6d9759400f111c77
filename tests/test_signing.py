"""docs/architecture.md#the-two-services wire protocol: batcher's TC3-HMAC-SHA256 signatures equal
the official SDK's.

The SDK (`tencentcloud-sdk-python-common`, a dev dependency only) is the oracle: for generated
credentials, timestamps, services and parameters (non-ASCII prompts included) it builds and signs
a request, and batcher's `Signer` must produce the same `Authorization` header for the same bytes.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tencentcloud.common.abstract_client import AbstractClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from batcher.api.services import MPS, VOD, Service
from batcher.wire.signing import Signer, expected_signature, parse_authorization

secret_ids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                     min_size=8, max_size=36)
secret_keys = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8,
                      max_size=40)
timestamps = st.integers(min_value=1_500_000_000, max_value=2_200_000_000)
prompts = st.text(min_size=1, max_size=200)  # any Unicode: CJK, emoji, quotes, newlines
hosts = st.sampled_from(["vod.intl.tencentcloudapi.com", "mps.intl.tencentcloudapi.com",
                         "127.0.0.1:8765", "localhost:40123"])


def sdk_signed_request(
    service: Service, host: str, secret_id: str, secret_key: str, timestamp: int,
    params: dict[str, object], token: str | None, monkeypatch: pytest.MonkeyPatch,
) -> RequestInternal:
    """A request built and signed by the official SDK, with its clock pinned to `timestamp`."""
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=host))
    client = AbstractClient(Credential(secret_id, secret_key, token), "", profile)
    client._service = service.name
    client._apiVersion = service.version
    monkeypatch.setattr("tencentcloud.common.abstract_client.time.time", lambda: timestamp)
    request = RequestInternal(host, "POST", "/")
    client._build_req_with_tc3_signature(service.action, params, request)
    return request


@settings(max_examples=150, deadline=None)
@given(
    service=st.sampled_from([VOD, MPS]), host=hosts, secret_id=secret_ids,
    secret_key=secret_keys, timestamp=timestamps, prompt=prompts,
    token=st.one_of(st.none(), st.text(alphabet="abcdef0123456789", min_size=10, max_size=20)),
)
def test_signer_matches_the_official_sdk(service, host, secret_id, secret_key, timestamp, prompt,
                                         token):
    params = {"Prompt": prompt, "ModelName": "GEM", "SubAppId": 251007502}
    with pytest.MonkeyPatch.context() as monkeypatch:
        sdk = sdk_signed_request(service, host, secret_id, secret_key, timestamp, params, token,
                                 monkeypatch)
    ours = Signer(secret_id, secret_key, token).sign_headers(
        service=service.name, host=host, action=service.action, version=service.version,
        payload=sdk.data.encode("utf-8"), timestamp=timestamp,
    )
    assert ours["Authorization"] == sdk.header["Authorization"]
    for header in ("Content-Type", "Host", "X-TC-Action", "X-TC-Version", "X-TC-Timestamp"):
        assert ours[header] == sdk.header[header]
    assert ours.get("X-TC-Token") == sdk.header.get("X-TC-Token")


@settings(max_examples=100, deadline=None)
@given(secret_key=secret_keys, timestamp=timestamps, prompt=prompts)
def test_utf8_payload_signature_matches_the_sdk_signing_routine(secret_key, timestamp, prompt):
    # batcher sends UTF-8 bodies (not \\u escapes); the SDK's own canonical-request routine
    # must sign those bytes to the same signature.
    payload = json.dumps({"Prompt": prompt}, ensure_ascii=False, separators=(",", ":"))
    host = "vod.intl.tencentcloudapi.com"
    client = AbstractClient(Credential("AKIDx", secret_key), "",
                            ClientProfile(httpProfile=HttpProfile(endpoint=host)))
    request = RequestInternal(host, "POST", "/", {"Content-Type": "application/json",
                                                  "Host": host,
                                                  "X-TC-Timestamp": str(timestamp)}, payload)
    from batcher.wire.signing import utc_date

    sdk_signature = client._get_tc3_signature({}, request, utc_date(timestamp), "vod", secret_key)
    ours = expected_signature(secret_key=secret_key, host=host, content_type="application/json",
                              payload=payload.encode("utf-8"), timestamp=timestamp,
                              service="vod")
    assert ours == sdk_signature


def test_credential_scope_uses_the_utc_day_of_the_timestamp():
    # 2023-11-14T23:59:59Z and one second later fall on two days: the scope must follow UTC.
    signer = Signer("AKIDexample", "key")
    common = dict(service="vod", host="h", action="A", version="v", payload=b"{}")

    def sign(timestamp):
        return signer.sign_headers(timestamp=timestamp, **common)["Authorization"]

    before = parse_authorization(sign(1700006399))
    after = parse_authorization(sign(1700006400))
    assert before is not None and after is not None
    assert (before.date, after.date) == ("2023-11-14", "2023-11-15")
    assert before.signed_headers == "content-type;host"


def test_signer_repr_hides_the_secret_key():
    signer = Signer("AKIDvisible", "very-secret-value")
    assert "very-secret-value" not in repr(signer)
    assert "AKIDvisible" in repr(signer)


@settings(max_examples=100, deadline=None)
@given(
    secret_key=secret_keys, service=st.sampled_from([VOD, MPS]), host=hosts, prompt=prompts,
    # Several requests of one Signer, across UTC midnights and back (a clock corrected
    # backwards): its cached day and signing keys must never leak into another day's signature.
    timestamps=st.lists(st.integers(1_700_006_390, 1_700_006_410) | timestamps, min_size=1,
                        max_size=8),
)
def test_one_signer_equals_the_reference_signature_on_every_request(secret_key, service, host,
                                                                    prompt, timestamps):
    signer = Signer("AKIDexample", secret_key)
    payload = json.dumps({"Prompt": prompt}, ensure_ascii=False).encode("utf-8")
    for timestamp in timestamps:
        headers = signer.sign_headers(service=service.name, host=host, action=service.action,
                                      version=service.version, payload=payload,
                                      timestamp=timestamp)
        parsed = parse_authorization(headers["Authorization"])
        assert parsed is not None
        assert parsed.signature == expected_signature(
            secret_key=secret_key, host=host, content_type="application/json", payload=payload,
            timestamp=timestamp, service=service.name,
        )
        assert headers["X-TC-Timestamp"] == str(timestamp)


@given(timestamp=st.integers(-10**10, 10**11))
def test_utc_date_is_the_utc_day_of_the_timestamp(timestamp):
    from datetime import UTC, datetime

    from batcher.wire.signing import utc_date

    moment = datetime.fromtimestamp(timestamp, UTC)
    if moment.year >= 1000:  # strftime's %Y is unpadded below that, on both sides
        assert utc_date(timestamp) == moment.strftime("%Y-%m-%d")
