"""Entry point for the production WSGI server: ``gunicorn dpl_web.wsgi:app``."""

from dpl_web import create_app

app = create_app()
