"""The FastAPI app behind ``cnnzoo serve``: the pages of ``static/`` and a small JSON API.

    GET  /, /explore, /build, /train   the pages: every static/*.html with a data-page header (cnnzoo.web.pages)
    /api/build/…, /api/explain/…, /api/neuron, /api/train/…, /api/runs/…   the API modules' routers, found
                                   the same way (build_api, explain_api, neuron_api, training)
    GET  /api/info                 which checkpoint is loaded, its classes and input size
    GET  /api/models               the registered models
    GET  /api/summary/{name}?input=CxHxW[&convention=fvcore]   the analyzer's table for one model and input size
    GET  /api/gallery, /api/gallery/{i}.png   a few test images per class of the checkpoint's dataset
    POST /api/predict              multipart, image in field ``file``: class probabilities
    POST /api/feature-maps         same input: probabilities plus every layer's feature maps
    GET  /docs                     OpenAPI (Swagger UI, its files served from the swagger-ui-bundle package: works offline)

Every problem a client can cause answers 4xx with ``{"error": "one clear line"}``; the server keeps
serving. Request bodies are capped at ``MAX_UPLOAD_BYTES`` while they are read (:class:`BodyLimit`), not
after: a declared Content-Length over the cap is refused before a byte is read, and a chunked body is
cut off as soon as it passes the cap.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import CnnzooError, ShapeError, UnknownModelError
from ..images import decode_image, open_image
from .guards import BodyDeadline, BodyLimit, HeadAsGet, HostCheck, SameOrigin
from .images import png_bytes
from .pages import api_routers, find_pages, page_router
from .session import Session

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # 10 MiB for the whole multipart body
# Seconds a request has to deliver its whole body: 10 MiB at 1 Mbit/s takes ~84 s; a stalled upload holds
# its connection no longer than this.
BODY_SECONDS = 120.0
SHOWN_CHARS = 80  # user strings echoed in errors are cut to this: a 20 KB model name is not sent back whole
MAX_ERROR_CHARS = 500
MAX_SIDE, MAX_CHANNELS = 1024, 16  # the explorer's input sizes; bigger ones are refused, not computed
_SIZE = re.compile(r"^\s*(\d{1,6})\s*[x×X,]\s*(\d{1,6})\s*[x×X,]\s*(\d{1,6})\s*$")
# The pages load nothing from elsewhere: no CDN, no external fonts (a classroom may be offline).
Invert = Literal["auto", "yes", "no"]
# Image requests decoding at once: each may hold a 16.7 M-pixel image (~70 MB, a few copies while it is
# converted), so the server's memory stays bounded however many clients send big images at the same time.
MAX_DECODING = 4
# Images up to this many pixels (a 1024×1024 photo, any drawing) skip that queue: they cost little, and a good
# request must not wait behind four huge ones (tests/test_server_memory.py: answered within 1 s throughout
# a flood of huge images).
SMALL_PIXELS = 1 << 20
# An image this small (any drawing), for a net whose prediction took under INLINE_SECONDS at warm-up, is answered
# on the event loop itself: when other processes keep the cores busy, every hand-over to a worker thread
# waits for a time slice, which costs more than the work (docs/benchmarks.md: p50 under contention).
INLINE_PIXELS, INLINE_SECONDS = 512 * 512, 0.005
_CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'"


class ApiError(CnnzooError):
    """A request the API cannot serve; ``status`` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def shown(text: str) -> str:
    """``text`` quoted, cut to SHOWN_CHARS: how a client's string appears in an error."""
    return repr(text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "...")


def parse_input_size(text: str) -> tuple[int, int, int]:
    """'3x224x224' -> (3, 224, 224); nonsense and sizes beyond the caps raise ApiError(422)."""
    m = _SIZE.match(text or "")
    if not m:
        raise ApiError(422, f"input {shown(text)} is not a size: write CxHxW, e.g. 3x224x224")
    c, h, w = (int(v) for v in m.groups())
    if min(c, h, w) < 1:
        raise ApiError(422, f"input {text!r}: channels, height and width must all be at least 1")
    if c > MAX_CHANNELS or max(h, w) > MAX_SIDE:
        raise ApiError(
            422,
            f"input {text!r} is too large: at most {MAX_CHANNELS} channels and {MAX_SIDE}×{MAX_SIDE} pixels",
        )
    return c, h, w


