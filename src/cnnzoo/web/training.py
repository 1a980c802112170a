"""The Train page's routes: start and stop a run, stream it live, replay any run with snapshots, use it.

    GET  /api/train/options                  models per dataset on disk, recipes, the options' ranges
    POST /api/train/start                    form: model, dataset, epochs, limit, lr, recipe (batch_size)
    POST /api/train/stop                     ends the run between two steps; its last checkpoint stays
    GET  /api/train/state                    the current run, its progress lines and snapshot epochs
    GET  /api/train/events                   the same as Server-Sent Events: "state", then "progress",
                                             "snapshot" and "status" as they happen
    GET  /api/runs                           the runs folder's runs that have snapshots
    GET  /api/runs/{id}/progress?offset=N    a run's progress lines (its curves), 1 MiB a page
    GET  /api/runs/{id}/snapshots/{epoch}    one epoch's snapshot (filters, maps, confusion, mistakes)
    POST /api/runs/{id}/use                  the predict page serves this run from now on

The runs folder is ``app.state.runs_dir`` (``cnnzoo serve --runs-dir``; default ``runs``). A browser that
goes away stops nothing: the run lives in its own process, and a page that (re)connects first gets the
whole state.
"""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from ..config import TrainConfig
from ..rundir import lock_holder
from ..train.recipes import RECIPE_NAMES
from ..train.snapshots import SNAPSHOTS, snapshot_name
from .session import Session, load_session
from .train_jobs import Trainer, TrainError, datasets_on_disk, list_runs, models_for, run_path, run_state

__all__ = ["make_router", "adopt"]

POLL_SECONDS = 0.5  # how often the event stream looks at the run's files
KEEPALIVE_SECONDS = 15
# The page's runs hold out 10% of the training images, as `cnnzoo train` does by default, whatever the recipe:
# the validation dots on its curves come from them
VALIDATION_SPLIT = 0.1


def adopt(session: Session, new: Session, lock: threading.Lock) -> None:
    """Make ``session`` (the object the app's routes hold) serve ``new``'s model: its fields are replaced
    under ``lock``; a request already running finishes with the model it started with."""
    with lock:
        for name, value in vars(new).items():
            if name != "_lock":
                setattr(session, name, value)


