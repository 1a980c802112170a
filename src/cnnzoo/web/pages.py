"""The web app's pages and API modules, found rather than listed, so a new page touches no shared file.

A page is a ``static/*.html`` whose header is ``<header class="top" data-page="ID" data-order="N">``: the app
serves ``index.html`` at ``/`` and ``NAME.html`` at ``/NAME``, and nav.js draws the nav bar from the list the
app writes into that header as ``data-nav`` when it serves the page (``N`` orders the links; ID names the
page's ``nav.ID`` and ``brand.ID`` strings in i18n.js). An API module is a module of :mod:`cnnzoo.web` that
defines ``router`` (an APIRouter) or ``make_router(session)`` (an APIRouter per app, for routes that need
the session); the app includes every one, as cli.py runs every module of :mod:`cnnzoo.commands`.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["Page", "LINKS", "find_pages", "nav_list", "page_router", "api_routers"]

STATIC = Path(__file__).parent / "static"
LAST = 1000  # the order of a page whose header gives none


@dataclass(frozen=True)
class Page:
    id: str
    href: str
    order: int
    file: Path | None = None  # None: a page the app serves otherwise (a link only)


LINKS = (Page("api", "/docs", 900),)  # FastAPI's own page: it has no header of ours


class _Header(HTMLParser):
    """The first ``<header data-page=…>`` of a document: its page id and order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: tuple[str, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if self.found is None and tag == "header" and a.get("data-page"):
            order = a.get("data-order") or ""
            self.found = (a["data-page"], int(order) if order.isdigit() else LAST)


def find_pages(static: Path = STATIC) -> list[Page]:
    """Every page of ``static`` and :data:`LINKS`, in nav order. Two files claiming one id raise ValueError."""
    pages = list(LINKS)
    for path in sorted(static.glob("*.html")):
        header = _Header()
        header.feed(path.read_text(encoding="utf-8"))
        if header.found is not None:
            page_id, order = header.found
            pages.append(Page(page_id, "/" if path.stem == "index" else f"/{path.stem}", order, path))
    ids = [p.id for p in pages]
    if len(set(ids)) < len(ids):
        raise ValueError(f"two pages share an id in {static}: {sorted(ids)}")
    return sorted(pages, key=lambda p: (p.order, p.id))


def nav_list(pages: list[Page]) -> list[dict]:
    """The nav bar nav.js draws: ``[{"id", "href"}]`` in order."""
    return [{"id": p.id, "href": p.href} for p in pages]


def page_router(pages: list[Page]) -> APIRouter:
    """GET for every page with a file: its HTML, the nav list written into its header as ``data-nav``."""
    router = APIRouter()
    nav = escape(json.dumps(nav_list(pages), ensure_ascii=False), quote=True)
    for page in pages:
        if page.file is not None:
            router.add_api_route(page.href, _serve(page, nav), methods=["GET"], include_in_schema=False)
    return router


def _serve(page: Page, nav: str):
    marker = re.compile(r"""data-page=(["'])""" + re.escape(page.id) + r"\1")

    def serve() -> HTMLResponse:
        text = page.file.read_text(encoding="utf-8")  # read each time: an edited page shows on reload
        return HTMLResponse(marker.sub(lambda m: f'{m.group(0)} data-nav="{nav}"', text, count=1))

    serve.__name__ = f"{page.id}_page"
    return serve


def api_routers(session) -> list[APIRouter]:
    """Every API module's router, modules in name order: ``router``, or ``make_router(session)``."""
    from .. import web

    routers = []
    for info in sorted(pkgutil.iter_modules(web.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in ("app", "pages"):
            continue
        module = importlib.import_module(f"{web.__name__}.{info.name}")
        if isinstance(getattr(module, "router", None), APIRouter):
            routers.append(module.router)
        elif callable(getattr(module, "make_router", None)):
            routers.append(module.make_router(session))
    return routers
