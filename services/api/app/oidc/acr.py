"""`acr` (OpenID Connect Core §2), the authentication context class of a login, derived from its `amr`
(RFC 8176): whether it took a second factor (`amr` has "mfa") or the password alone. Access tokens
(`app.auth.issuing`) and ID tokens (`app.oidc.id_token`) carry it; discovery lists the two values, which
`acr_values` may ask for (`app.oidc.endpoints`). A resource server that needs MFA may check either claim."""

from collections.abc import Sequence
from typing import Final

ACR_MFA: Final = "urn:pyauth:acr:mfa"
ACR_PASSWORD: Final = "urn:pyauth:acr:pwd"  # noqa: S105 - an acr value, not a password
ACR_VALUES: Final = (ACR_PASSWORD, ACR_MFA)


def acr_of(amr: Sequence[str]) -> str:
    return ACR_MFA if "mfa" in amr else ACR_PASSWORD