def make_router(session: Session) -> APIRouter:
    trainer = Trainer()
    swap = threading.Lock()

    @asynccontextmanager
    async def lifespan(app):
        await run_in_threadpool(
            trainer.adopt, Path(getattr(app.state, "runs_dir", "runs"))
        )  # a crash's orphan
        yield
        await run_in_threadpool(trainer.shutdown)  # a server that stops ends its run cleanly

    router = APIRouter(lifespan=lifespan)

    def runs_dir(request: Request) -> Path:
        return Path(getattr(request.app.state, "runs_dir", "runs"))

    def data_dir(request: Request) -> str | None:
        return getattr(request.app.state, "data_dir", None)

    def fail(e: TrainError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=e.status)

    @router.get("/api/train/options", summary="What the Train page offers")
    def options(request: Request) -> dict:
        datasets = datasets_on_disk(data_dir(request))
        rules = {f.name: f.metadata["rule"] for f in fields(TrainConfig) if "rule" in f.metadata}
        return {
            "datasets": datasets,
            "models": {d: models_for(d) for d in datasets},
            "recipes": list(RECIPE_NAMES),
            "ranges": {
                k: {"min": rules[k].lo, "max": rules[k].hi, "text": rules[k].describe()}
                for k in ("epochs", "limit", "lr", "batch_size")
            },
            "defaults": {
                "model": "lenet5_modern",
                "dataset": "fashion-mnist",
                "epochs": 5,
                "recipe": "default",
            },
        }

    @router.post("/api/train/start", summary="Start a run (one at a time)")
    def start(
        request: Request,
        model: str = Form("lenet5_modern"),
        dataset: str = Form("fashion-mnist"),
        epochs: int = Form(5),
        limit: int | None = Form(None),
        lr: float | None = Form(None),
        recipe: str = Form("default"),
        batch_size: int | None = Form(None),
        validation_split: float = Form(VALIDATION_SPLIT),
    ):
        params = {
            "model": model,
            "dataset": dataset,
            "epochs": epochs,
            "limit": limit,
            "lr": lr,
            "recipe": recipe,
            "batch_size": batch_size,
            "validation_split": validation_split,
        }
        try:
            return trainer.start(params, runs_dir(request), data_dir(request))
        except TrainError as e:
            return fail(e)

    @router.post("/api/train/stop", summary="Stop the run; its last checkpoint stays (resumable)")
    def stop():
        try:
            return trainer.stop()
        except TrainError as e:
            return fail(e)

    def current_state(request: Request) -> dict:
        job = trainer.state()
        state = (
            run_state(runs_dir(request), job["id"]) if job else {"progress": [], "offset": 0, "snapshots": []}
        )
        return {"job": job, **state}

    @router.get("/api/train/state", summary="The current run: status, progress lines, snapshot epochs")
    def state(request: Request) -> dict:
        return current_state(request)

    @router.get("/api/train/events", summary="The current run as Server-Sent Events")
    async def events(request: Request) -> StreamingResponse:
        return StreamingResponse(
            _stream(request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _stream(request: Request):
        """First the whole state (a reconnecting page redraws from it), then what changes. The stream ends
        once the run it shows has ended and everything is sent (the page then closes it)."""
        state = await run_in_threadpool(current_state, request)
        yield _event("state", state)
        job = state["job"]
        run_id, offset, sent = (job or {}).get("id"), state["offset"], set(state["snapshots"])
        status, idle = (job or {}).get("status"), 0.0
        if status in ("finished", "stopped", "failed"):
            return
        while not await request.is_disconnected():
            await asyncio.sleep(POLL_SECONDS)
            now = trainer.state()
            if (now or {}).get("id") != run_id:  # a new run began: start over with its whole state
                state = await run_in_threadpool(current_state, request)
                yield _event("state", state)
                job = state["job"]
                run_id, offset, sent, status = (
                    job["id"],
                    state["offset"],
                    set(state["snapshots"]),
                    job["status"],
                )
                continue
            if run_id is None:
                idle += POLL_SECONDS
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                continue
            new = await run_in_threadpool(run_state, runs_dir(request), run_id, offset)
            if new["progress"]:
                yield _event("progress", new["progress"])
            offset = new["offset"]
            for epoch in new["snapshots"]:
                if epoch not in sent:
                    sent.add(epoch)
                    yield _event("snapshot", {"run": run_id, "epoch": epoch})
            if now["status"] != status:
                status = now["status"]
                yield _event("status", now)
                if status in ("finished", "stopped", "failed"):
                    return

    @router.get("/api/runs", summary="Runs in the runs folder that have snapshots, newest first")
    def runs(request: Request) -> dict:
        return {"runs": list_runs(runs_dir(request)), "running": trainer.running_id()}

    @router.get("/api/runs/{run_id}/progress", summary="A run's progress lines, a page at a time")
    async def progress(request: Request, run_id: str, offset: int = Query(0, ge=0, le=2**62)):
        try:
            path = await run_in_threadpool(run_path, runs_dir(request), run_id)
        except TrainError as e:
            return fail(e)
        return await run_in_threadpool(run_state, path.parent, path.name, offset)  # off the event loop

    @router.get("/api/runs/{run_id}/snapshots/{epoch}", summary="One epoch's snapshot")
    def snapshot(request: Request, run_id: str, epoch: int):
        try:
            path = run_path(runs_dir(request), run_id) / SNAPSHOTS / snapshot_name(epoch)
        except TrainError as e:
            return fail(e)
        if not 0 <= epoch <= 99_999 or not path.is_file():
            return JSONResponse({"error": f"run {run_id} has no snapshot of epoch {epoch}"}, status_code=404)
        return FileResponse(path, media_type="application/json")

    @router.post("/api/runs/{run_id}/use", summary="Serve this run on the predict page")
    async def use(request: Request, run_id: str):
        try:
            path = run_path(runs_dir(request), run_id)
        except TrainError as e:
            return fail(e)
        if trainer.running_id() == run_id or lock_holder(path) is not None:
            return JSONResponse(
                {"error": f"run {run_id} is still training: stop it or let it finish"}, status_code=409
            )
        if not (path / "checkpoint.json").is_file():
            return JSONResponse({"error": f"run {run_id} has no checkpoint yet"}, status_code=409)

        def load() -> Session:
            new = load_session(path)
            new.warm_up()  # the gallery and the traced extractor: the next visitor does not wait for them
            return new

        adopt(session, await run_in_threadpool(load), swap)
        return session.info()

    return router


def _event(name: str, data) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
