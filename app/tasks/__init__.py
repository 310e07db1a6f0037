"""System tasks: one module per task type behind the registry (registry.py)."""
