"""The Sereus node Django project: settings, ASGI entry point, URLs and the Celery app."""

__version__ = "0.1.0"

# Load the Celery app whenever Django starts, so @shared_task binds to it.
from sereus_web.celery import app as celery_app

__all__ = ["__version__", "celery_app"]
