"""The REST service and the dashboard: FastAPI over a model registry (see app.py)."""
