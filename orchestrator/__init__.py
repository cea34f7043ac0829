"""Orchestrator: the service between the AI-hint platform's frontends and its backends."""

__version__ = "0.1.0"
