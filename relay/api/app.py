"""The HTTP API the marketplace backend calls: FastAPI, so every request is validated (422 naming the
field) and the OpenAPI document at /openapi.json is generated from the same models.

Every endpoint needs a bearer token (`relay api token create NAME`); the relay
keeps only its SHA-256. Error bodies say what is wrong in the caller's terms
and never show a party's address the caller did not send.
"""

import logging
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import SQLAlchemyError

from aliases.addresses import InvalidAddress, normalize
from aliases.center import NotFound
from aliases.views import StoreError

from ..responses import parse_age, report
from ..sending import Refusal
from ..standard import TemplateError
from . import console

log = logging.getLogger("relay.api")
bearer = HTTPBearer(auto_error=False, description="a token from `relay api token create NAME`")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _address(value: str) -> str:
    try:
        return normalize(value)
    except InvalidAddress:
        raise ValueError("not a valid email address") from None


def _utc(value: datetime) -> datetime:
    """In UTC: SQLite keeps the clock time and drops the offset, so everything is stored as UTC."""
    if value.tzinfo is None:
        raise ValueError("give a time zone, e.g. 2026-12-24T00:00:00Z")
    return value.astimezone(timezone.utc)


class OpenConversation(Strict):
    buyer: str = Field(description="the buyer's real address")
    seller: str = Field(description="the seller's real address")
    buyer_name: str | None = Field(None, max_length=200)
    seller_name: str | None = Field(None, max_length=200)
    buyer_locale: str | None = Field(None, pattern=r"^(en|es|it|id)$")
    seller_locale: str | None = Field(None, pattern=r"^(en|es|it|id)$")
    order_id: str | None = Field(None, max_length=100)
    category: str | None = Field(None, max_length=100)
    _addresses = field_validator("buyer", "seller")(classmethod(lambda cls, v: _address(v)))


class Opened(BaseModel):
    conversation_id: str
    buyer_alias: str
    seller_alias: str


class OptOut(Strict):
    buyer: str
    _addresses = field_validator("buyer")(classmethod(lambda cls, v: _address(v)))


class SellerAddress(Strict):
    address: str = Field(description="one more address the seller may send from")
    _addresses = field_validator("address")(classmethod(lambda cls, v: _address(v)))


class Vacation(Strict):
    until: datetime = Field(description="when the seller is back (ISO 8601 with a time zone)")
    since: datetime | None = Field(None, description="default: now")

    @field_validator("until", "since")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        return _utc(value) if value is not None else None


class FlagRequest(Strict):
    reason: str | None = Field(None, max_length=500)


class Delivery(Strict):
    delivered_at: datetime

    @field_validator("delivered_at")
    @classmethod
    def _zoned(cls, value: datetime) -> datetime:
        return _utc(value)


class StandardRequest(Strict):
    template: str = Field(max_length=100, description="a name from GET /templates")
    fields: dict[str, str] = Field(default_factory=dict)


class SentMessage(BaseModel):
    message_id: int
    relay_message_id: str
    subject: str
    locale: str
    held: bool


class Done(BaseModel):
    ok: bool = True
    detail: str | None = None


def _problem(status: int, detail: str, field: str | None = None) -> HTTPException:
    return HTTPException(status, detail=[{"loc": ["body", field], "msg": detail, "type": "value_error"}]
                         if field else detail)


Seller = Annotated[str, Path(description="the seller's real address", max_length=320)]


