"""A SAML service provider (ours) and a real IdP (pysaml2) that trust each other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from saml2.server import Server

from hub.auth.config import SamlSettings
from hub.auth.saml import SamlServiceProvider
from tests.hub.auth.idp import PysamlIdP, make_keypair

PUBLIC_URL = "https://kubeweir.test.internal"

# A minimal SP descriptor to bootstrap the IdP before our SP's metadata exists.
_BOOT_SP = (
    b'<?xml version="1.0"?><md:EntityDescriptor '
    b'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="boot">'
    b'<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
    b'<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
    b'Location="https://boot/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>'
)


@dataclass
class SamlPair:
    sp: SamlServiceProvider
    idp: PysamlIdP
    settings: SamlSettings
    directory: Path


def make_pair(directory: Path, idp_name: str = "idp", public_url: str = PUBLIC_URL) -> SamlPair:
    """Our SP trusting a fresh pysaml2 IdP, and that IdP knowing our SP's metadata."""
    sp_key, sp_cert = make_keypair(directory, "sp")
    idp = PysamlIdP(directory, _BOOT_SP, name=idp_name)
    idp_meta = directory / f"{idp_name}-metadata.xml"
    idp_meta.write_text(idp.metadata())
    settings = SamlSettings(
        public_url=public_url,
        sp_key_file=sp_key,
        sp_cert_file=sp_cert,
        idp_metadata_file=idp_meta,
        clock_skew=60,
    )
    sp = SamlServiceProvider(settings)
    sp_meta = directory / "sp-metadata.xml"
    sp_meta.write_bytes(sp.metadata())
    idp.config.metadata.load("local", str(sp_meta))
    idp.server = Server(config=idp.config)
    return SamlPair(sp, idp, settings, directory)


@pytest.fixture
def saml_pair(tmp_path: Path) -> SamlPair:
    return make_pair(tmp_path)
