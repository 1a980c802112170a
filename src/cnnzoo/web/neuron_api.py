"""``POST /api/neuron``: what one neuron of the predict page sees (:func:`cnnzoo.web.neuron.neuron_view`).

The client sends the image again with the neuron's layer, channel, y and x: the server keeps no image
between requests, so its memory does not grow with its visitors. At most ``MAX_AT_ONCE`` of these run at
once (each holds a forward pass with its graph for the gradient).
"""

from __future__ import annotations

import threading

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from ..images import decode_image
from .neuron import neuron_view
from .session import Session

__all__ = ["make_router"]

MAX_AT_ONCE = 2


def make_router(session: Session) -> APIRouter:
    router = APIRouter()
    running = threading.BoundedSemaphore(MAX_AT_ONCE)

    @router.post("/api/neuron", summary="One neuron: receptive field, input gradient, its multiply-add")
    async def neuron(
        file: UploadFile = File(..., description="the image, as sent to /api/feature-maps"),
        layer: str = Form(..., max_length=200, description="the layer's label on the page, e.g. C3"),
        channel: int = Form(..., ge=0, le=1 << 20),
        y: int = Form(0, ge=0, le=1 << 14),
        x: int = Form(0, ge=0, le=1 << 14),
        invert: str = Form("auto", pattern="^(auto|yes|no)$"),
        fit: bool = Form(False),
    ) -> dict:
        data, name = await file.read(), file.filename or "upload"

        def work() -> dict:
            with running:
                prepared = session.prepare(decode_image(data, name), invert, fit)
                return neuron_view(session, prepared, layer, channel, y, x)

        return await run_in_threadpool(work)

    return router
