"""`/health/live` (the process answers; never touches the database) and `/health/ready`."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.health.service import check_readiness

router = APIRouter(prefix="/health", tags=["health"])


class Liveness(BaseModel):
    status: str


class ReadinessReport(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/ready",
    response_model=ReadinessReport,
    responses={503: {"model": ReadinessReport, "description": "A check failed; `checks` says which."}},
)
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    result = await check_readiness(state.engine, state.schema_head, state.settings.DB_READY_TIMEOUT)
    report = ReadinessReport(
        status="ok" if result.ready else "unavailable",
        checks={"database": result.database, "schema": result.schema},
    )
    return JSONResponse(report.model_dump(), status_code=200 if result.ready else 503)
