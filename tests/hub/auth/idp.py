"""A real SAML IdP for the tests: pysaml2's Server, signing with Debian's xmlsec1.

It answers our SP's AuthnRequests with signed responses, and can forge the bad ones an
attacker would try: unsigned, signed with another key, expired, not yet valid, for
another audience or recipient, and XML signature-wrapping variants.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}


def make_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """A 2048-bit RSA key and a self-signed certificate, as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@dataclass
class AuthnRequestInfo:
    id: str
    acs_url: str
    sp_entity_id: str
    relay_state: str


class PysamlIdP:
    """pysaml2 as an IdP for one SP."""

    entity_id = "https://idp.test.internal/metadata"
    sso_url = "https://idp.test.internal/sso"
    slo_url = "https://idp.test.internal/slo"

    def __init__(self, directory: Path, sp_metadata: bytes, name: str = "idp") -> None:
        self.directory = directory
        self.key_file, self.cert_file = make_keypair(directory, name)
        xmlsec = shutil.which("xmlsec1")
        if xmlsec is None:
            raise RuntimeError("xmlsec1 (Debian package xmlsec1) is required by pysaml2")
        sp_meta_path = directory / f"{name}-sp-metadata.xml"
        sp_meta_path.write_bytes(sp_metadata)
        conf = IdPConfig()
        conf.load(
            {
                "entityid": self.entity_id,
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)],
                            "single_logout_service": [(self.slo_url, BINDING_HTTP_REDIRECT)],
                        },
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": 5},
                                "attribute_restrictions": None,
                                "name_form": NAME_FORMAT_URI,
                            }
                        },
                        "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
                        "want_authn_requests_signed": True,
                    }
                },
                "key_file": str(self.key_file),
                "cert_file": str(self.cert_file),
                "xmlsec_binary": xmlsec,
                "metadata": {"local": [str(sp_meta_path)]},
                "allow_unknown_attributes": True,
            }
        )
        self.config = conf
        self.server = Server(config=conf)

    def metadata(self) -> str:
        return create_metadata_string(None, config=self.config, sign=False).decode()

    def read_authn_request(self, redirect_url: str) -> AuthnRequestInfo:
        """Parse (and check the signature of) the SP's redirect-binding AuthnRequest."""
        q = parse_qs(urlsplit(redirect_url).query)
        saml_request = q["SAMLRequest"][0]
        req = self.server.parse_authn_request(
            saml_request,
            BINDING_HTTP_REDIRECT,
            relay_state=q.get("RelayState", [None])[0],
            sigalg=q.get("SigAlg", [None])[0],
            signature=q.get("Signature", [None])[0],
        )
        msg = req.message
        return AuthnRequestInfo(
            id=msg.id,
            acs_url=msg.assertion_consumer_service_url,
            sp_entity_id=msg.issuer.text,
            relay_state=q.get("RelayState", [""])[0],
        )

    def response_xml(
        self,
        req: AuthnRequestInfo,
        user: str = "alice",
        groups: tuple[str, ...] = ("sre",),
        *,
        sign_assertion: bool = True,
        audience: str | None = None,
        destination: str | None = None,
        sha1: bool = False,
    ) -> bytes:
        """A SAML Response (XML) to ``req``; arguments forge the wrong variants."""
        identity: dict[str, Any] = {"groups": list(groups)}
        resp = self.server.create_authn_response(
            identity=identity,
            in_response_to=req.id,
            destination=destination or req.acs_url,
            sp_entity_id=audience or req.sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=user),
            authn={"class_ref": PASSWORD_PROTECTED, "authn_auth": self.entity_id},
            sign_assertion=sign_assertion,
            sign_response=False,
            sign_alg=SIG_RSA_SHA1 if sha1 else SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA1 if sha1 else DIGEST_SHA256,
        )
        return str(resp).encode()

    @staticmethod
    def assertion_id(xml: bytes) -> str:
        root = etree.fromstring(xml)
        assertion = root.find("saml:Assertion", NS)
        assert assertion is not None
        return str(assertion.get("ID"))

    def sign(self, xml: bytes, node_id: str) -> bytes:
        """Sign the element with ``ID=node_id`` in ``xml`` with this IdP's key."""
        sec = self.server.sec
        return sec.sign_statement(
            xml.decode(),
            node_name="urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            node_id=node_id,
        ).encode()


def post_form(xml: bytes, relay_state: str = "/") -> dict[str, str]:
    """The form fields of an HTTP-POST binding response."""
    return {"SAMLResponse": base64.b64encode(xml).decode(), "RelayState": relay_state}


def shift_times(xml: bytes, delta: dt.timedelta) -> bytes:
    """Move every time attribute by ``delta`` (breaks the signature unless re-signed)."""
    root = etree.fromstring(xml)
    for el in root.iter():
        for attr in (
            "IssueInstant",
            "NotBefore",
            "NotOnOrAfter",
            "AuthnInstant",
            "SessionNotOnOrAfter",
        ):
            v = el.get(attr)
            if v:
                t = dt.datetime.strptime(v[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
                el.set(attr, (t + delta).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return etree.tostring(root)


def strip_signatures(xml: bytes) -> bytes:
    root = etree.fromstring(xml)
    for sig in root.findall(".//ds:Signature", NS):
        sig.getparent().remove(sig)
    return etree.tostring(root)


def wrap_signature(xml: bytes, evil_user: str, variant: int) -> bytes:
    """XML signature wrapping: keep the signed assertion somewhere and add an unsigned
    one for ``evil_user`` where a naive SP would read it."""
    root = etree.fromstring(xml)
    assertion = root.find("saml:Assertion", NS)
    assert assertion is not None
    evil = copy.deepcopy(assertion)
    for sig in evil.findall("ds:Signature", NS):
        evil.remove(sig)
    evil.set("ID", "_evil" + assertion.get("ID", "")[1:])
    nid = evil.find(".//saml:NameID", NS)
    assert nid is not None
    nid.text = evil_user
    if variant == 1:
        # evil assertion first, signed one after it
        root.insert(list(root).index(assertion), evil)
    elif variant == 2:
        # signed assertion moved inside the evil one's Extensions-like wrapper
        root.remove(assertion)
        wrapper = etree.SubElement(evil, "{urn:oasis:names:tc:SAML:2.0:assertion}Advice")
        wrapper.append(assertion)
        root.append(evil)
    else:
        # signed assertion hidden in a samlp:Extensions, evil one in its place
        ext = etree.Element("{urn:oasis:names:tc:SAML:2.0:protocol}Extensions")
        root.replace(assertion, evil)
        ext.append(assertion)
        root.insert(1, ext)
    return etree.tostring(root)
