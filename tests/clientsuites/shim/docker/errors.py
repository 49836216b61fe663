"""The two docker SDK exceptions py-consul's conftest catches."""

from __future__ import annotations


class DockerException(Exception):
    """Base of the SDK's errors."""


class APIError(DockerException):
    """The daemon refused a request (here: the agent could not be started)."""


class NotFound(APIError):
    """No container of that name."""