def build(relay) -> FastAPI:
    """The API of a running relay: its store, message center, queue and standard messages."""
    app = FastAPI(title="marketplace-relay API", version="1", description=__doc__,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)

    async def caller(request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        name = await relay.center.token_name(credentials.credentials) if credentials else None
        if name is None:
            log.warning("api request refused", extra={
                "path": logged_path(relay, request), "method": request.method,
                "client": request.client.host if request.client else None,
                "why": "no bearer token" if credentials is None else "unknown or revoked token"})
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        request.state.caller = name
        return name

    Caller = Annotated[str, Depends(caller)]

    @app.exception_handler(NotFound)
    async def _not_found(_request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, 404)

    @app.exception_handler(Refusal)
    async def _refused(_request, exc: Refusal):
        return JSONResponse({"detail": str(exc)}, 409)

    @app.exception_handler(TemplateError)
    async def _template(_request, exc: TemplateError):
        field, _, message = str(exc).partition(": ")
        about_fields = field == "fields" or field.startswith("fields.")
        loc = ["body", *field.split(".")] if about_fields else ["body", "template"]
        return JSONResponse({"detail": [{"loc": loc, "msg": message if about_fields else str(exc),
                                         "type": "value_error"}]}, 422)

    @app.exception_handler(StoreError)
    async def _store(_request, exc: StoreError):
        return JSONResponse({"detail": str(exc)}, 409)

    @app.exception_handler(SQLAlchemyError)
    async def _database(request, exc: SQLAlchemyError):
        log.error("api request failed on the store", extra={"path": logged_path(relay, request),
                                                            "error": type(exc).__name__})
        return JSONResponse({"detail": "the store is unavailable; try again"}, 503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        # FastAPI's own body, without echoing the input: a field the caller got wrong is named, not repeated.
        return JSONResponse({"detail": [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                                        for e in exc.errors()]}, 422)

    # -- conversations ----------------------------------------------------------------

    @app.post("/conversations", response_model=Opened, tags=["conversations"],
              summary="Open a conversation (idempotent: the same buyer, seller and order give the same aliases)")
    async def open_conversation(body: OpenConversation, _: Caller) -> Opened:
        opened = await relay.store.open_conversation(
            body.buyer, body.seller, buyer_name=body.buyer_name, seller_name=body.seller_name,
            buyer_locale=body.buyer_locale, seller_locale=body.seller_locale, order_id=body.order_id,
            category=body.category)
        return Opened(**opened.__dict__)

    @app.get("/conversations", tags=["conversations"], summary="Find conversations by order id, alias or party")
    async def find_conversations(_: Caller, q: Annotated[str, Query(min_length=1, max_length=320)]) -> list[dict]:
        return await relay.center.search(q)

    @app.get("/conversations/{conversation_id}", tags=["conversations"],
             summary="A conversation with its message log, as each party saw it")
    async def read_conversation(conversation_id: Annotated[str, Path(max_length=32)], _: Caller,
                                reveal: Annotated[bool, Query(description="operators: show real addresses")] = False
                                ) -> dict:
        return await relay.center.conversation(conversation_id, reveal)

    @app.put("/conversations/{conversation_id}/delivery", response_model=Done, tags=["orders"],
             summary="When the order reached the buyer (review requests go 5 to 30 days after)")
    async def delivered(conversation_id: Annotated[str, Path(max_length=32)], body: Delivery, _: Caller) -> Done:
        await relay.center.set_delivered(conversation_id, body.delivered_at)
        return Done()

    @app.post("/conversations/{conversation_id}/review-request", response_model=SentMessage, tags=["orders"],
              summary="Request a review: once per order, 5 to 30 days after delivery, not to opted-out buyers")
    async def review_request(conversation_id: Annotated[str, Path(max_length=32)], _: Caller) -> SentMessage:
        return SentMessage(**(await relay.standard.review_request(conversation_id)).__dict__)

    @app.post("/conversations/{conversation_id}/standard-messages", response_model=SentMessage, tags=["orders"],
              summary="Send a standard message by name, in the buyer's language")
    async def standard_message(conversation_id: Annotated[str, Path(max_length=32)], body: StandardRequest,
                               _: Caller) -> SentMessage:
        return SentMessage(**(await relay.standard.standard(conversation_id, body.template, body.fields)).__dict__)

    @app.get("/templates", tags=["orders"], summary="The standard messages and the fields each needs")
    async def templates(_: Caller) -> list[dict]:
        return [{"name": name, "fields": sorted(relay.templates.get(name, "en").fields),
                 "critical": relay.templates.get(name, "en").critical} for name in relay.templates.names()]

    # -- messages ---------------------------------------------------------------------

    @app.post("/messages/{message_id}/no-response-needed", response_model=Done, tags=["messages"],
              summary="The seller need not answer this buyer's message: it leaves the response-time clock")
    async def no_response_needed(message_id: int, _: Caller) -> Done:
        await relay.center.no_response_needed(message_id, True)
        return Done()

    @app.delete("/messages/{message_id}/no-response-needed", response_model=Done, tags=["messages"])
    async def response_needed(message_id: int, _: Caller) -> Done:
        await relay.center.no_response_needed(message_id, False)
        return Done()

    @app.post("/messages/{message_id}/flags", response_model=Done, tags=["messages"],
              summary="Flag a seller's delivered message: it goes into the seller's record")
    async def flag(message_id: int, body: FlagRequest, _: Caller) -> Done:
        sanctions = relay.config.filters.sanctions
        held = await relay.center.flag(message_id, "marketplace", body.reason or "flagged by the marketplace",
                                       sanctions.max_violations if sanctions.enabled else None,
                                       timedelta(days=sanctions.window_days))
        return Done(detail="the seller is now on hold" if held else None)

    # -- parties ----------------------------------------------------------------------

    @app.post("/optouts", response_model=Done, tags=["parties"], summary="A buyer opts out of unsolicited messages")
    async def opt_out(body: OptOut, _: Caller) -> Done:
        await relay.store.set_opt_out(body.buyer, True)
        return Done()

    @app.delete("/optouts/{buyer}", response_model=Done, tags=["parties"])
    async def opt_in(buyer: Annotated[str, Path(max_length=320)], _: Caller) -> Done:
        await relay.store.set_opt_out(_path_address(buyer, "buyer"), False, known_only=True)
        return Done()

    @app.post("/sellers/{seller}/addresses", response_model=Done, tags=["parties"],
              summary="Let a seller send from one more address")
    async def seller_address(seller: Seller, body: SellerAddress, _: Caller) -> Done:
        await relay.store.add_seller_address(_path_address(seller, "seller"), body.address)
        return Done()

    @app.put("/sellers/{seller}/vacation", response_model=Done, tags=["parties"],
             summary="The seller is away: buyers get one automatic reply per conversation")
    async def vacation(seller: Seller, body: Vacation, _: Caller) -> Done:
        since = body.since or datetime.now(timezone.utc)
        if body.until <= since:
            raise _problem(422, "must be after since (or now)", "until")
        await relay.center.set_vacation(_path_address(seller, "seller"), body.until, body.since)
        return Done()

    @app.delete("/sellers/{seller}/vacation", response_model=Done, tags=["parties"])
    async def back(seller: Seller, _: Caller) -> Done:
        await relay.center.set_vacation(_path_address(seller, "seller"), None)
        return Done()

    @app.get("/sellers/{seller}/record", tags=["parties"],
             summary="The seller's violations (flags, blocked messages), hold and vacation")
    async def seller_record(seller: Seller, _: Caller) -> dict:
        return await relay.center.record(_path_address(seller, "seller"),
                                         timedelta(days=relay.config.filters.sanctions.window_days))

    @app.post("/sellers/{seller}/reinstate", response_model=Done, tags=["parties"],
              summary="Lift a hold: the seller's held messages are delivered")
    async def reinstate(seller: Seller, _: Caller) -> Done:
        released = await relay.center.reinstate(_path_address(seller, "seller"))
        return Done(detail=f"{released} held message(s) released")

    # -- operations -------------------------------------------------------------------

    @app.get("/queue", tags=["operations"], summary="What waits to be delivered")
    async def queue(_: Caller) -> list[dict]:
        return [waiting_as_dict(item) for item in await relay.queue.waiting()]

    @app.get("/reports/response-times", tags=["operations"], summary="Per seller: contacts and response times")
    async def response_times(_: Caller, since: Annotated[str, Query(pattern=r"^\d+[smhdw]$")] = "30d") -> dict:
        return await response_report(relay.center, parse_age(since))

    app.include_router(console.router(relay), prefix="/console")
    return app


def logged_path(relay, request: Request) -> str:
    """A request's path for the log: /sellers/{seller}/... names a real address, written as its pseudonym."""
    labels = relay.decider.labels
    return "/".join(labels(part) if "@" in part else part for part in request.url.path.split("/"))


def _path_address(value: str, field: str) -> str:
    try:
        return normalize(value)
    except InvalidAddress:
        raise HTTPException(422, [{"loc": ["path", field], "msg": "not a valid email address",
                                   "type": "value_error"}]) from None


def waiting_as_dict(item) -> dict:
    return {"id": item.id, "kind": item.kind, "conversation": item.conversation_id, "recipient": item.recipient,
            "since": item.created_at.isoformat(), "next_attempt": item.due_at.isoformat(), "attempts": item.attempts,
            "last_answer": item.last_reply, "claimed_by": item.leased_by, "held": item.held}


async def response_report(center, age: timedelta) -> dict:
    now = datetime.now(timezone.utc)
    since = now - age
    rows = await center.response_rows(since)
    return {"since": since.isoformat(), "until": now.isoformat(),
            "sellers": [figures.as_dict() for figures in report(rows, since, now)]}
