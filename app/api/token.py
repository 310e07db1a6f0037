"""/api/token: access key -> JWT (Orkes' TokenResource), and who the caller is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import AuthDep
from app.auth.permissions import Permission, Principal, require
from app.schemas.auth import Token, TokenRequest, UserInfo

router = APIRouter(prefix="/api/token", tags=["token-resource"])


async def _token_endpoint_enabled(auth: AuthDep) -> None:
    # Before the body is validated: with auth disabled the answer is 404 whatever was sent,
    # which is how the official clients detect an open server.
    auth.ensure_enabled()


@router.post(
    "",
    response_model=Token,
    summary="Generate a JWT from an access key (no token needed)",
    dependencies=[Depends(_token_endpoint_enabled)],
)
async def generate_token(auth: AuthDep, body: Annotated[TokenRequest, Body()]) -> Response:
    token = await auth.issue_token(body.keyId, body.keySecret, body.expiration)
    return JSONResponse({"token": token})


@router.get("/userInfo", response_model=UserInfo, summary="The caller's identity and roles")
async def user_info(
    auth: AuthDep,
    request: Request,
    caller: Annotated[Principal, require(Permission.AUTHENTICATED)],
    claims: bool = False,
) -> Response:
    token_claims = auth.token_claims(request.headers) if claims else None
    return JSONResponse(auth.user_info(caller, token_claims))
