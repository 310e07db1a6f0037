"""Baton: a workflow orchestration server that speaks Conductor's REST API."""

__version__ = "0.1.0"
