"""`/health/live` (the process answers; never touches the database) and `/health/ready`. Both answer 503
`draining` while the process drains before a shutdown (`app.health.draining`)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.health.draining import is_draining
from app.health.service import check_readiness

router = APIRouter(prefix="/health", tags=["health"])


class Liveness(BaseModel):
    status: str


class ReadinessReport(BaseModel):
    status: str
    checks: dict[str, str]


DRAINING = "draining"


@router.get(
    "/live",
    response_model=Liveness,
    responses={503: {"model": Liveness, "description": "Draining before a shutdown: send no new requests."}},
)
async def live() -> Liveness | JSONResponse:
    if is_draining():
        return JSONResponse(Liveness(status=DRAINING).model_dump(), status_code=503)
    return Liveness(status="ok")


@router.get(
    "/ready",
    response_model=ReadinessReport,
    responses={
        503: {
            "model": ReadinessReport,
            "description": "A check failed, `checks` says which; or draining before a shutdown.",
        }
    },
)
async def ready(request: Request) -> JSONResponse:
    if is_draining():
        return JSONResponse(ReadinessReport(status=DRAINING, checks={}).model_dump(), status_code=503)
    state = request.app.state
    result = await check_readiness(state.engine, state.schema_head, state.settings.DB_READY_TIMEOUT)
    report = ReadinessReport(
        status="ok" if result.ready else "unavailable",
        checks={"database": result.database, "schema": result.schema},
    )
    return JSONResponse(report.model_dump(), status_code=200 if result.ready else 503)
