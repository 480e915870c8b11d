"""The operator console: server-rendered pages over the message center, the queue and the sellers' figures.

Support staff sign in with an API token (`relay api token create NAME`), kept in
a cookie that is HttpOnly and SameSite=Strict (and Secure over https); a bearer
header works too. The pages need no JavaScript, so they are served with a
Content-Security-Policy that allows none. Everything shown is escaped (Jinja2
autoescape): subjects, reasons and names come from hostile mail. Parties appear
by role and alias; a real address only on ?reveal=1, marked as the operator view.
"""
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader

from aliases.addresses import InvalidAddress, normalize
from aliases.center import NotFound

from ..responses import parse_age

log = logging.getLogger("relay.api")
PAGES = Path(__file__).resolve().parent.parent / "console"
COOKIE = "relay_console"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # a page may show real addresses (reveal): no copy in a shared cache
}
SINCE = ("7d", "30d", "90d")
CHART_WIDTH = 320


def _when(value: str | datetime | None) -> str:
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} h"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(PAGES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, hours=_hours)
    return env


class SignIn(HTTPException):
    """No valid token: off to the login page (303, so a browser follows it with GET)."""

    def __init__(self) -> None:
        super().__init__(303, "sign in first", headers={"Location": "/console/login", **HEADERS})


def chart_rows(sellers: list[dict]) -> dict:
    """The response-time charts' bars, in pixels: share within 24 h on 0-100 %, median and p90 on one scale."""
    longest = max([s["p90_hours"] or 0 for s in sellers] + [24.0])
    rows = []
    for s in sellers:
        share = s["share_within_24h"]
        rows.append({**s, "label": s["display_name"] or s["seller"],
                     "share_px": round((share or 0) * CHART_WIDTH), "share_text": "no figure yet" if share is None
                     else f"{share:.0%}",
                     "median_px": round((s["median_hours"] or 0) / longest * CHART_WIDTH),
                     "p90_px": round((s["p90_hours"] or 0) / longest * CHART_WIDTH)})
    return {"rows": rows, "width": CHART_WIDTH, "longest": longest}


def router(relay) -> APIRouter:
    # Imported here: app.py imports this module before it defines what is shared.
    from .app import logged_path, response_report, waiting_as_dict

    pages = APIRouter(include_in_schema=False)
    env = environment()

    def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("operator", getattr(request.state, "operator", None))
        return HTMLResponse(env.get_template(template).render(**context), status, headers=HEADERS)

    async def operator(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE)
        name = await relay.center.token_name(token) if token else None
        if name is None:
            if token:
                log.warning("console request refused", extra={
                    "path": logged_path(relay, request), "client": request.client.host if request.client else None,
                    "why": "unknown or revoked token"})
            raise SignIn()
        request.state.operator = name
        return name

    Operator = Annotated[str, Depends(operator)]

    # -- signing in and out ------------------------------------------------------------
    # CSRF: login and logout are the only POSTs, and the cookie is SameSite=Strict, so no other site's form
    # can act with it; every other page only reads.

    @pages.get("/login")
    async def login_form(request: Request) -> HTMLResponse:
        return render(request, "login.html")

    @pages.post("/login")
    async def login(request: Request, token: Annotated[str, Form()] = "") -> Response:
        token = token.strip()
        name = await relay.center.token_name(token) if token and len(token) <= 200 else None
        if name is None:
            log.warning("console login refused", extra={
                "client": request.client.host if request.client else None,
                "why": "no token" if not token else "unknown or revoked token"})
            return render(request, "login.html", 401, error="That token is not valid (unknown or revoked).")
        log.info("console login", extra={"operator": name,
                                         "client": request.client.host if request.client else None})
        response = RedirectResponse("/console/", 303, headers=HEADERS)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/console",
                            secure=request.url.scheme == "https")
        return response

    @pages.post("/logout")
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/console/login", 303, headers=HEADERS)
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    @pages.get("/console.css")
    async def stylesheet() -> Response:
        return Response((PAGES / "console.css").read_bytes(), media_type="text/css",
                        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})

    # -- pages ---------------------------------------------------------------------------

    @pages.get("/")
    async def home(request: Request, _: Operator) -> HTMLResponse:
        return render(request, "home.html", recent=await relay.center.recent(),
                      held=await relay.center.held_sellers())

    @pages.get("/search")
    async def search(request: Request, _: Operator, q: Annotated[str, Query(max_length=320)] = "") -> HTMLResponse:
        return render(request, "search.html", q=q, results=await relay.center.search(q) if q.strip() else [])

    @pages.get("/conversations/{conversation_id}")
    async def conversation(request: Request, name: Operator, conversation_id: str, reveal: bool = False
                           ) -> HTMLResponse:
        try:
            thread = await relay.center.conversation(conversation_id[:32], reveal)
        except NotFound:
            return render(request, "missing.html", 404, what="conversation", key=conversation_id)
        if reveal:
            log.info("console reveal", extra={"operator": name, "conversation": thread["conversation_id"]})
        return render(request, "conversation.html", c=thread, reveal=reveal)

    @pages.get("/queue")
    async def queue(request: Request, _: Operator) -> HTMLResponse:
        return render(request, "queue.html", items=[waiting_as_dict(item) for item in await relay.queue.waiting()])

    @pages.get("/sellers")
    async def sellers(request: Request, _: Operator, since: Annotated[str, Query(pattern=r"^\d{1,4}[smhdw]$")] = "30d"
                      ) -> HTMLResponse:
        figures = await response_report(relay.center, parse_age(since))
        return render(request, "sellers.html", report=figures, chart=chart_rows(figures["sellers"]), since=since,
                      choices=SINCE, held=await relay.center.held_sellers())

    @pages.get("/sellers/{seller}")
    async def seller(request: Request, _: Operator, seller: str) -> HTMLResponse:
        try:
            record = await relay.center.record(normalize(seller[:320]),
                                               timedelta(days=relay.config.filters.sanctions.window_days))
        except (NotFound, InvalidAddress):
            return render(request, "missing.html", 404, what="seller", key=seller)
        return render(request, "seller.html", r=record,
                      max_violations=relay.config.filters.sanctions.max_violations)

    return pages
