"""The web server's blueprints: :mod:`~zonda.web.views.ui` (pages) and :mod:`~zonda.web.views.api_v1` (the REST
API under ``/api/v1``). Each route declares its permission with :func:`zonda.web.permissions.requires`."""
