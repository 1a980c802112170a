"""The web app: ``cnnzoo serve`` (see docs/web.md). ``create_app(load_session(checkpoint))`` builds it."""

from .app import create_app
from .session import Session, load_session

__all__ = ["create_app", "load_session", "Session"]
