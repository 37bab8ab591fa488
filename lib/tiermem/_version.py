"""The package version, in a leaf module so telemetry and the service need not import the package root."""

__all__ = ["__version__"]

__version__ = "0.1.0"
