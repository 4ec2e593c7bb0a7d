"""The one error type of the organizer's build: the message names the key or file and the fix."""

from __future__ import annotations

__all__ = ["BundleError"]


class BundleError(ValueError):
    """competition.yaml, a program folder or a page is wrong; the message says what to fix."""
