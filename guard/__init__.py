"""deploy-guard: stops broken deploys before they land."""

__version__ = "0.1.0"