@lru_cache(maxsize=64)
def model_summary(name: str, input_size: tuple[int, int, int], convention: str = "cnnzoo") -> dict:
    """The analyzer's dict for one model and size (cached: the explorer asks for the same ones often)."""
    from ..analysis.summary import summary
    from ..models.source import check_model_arg

    check_model_arg(
        name, allow_code=False
    )  # a zoo name ("did you mean") or a layer string (a caret); no code
    return summary(name, input_size=input_size, convention=convention).to_dict()


def _add_offline_docs(app: FastAPI) -> None:
    """OpenAPI docs at /docs with Swagger UI's files from the swagger-ui-bundle package (FastAPI's default
    loads them from a CDN, which a machine without internet — or a strict CSP — cannot reach)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="cnnzoo API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


def create_app(
    session: Session, allowed_hosts: Iterable[str] | None = None, body_seconds: float = BODY_SECONDS
) -> FastAPI:
    """The app for ``session``. ``allowed_hosts``: the Host header values to answer (``cnnzoo serve``
    passes the names it is bound to; see :mod:`cnnzoo.web.guards`); None answers any (tests, embedding)."""
    app = FastAPI(
        title="cnnzoo",
        description="Draw a digit and watch LeNet-5 see it; explore the classic CNNs layer by layer.",
        version=_version(),
        docs_url=None,  # served below from the swagger-ui-bundle package: no CDN
        redoc_url=None,
    )
    _add_error_handlers(app)
    decoding = threading.BoundedSemaphore(MAX_DECODING)

    app.add_middleware(BodyLimit, max_bytes=MAX_UPLOAD_BYTES)

    @app.middleware("http")
    async def security_headers(request, call_next):
        response = await call_next(request)
        if not request.url.path.startswith(("/docs", "/redoc")):
            response.headers["Content-Security-Policy"] = _CSP
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    app.add_middleware(BodyDeadline, seconds=body_seconds)
    app.add_middleware(HeadAsGet)
    app.add_middleware(SameOrigin)  # before any body is read: another site's form changes nothing
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)  # outermost: a foreign Host gets nothing else
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_offline_docs(app)
    app.include_router(page_router(find_pages(STATIC)))  # every static/*.html with a data-page header
    for router in api_routers(session):  # every module of cnnzoo.web with a router (cnnzoo.web.pages)
        app.include_router(router)

    @app.get("/api/info", summary="The loaded checkpoint")
    def info() -> dict:
        return session.info()

    @app.get("/api/models", summary="Registered models")
    def models() -> dict:
        from ..models import get_model_info, list_models

        rows = []
        for name in list_models():
            i = get_model_info(name)
            rows.append(
                {
                    "name": name,
                    "input_size": list(i.input_size),
                    "family": i.family,
                    "paper": i.paper,
                    "num_classes": i.num_classes,
                    "description": i.description,
                }
            )
        return {"models": rows}

    @app.get("/api/summary/{name}", summary="The analyzer's per-layer table")
    def summary(
        name: str,
        input: str | None = Query(None, description="CxHxW, e.g. 3x224x224"),
        convention: str = Query("cnnzoo", description="cnnzoo, paper, torchinfo, fvcore, ptflops or thop"),
    ) -> dict:
        from ..models.source import default_input_size, is_layer_string

        if len(name) > SHOWN_CHARS and not is_layer_string(name):
            raise ApiError(404, f"unknown model {shown(name)}: see /api/models")
        size = parse_input_size(input) if input else default_input_size(name)
        return model_summary(name, size, convention)

    @app.get("/api/compare", summary="Networks side by side (zoo names and layer strings)")
    def compare_models(
        models: list[str] = Query(..., description="two to eight: zoo names or layer strings"),
        input: str | None = Query(None, description="CxHxW for all (default: each one's own)"),
        lang: str = Query("en", description="en or zh"),
    ) -> dict:
        from ..comparison import compare

        result = compare(*models, input_size=input, lang=lang, allow_code=False)
        return result.to_dict() | {"table": result.table()[1], "lang": lang}

    @app.get("/api/gallery", summary="Test images of the checkpoint's dataset, a few per class")
    def gallery() -> dict:
        items = session.gallery()
        classes = session.classes
        return {
            "dataset": session.dataset,
            "note": session.gallery_note(),
            "items": [
                {
                    "id": i,
                    "label": g.label,
                    "class": classes[g.label] if g.label < len(classes) else str(g.label),
                    "url": f"/api/gallery/{i}.png",
                }
                for i, g in enumerate(items)
            ],
        }

    @app.get("/api/gallery/{index}.png", summary="One gallery image, exactly as in the test set")
    def gallery_image(index: int) -> Response:
        items = session.gallery()
        if not 0 <= index < len(items):
            raise ApiError(404, f"no gallery image {index}: there are {len(items)}")
        from PIL import Image

        arr = items[index].image.permute(1, 2, 0).numpy()
        img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        return Response(png_bytes(img), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    file_doc = "the image (PNG, JPEG, …); at most 10 MiB"
    invert_doc = "auto: invert when the background differs from the dataset's (black-on-white drawings)"
    fit_doc = "crop to the strokes and centre them as the dataset's images are (for drawings)"

    async def _answer(file: UploadFile, invert: str, fit: bool, answer, inline: bool = False) -> dict:
        """``answer(prepared)`` for the uploaded image, in the thread pool. The image waits in the queue of big
        decodes only if its header (nothing decoded yet) says it is big; with ``inline``, a drawing for a
        fast net is answered on the event loop itself."""
        # BodyLimit has already held: the multipart parser could not read more than 10 MiB.
        data, name = await file.read(), file.filename or "upload"
        with open_image(data, name) as im:
            pixels = im.width * im.height

        def work() -> dict:
            with contextlib.nullcontext() if pixels <= SMALL_PIXELS else decoding:
                prepared = session.prepare(decode_image(data, name), invert, fit)
            return answer(prepared)

        if inline and pixels <= INLINE_PIXELS and session.predict_seconds < INLINE_SECONDS:
            return work()
        return await run_in_threadpool(work)

    @app.post("/api/predict", summary="Class probabilities for one image")
    async def predict(
        file: UploadFile = File(..., description=file_doc),
        invert: Invert = Form("auto", description=invert_doc),
        fit: bool = Form(False, description=fit_doc),
    ) -> dict:
        return await _answer(file, invert, fit, session.predict, inline=True)

    @app.post("/api/feature-maps", summary="Probabilities and every layer's feature maps")
    async def feature_maps(
        file: UploadFile = File(..., description=file_doc),
        invert: Invert = Form("auto", description=invert_doc),
        fit: bool = Form(False, description=fit_doc),
    ) -> dict:
        return await _answer(
            file, invert, fit, lambda p: {**session.predict(p), "layers": session.feature_maps(p)}
        )

    return app


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        if len(message) > MAX_ERROR_CHARS:
            message = message[: MAX_ERROR_CHARS - 3] + "..."
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(CnnzooError)
    async def cnnzoo_error(request, exc: CnnzooError):
        if isinstance(exc, ApiError):
            return error(exc.status, str(exc))
        if isinstance(exc, UnknownModelError):
            return error(404, str(exc))
        if isinstance(exc, ShapeError):
            return error(422, str(exc))
        return error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        # A form sent urlencoded: FastAPI would say "Expected UploadFile, received: <class 'str'>".
        multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
        if not multipart and any(tuple(e.get("loc", ()))[-1:] == ("file",) for e in exc.errors()):
            return error(422, "send the image as multipart/form-data field 'file'")
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid"))
        return error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):  # a bug, not the client's fault; say so, keep serving
        return error(500, f"internal error: {type(exc).__name__}: {exc}")


def _version() -> str:
    from .. import __version__

    return __version__
