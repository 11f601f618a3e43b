"""Batch-yield prediction for the JinNan chemical process."""

from importlib import resources

__version__: str = resources.files(__package__).joinpath("VERSION").read_text().strip()

__all__ = ["__version__"]
