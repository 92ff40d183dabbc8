"""The codec endpoint of the Temporal UI and CLI (Temporal's "codec server" protocol):
`POST /codec/decode` with `{"payloads": [{"metadata": {...}, "data": "..."}]}` (protobuf
JSON, bytes in base64) answers the same payloads decrypted by Cobro's payload codec
(`cobro.temporal_codec`), so that a logged-in user reads a Dunning history in the Temporal
UI while Temporal itself keeps only ciphertext.

Who: a dashboard session (the UI calls with its credentials: same host, another port) or an
API token (`temporal workflow show --codec-endpoint http://HOST:8000/codec --codec-auth
"Bearer TOKEN"`), of at least the role `COBRO_CODEC_ROLE` (default viewer); anonymous
calls get 401, lesser roles 403. CORS answers only the Temporal UI's origins
(`COBRO_CODEC_CORS_ORIGINS`, default the embedded UI's). Decoding changes nothing: no CSRF
token (the UI could not send one); only the allowed origins may read the answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from google.protobuf.json_format import ParseError
from starlette.exceptions import HTTPException
from temporalio.api.common.v1 import Payloads

from cobro.settings import Settings
from cobro.temporal_codec import PayloadKeyError, codec
from cobro.web.auth import require

ALLOWED_HEADERS = ("content-type", "x-namespace", "authorization", "caller-type")


def allowed_origins(settings: Settings) -> set[str]:
    if settings.codec_cors_origins.strip():
        return {o.strip().rstrip("/") for o in settings.codec_cors_origins.split(",") if o.strip()}
    host = settings.temporal_address.rpartition(":")[0] or "127.0.0.1"
    port = settings.temporal_ui_port
    return {f"http://{host}:{port}", f"http://localhost:{port}", f"http://127.0.0.1:{port}"}


def codec_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    origins = allowed_origins(settings)
    payload_codec = codec(settings)

    def cors(request: Request, response: Response) -> Response:
        origin = request.headers.get("origin", "")
        if origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
        return response

    @router.options("/codec/{action}", include_in_schema=False)
    async def preflight(request: Request, action: str) -> Response:
        origin = request.headers.get("origin", "")
        if origin not in origins:
            return JSONResponse({"detail": f"origin {origin or '(none)'} not allowed"}, 403)
        response = Response(status_code=204)
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = ", ".join(ALLOWED_HEADERS)
        response.headers["Access-Control-Max-Age"] = "600"
        return cors(request, response)

    @router.post("/codec/decode", include_in_schema=False)
    async def decode(request: Request) -> Response:
        try:
            require(request, settings.codec_role)
        except HTTPException as exc:  # answered with CORS headers: the UI reads why
            return cors(request, JSONResponse({"detail": exc.detail}, exc.status_code))
        try:
            body: Any = await request.json()
            payloads = json_format.ParseDict(body, Payloads(), ignore_unknown_fields=True)
        except (ValueError, ParseError) as exc:
            detail = f"expected {{'payloads': [...]}} (protobuf JSON): {str(exc)[:200]}"
            return cors(request, JSONResponse({"detail": detail}, 400))
        if payload_codec is None:  # encryption off: nothing is encrypted
            decoded = list(payloads.payloads)
        else:
            try:
                decoded = await payload_codec.decode(payloads.payloads)
            except PayloadKeyError as exc:
                return cors(request, JSONResponse({"detail": str(exc)}, 422))
        answer = json_format.MessageToDict(Payloads(payloads=decoded))
        return cors(request, JSONResponse({"payloads": answer.get("payloads", [])}))

    return router
