"""A reference OAuth 2.0 gateway on the redis-oauth module and its Python client package."""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
