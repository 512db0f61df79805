"""The SAML 2.0 service provider: python3-saml, strict, signed assertions, no replays.

Everything the library checks is on (signature, audience, recipient/destination,
NotBefore/NotOnOrAfter with a small skew, InResponseTo of our own request); on top of
it the SP remembers every accepted assertion id until it expires, so a captured
response can't be posted twice.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from hub.auth.config import SamlSettings

__all__ = ["SamlError", "SamlIdentity", "SamlServiceProvider"]


class SamlError(Exception):
    """A SAML message was refused; ``reason`` is safe to log and to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SamlIdentity:
    """Who the IdP says logged in."""

    name: str
    groups: tuple[str, ...]
    session_index: str | None
    assertion_id: str
    expires: float
    """When the assertion stops being valid (its NotOnOrAfter), epoch seconds."""


class _ReplayCache:
    """Assertion ids seen, each kept until its assertion expires (bounded)."""

    def __init__(self, max_items: int = 100_000) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._max = max_items

    def first_use(self, assertion_id: str, expires: float, now: float) -> bool:
        with self._lock:
            if len(self._seen) >= self._max or len(self._seen) % 256 == 0:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if assertion_id in self._seen:
                return False
            if len(self._seen) >= self._max:
                # Full of live ids: refuse rather than forget one (a replay could pass).
                raise SamlError("too many logins in flight; try again shortly")
            self._seen[assertion_id] = expires
            return True


class SamlServiceProvider:
    """Builds AuthnRequests and validates responses for one IdP."""

    def __init__(self, config: SamlSettings) -> None:
        self.config = config
        key = config.sp_key_file.read_text()
        cert = config.sp_cert_file.read_text()
        if config.idp_metadata_file is not None:
            idp = OneLogin_Saml2_IdPMetadataParser.parse(config.idp_metadata_file.read_text())
        elif config.idp_metadata_url:
            idp = OneLogin_Saml2_IdPMetadataParser.parse_remote(config.idp_metadata_url, timeout=10)
        else:
            raise ValueError("saml: idp_metadata_file or idp_metadata_url is required")
        if "idp" not in idp:
            raise ValueError("saml: the IdP metadata names no IdP")
        base = config.public_url
        self.entity_id = config.sp_entity_id or f"{base}/saml/metadata"
        self.acs_url = f"{base}/saml/acs"
        self.slo_url = f"{base}/saml/slo"
        settings: dict[str, Any] = {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": self.entity_id,
                "assertionConsumerService": {
                    "url": self.acs_url,
                    "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST,
                },
                "singleLogoutService": {
                    "url": self.slo_url,
                    "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
                },
                "NameIDFormat": OneLogin_Saml2_Constants.NAMEID_UNSPECIFIED,
                "x509cert": cert,
                "privateKey": key,
            },
            "idp": idp["idp"],
            "security": {
                "authnRequestsSigned": True,
                "logoutRequestSigned": True,
                "logoutResponseSigned": True,
                "signMetadata": True,
                "wantAssertionsSigned": True,
                "wantMessagesSigned": False,
                "wantNameId": True,
                "wantAttributeStatement": False,
                "rejectDeprecatedAlgorithm": True,
                "requestedAuthnContext": False,
                "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
                "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
            },
        }
        self._settings = OneLogin_Saml2_Settings(settings, sp_validation_only=False)
        # The library reads its tolerated clock drift from this class attribute.
        OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT = config.clock_skew
        self._replays = _ReplayCache()

    # -- request data: built from the configured public URL, never from Host headers.
    def _request_data(
        self, path: str, get: dict[str, str] | None = None, post: dict[str, str] | None = None
    ) -> dict[str, Any]:
        u = urlsplit(self.config.public_url)
        return {
            "https": "on" if u.scheme == "https" else "off",
            "http_host": u.netloc,
            "script_name": (u.path.rstrip("/") + path),
            "get_data": get or {},
            "post_data": post or {},
        }

    def metadata(self) -> bytes:
        """The SP's signed metadata XML."""
        xml = self._settings.get_sp_metadata()
        errors = self._settings.validate_metadata(xml)
        if errors:
            raise SamlError(f"SP metadata invalid: {errors}")
        data: bytes = xml if isinstance(xml, bytes) else xml.encode()
        return data

    def login_redirect(self, relay_state: str) -> tuple[str, str]:
        """The IdP URL to send the browser to, and the AuthnRequest id to expect back."""
        auth = OneLogin_Saml2_Auth(self._request_data("/saml/login"), self._settings)
        url: str = auth.login(return_to=relay_state)
        return url, auth.get_last_request_id()

    def process_response(
        self, form: dict[str, str], request_id: str | None, now: float | None = None
    ) -> SamlIdentity:
        """Validate a POSTed SAMLResponse; raises ``SamlError`` with the reason."""
        if "SAMLResponse" not in form:
            raise SamlError("no SAMLResponse in the request")
        if not request_id:
            raise SamlError("no login in progress (unsolicited responses are not accepted)")
        auth = OneLogin_Saml2_Auth(self._request_data("/saml/acs", post=form), self._settings)
        try:
            auth.process_response(request_id=request_id)
        except (OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError) as exc:
            raise SamlError(str(exc)) from None
        except Exception as exc:  # malformed XML/base64 from the wire: refuse, say why
            raise SamlError(f"malformed SAMLResponse: {type(exc).__name__}") from None
        if auth.get_errors() or not auth.is_authenticated():
            raise SamlError(auth.get_last_error_reason() or "the SAML response is not valid")
        assertion_id = auth.get_last_assertion_id()
        not_after = auth.get_last_assertion_not_on_or_after()
        if not assertion_id:
            raise SamlError("the assertion has no ID")
        now = time.time() if now is None else now
        expires = float(not_after) if not_after else now + 300.0
        if not self._replays.first_use(assertion_id, expires + self.config.clock_skew, now):
            raise SamlError(f"assertion {assertion_id} was already used (replay)")
        attrs: dict[str, list[str]] = auth.get_attributes()
        name = auth.get_nameid()
        if self.config.name_attribute:
            values = attrs.get(self.config.name_attribute) or []
            name = values[0] if values else name
        if not name:
            raise SamlError("the assertion names no user")
        groups = tuple(attrs.get(self.config.groups_attribute, []))
        return SamlIdentity(
            name=name,
            groups=groups,
            session_index=auth.get_session_index(),
            assertion_id=assertion_id,
            expires=expires,
        )

    def logout_redirect(self, name: str, session_index: str | None, relay_state: str) -> str:
        """The IdP's SLO URL with a signed LogoutRequest for this user."""
        auth = OneLogin_Saml2_Auth(self._request_data("/saml/slo"), self._settings)
        url: str = auth.logout(return_to=relay_state, name_id=name, session_index=session_index)
        return url

    def process_slo(self, query: dict[str, str]) -> str | None:
        """Handle the IdP's LogoutResponse/LogoutRequest (redirect binding); returns the
        URL to send the browser to, if any. Raises ``SamlError`` when it is not valid."""
        auth = OneLogin_Saml2_Auth(self._request_data("/saml/slo", get=query), self._settings)
        try:
            url: str | None = auth.process_slo(keep_local_session=True)
        except (OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError) as exc:
            raise SamlError(str(exc)) from None
        if auth.get_errors():
            raise SamlError(auth.get_last_error_reason() or "invalid logout message")
        return url
