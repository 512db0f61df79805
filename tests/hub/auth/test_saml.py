"""Our SP against a real IdP: signed responses accepted, every forgery refused."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.auth.saml import SamlError
from tests.hub.auth.conftest import SamlPair
from tests.hub.auth.idp import PysamlIdP, post_form, shift_times, strip_signatures, wrap_signature


def start(pair: SamlPair, relay: str = "/traffic?q=http") -> tuple[str, object]:
    url, request_id = pair.sp.login_redirect(relay)
    return request_id, pair.idp.read_authn_request(url)


def test_signed_response_logs_in_with_groups(saml_pair: SamlPair) -> None:
    rid, req = start(saml_pair)
    assert req.relay_state == "/traffic?q=http", "the page the user wanted is kept"
    xml = saml_pair.idp.response_xml(req, "alice", ("sre", "payments-dev"))
    ident = saml_pair.sp.process_response(post_form(xml), rid)
    assert ident.name == "alice"
    assert ident.groups == ("sre", "payments-dev")
    assert ident.expires > 0 and ident.assertion_id


def test_authn_request_is_signed_and_names_our_acs(saml_pair: SamlPair) -> None:
    url, _ = saml_pair.sp.login_redirect("/")
    assert "Signature=" in url and "SigAlg=" in url
    req = saml_pair.idp.read_authn_request(url)  # pysaml2 checks the signature
    assert req.acs_url == "https://kubeweir.test.internal/saml/acs"


def test_metadata_is_signed(saml_pair: SamlPair) -> None:
    meta = saml_pair.sp.metadata()
    assert b"<ds:Signature" in meta and b"AssertionConsumerService" in meta


def refused(pair: SamlPair, xml: bytes, rid: str, match: str) -> None:
    with pytest.raises(SamlError, match=match):
        pair.sp.process_response(post_form(xml), rid)


def test_replay_is_refused(saml_pair: SamlPair) -> None:
    rid, req = start(saml_pair)
    xml = saml_pair.idp.response_xml(req)
    saml_pair.sp.process_response(post_form(xml), rid)
    refused(saml_pair, xml, rid, "replay")


def test_unsigned_is_refused(saml_pair: SamlPair) -> None:
    rid, req = start(saml_pair)
    refused(saml_pair, saml_pair.idp.response_xml(req, sign_assertion=False), rid, "not signed")
    refused(saml_pair, strip_signatures(saml_pair.idp.response_xml(req)), rid, "not signed")


def test_signed_with_another_key_is_refused(saml_pair: SamlPair, tmp_path) -> None:
    rid, req = start(saml_pair)
    # Same entity id, its own key: what an attacker who knows the IdP's name can make.
    other = PysamlIdP(tmp_path, (saml_pair.directory / "sp-metadata.xml").read_bytes(), "rogue")
    refused(saml_pair, other.response_xml(req), rid, "Signature validation failed|not valid")


def test_sha1_signatures_are_refused(saml_pair: SamlPair) -> None:
    rid, req = start(saml_pair)
    refused(saml_pair, saml_pair.idp.response_xml(req, sha1=True), rid, "Deprecated")


@pytest.mark.parametrize(
    ("delta", "match"),
    [(dt.timedelta(hours=-2), "expired"), (dt.timedelta(hours=2), "not yet valid")],
    ids=["expired", "not-yet-valid"],
)
def test_time_window_is_enforced(saml_pair: SamlPair, delta: dt.timedelta, match: str) -> None:
    rid, req = start(saml_pair)
    xml = saml_pair.idp.response_xml(req)
    assertion_id = saml_pair.idp.assertion_id(xml)
    # Re-signed after the shift: the signature is good, only the time is wrong.
    forged = saml_pair.idp.sign(shift_times(xml, delta), assertion_id)
    refused(saml_pair, forged, rid, match)


def test_small_clock_skew_is_tolerated(saml_pair: SamlPair) -> None:
    rid, req = start(saml_pair)
    xml = saml_pair.idp.response_xml(req)
    resigned = saml_pair.idp.sign(
        shift_times(xml, dt.timedelta(seconds=30)), saml_pair.idp.assertion_id(xml)
    )
    assert saml_pair.sp.process_response(post_form(resigned), rid).name == "alice"


def test_wrong_audience_is_refused(saml_pair: SamlPair) -> None:
    rid, req = start(saml_pair)
    xml = saml_pair.idp.response_xml(req, audience="https://other.internal/saml/metadata")
    refused(saml_pair, xml, rid, "audience")


def test_wrong_recipient_is_refused(saml_pair: SamlPair) -> None:
    rid, req = start(saml_pair)
    xml = saml_pair.idp.response_xml(req, destination="https://evil.internal/saml/acs")
    refused(saml_pair, xml, rid, "received at")


def test_response_to_another_request_is_refused(saml_pair: SamlPair) -> None:
    rid, req = start(saml_pair)
    _, req2 = start(saml_pair)
    refused(saml_pair, saml_pair.idp.response_xml(req2), rid, "InResponseTo")


def test_unsolicited_response_is_refused(saml_pair: SamlPair) -> None:
    _, req = start(saml_pair)
    with pytest.raises(SamlError, match="unsolicited"):
        saml_pair.sp.process_response(post_form(saml_pair.idp.response_xml(req)), None)


@pytest.mark.parametrize("variant", [1, 2, 3])
def test_signature_wrapping_is_refused(saml_pair: SamlPair, variant: int) -> None:
    rid, req = start(saml_pair)
    forged = wrap_signature(saml_pair.idp.response_xml(req, "alice"), "mallory", variant)
    with pytest.raises(SamlError):
        saml_pair.sp.process_response(post_form(forged), rid)


@pytest.mark.parametrize("junk", ["", "bm90IHhtbA==", "%%%", "PD94bWwgdmVyc2lvbj0iMS4wIj8+"])
def test_garbage_is_refused_with_a_reason(saml_pair: SamlPair, junk: str) -> None:
    rid, _ = start(saml_pair)
    with pytest.raises(SamlError):
        saml_pair.sp.process_response({"SAMLResponse": junk}, rid)
