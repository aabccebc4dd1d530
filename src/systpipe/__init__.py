"""systpipe: how well does a selection measure the signal strength mu, systematics included."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("systpipe")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
