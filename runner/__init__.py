"""splatter-node: the compute-node runner that leases splat training tasks and runs the pipeline."""

from importlib.metadata import PackageNotFoundError, version

CAPABILITY = "/splatter/colmap/v1"

try:
    __version__ = version("splatter-server")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
