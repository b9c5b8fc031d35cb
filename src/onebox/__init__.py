"""Onebox: a private AI chat and document question-answering stack in one box."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("onebox")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
