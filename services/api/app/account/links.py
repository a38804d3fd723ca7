"""Mailed links over HTTP: how a refused link is answered (`LinkRefused`), and the page and form routes
every mailed link has, built by one factory each.

A link's GET page only reads and shows a button (a mail scanner's prefetch spends nothing); the button's
POST form acts. Whatever refuses a link (JSON, page or form) raises `LinkRefused`: its handler rolls the
request back, so the link stays unspent, and keeps only the audited refusal (ASVS 16.3).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import service
from app.account.models import TokenPurpose
from app.account.pages import ButtonPage, Pages, PagesDep
from app.core.context import RequestContext
from app.core.dependencies import ContextDep, SessionDep
from app.core.errors import UNAVAILABLE, PyauthError, RolledBackRefusal, error_responses

T = TypeVar("T")

# What a link's form POSTs, and what its page's query carries.
FormToken = Annotated[str, Form(max_length=512)]
QueryToken = Annotated[str, Query(max_length=512)]
# A form's action, as its dependency hands it over: redeem the link, answer the page that says it worked.
Action = Callable[[], Awaitable[HTMLResponse]]

# The GET of a mailed link shares its path with a JSON POST, so it is in the document too: the methods a
# path serves (its 405's and OPTIONS's `Allow`) are the methods the document lists for it.
HTML = {"text/html": {"schema": {"type": "string"}}}
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "An HTML page.", "content": HTML},
    **error_responses(422, for_html_route=True),
}
LINK_PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PAGE_RESPONSES,
    **error_responses(429, UNAVAILABLE, for_html_route=True),
    400: {
        "description": "The link is refused (invalid, used, expired or superseded): a page that says why.",
        "content": HTML,
    },
}


class LinkRefused(RolledBackRefusal):
    """A refused mailed link. Answered with the error itself (JSON), or with `page` when a page asked."""

    def __init__(
        self,
        error: PyauthError,
        *,
        db: AsyncSession,
        token: str,
        purpose: TokenPurpose,
        ctx: RequestContext,
        page: Callable[[], HTMLResponse] | None = None,
    ) -> None:
        super().__init__(error, db=db)
        self.token, self.purpose, self.ctx, self.page = token, purpose, ctx, page

    async def keep(self, db: AsyncSession) -> None:
        await service.record_refused_link(
            db, self.error, token=self.token, purpose=self.purpose, ctx=self.ctx
        )

    def answer(self) -> HTMLResponse | None:
        return self.page() if self.page is not None else None


async def redeeming(
    db: AsyncSession, action: Awaitable[T], *, token: str, purpose: TokenPurpose, ctx: RequestContext
) -> T:
    """Run a JSON endpoint's redemption of a link; a refusal becomes `LinkRefused`."""
    try:
        return await action
    except PyauthError as error:
        raise LinkRefused(error, db=db, token=token, purpose=purpose, ctx=ctx) from error


@dataclass(frozen=True)
class MailedLink:
    """One kind of mailed link, as its page and form routes need it."""

    purpose: TokenPurpose
    refused_title: str  # the title of the page that says why the link was refused
    rate_limit: Any  # the `RateLimit(...)` dependency of its routes

    def add_route(
        self, router: APIRouter, path: str, endpoint: Callable[..., Any], method: str, **options: Any
    ) -> None:
        """One of the link's HTML routes, behind its rate limit."""
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            dependencies=[self.rate_limit],
            response_class=HTMLResponse,
            **options,
        )


def add_link_page(router: APIRouter, path: str, link: MailedLink, button: ButtonPage, *, name: str) -> None:
    """The GET a mailed link opens: a page with `button` if the link would work, else why not. Reads
    only."""

    async def page_route(
        db: SessionDep, ctx: ContextDep, page: PagesDep, token: QueryToken = ""
    ) -> HTMLResponse:
        try:
            await service.check_link(db, token=token, purpose=link.purpose, ctx=ctx)
        except PyauthError as error:
            raise _refused(link, error, db=db, token=token, ctx=ctx, page=page) from error
        return page.confirm_button(button, token=token)

    link.add_route(router, path, page_route, "GET", name=name, responses=LINK_PAGE_RESPONSES)


def add_link_form(
    router: APIRouter, path: str, link: MailedLink, action: Callable[..., Action], *, name: str
) -> None:
    """The POST of a link page's button. `action` is a dependency: it declares what the link's redemption
    needs (a hasher, the new password's field, ...) and returns the `Action` that redeems and answers."""

    async def form_route(
        db: SessionDep,
        ctx: ContextDep,
        page: PagesDep,
        act: Annotated[Action, Depends(action)],
        token: FormToken = "",
    ) -> HTMLResponse:
        try:
            return await act()
        except PyauthError as error:
            raise _refused(link, error, db=db, token=token, ctx=ctx, page=page) from error

    link.add_route(router, path, form_route, "POST", name=name, include_in_schema=False)


def _refused(
    link: MailedLink, error: PyauthError, *, db: AsyncSession, token: str, ctx: RequestContext, page: Pages
) -> LinkRefused:
    return LinkRefused(
        error,
        db=db,
        token=token,
        purpose=link.purpose,
        ctx=ctx,
        page=lambda: page.refused(link.refused_title, error),
    )
