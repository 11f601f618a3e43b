"""HTTP prediction service for the JinNan batch-yield model."""

from importlib import resources

__version__: str = resources.files(__package__).joinpath("VERSION").read_text().strip()

__all__ = ["__version__"]
