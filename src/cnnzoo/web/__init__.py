"""The web app: ``cnnzoo serve`` (see docs/web.md). ``create_app(load_engine(checkpoint))`` builds it."""

from .app import create_app
from .engine import Engine, load_engine

__all__ = ["create_app", "load_engine", "Engine"]
