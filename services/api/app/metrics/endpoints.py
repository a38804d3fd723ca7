"""`GET /metrics`: the Prometheus text exposition, left out of the OpenAPI schema.

Served on METRICS_PORT only (`listener`), or on the public port with METRICS_ON_PUBLIC_PORT. It is open
unless METRICS_TOKEN is set; then it answers 401 to any request without
`Authorization: Bearer <METRICS_TOKEN>`. METRICS_ENABLED=false removes the route altogether (404).
"""

import hashlib
import hmac
from types import MappingProxyType

from fastapi import APIRouter, Request, Response

from app.core.config import Settings
from app.core.dependencies import SettingsDep
from app.core.errors import PyauthError
from app.metrics import exposition
from app.metrics.batch import UPDATES
from app.metrics.gauges import ResourceGauges

router = APIRouter(include_in_schema=False)


class MetricsTokenRequired(PyauthError):
    status_code = 401
    code = "invalid_token"
    message = "The metrics require a bearer token."
    headers = MappingProxyType({"WWW-Authenticate": 'Bearer realm="metrics"'})


def require_metrics_token(settings: Settings, authorization: str | None) -> None:
    """Refuse unless METRICS_TOKEN is unset or `authorization` carries it. Compares digests in constant
    time, so neither the token nor its length can be found by timing."""
    expected = settings.METRICS_TOKEN.get_secret_value() if settings.METRICS_TOKEN else ""
    if not expected:
        return
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(_digest(presented.strip()), _digest(expected)):
        raise MetricsTokenRequired()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@router.get("/metrics")
async def metrics(request: Request, settings: SettingsDep) -> Response:
    require_metrics_token(settings, request.headers.get("authorization"))
    gauges: ResourceGauges = request.app.state.resource_gauges
    gauges.publish()
    UPDATES.flush()  # this process's requests so far, not those of FLUSH_INTERVAL_SECONDS ago
    return Response(exposition.render(), media_type=exposition.CONTENT_TYPE)
