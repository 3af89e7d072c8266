"""The REST API: the CLI's spend operations over HTTP, with bearer tokens and role checks."""

from treasury.api.app import create_app

__all__ = ["create_app"]
