"""Read-only facts about the installation: ``/importErrors``, ``/providers``, ``/plugins``, ``/health`` (no login,
as ``GET /health``) and ``/version``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from zonda.web.api.listing import CollectionInfo, ListQuery, collection, page_request
from zonda.web.api.models import ApiModel
from zonda.web.api.resources.common import engine, viewer
from zonda.web.api.routes import ApiRoute
from zonda.web.permissions import Permission


class ImportError_(ApiModel):
    import_error_id: int = Field(validation_alias="id")
    filename: str
    #: Masked with every secret the installation knows.
    stack_trace: str = Field(validation_alias="stacktrace")
    timestamp: datetime | None


class ImportErrorCollection(CollectionInfo):
    import_errors: list[ImportError_]


class Provider(ApiModel):
    package_name: str = Field(validation_alias="package")
    name: str
    version: str
    description: str


class ProviderCollection(CollectionInfo):
    providers: list[Provider]


class Plugin(ApiModel):
    name: str
    source: str
    version: str
    hooks: list[str]
    status: str
    error: str


class PluginCollection(CollectionInfo):
    plugins: list[Plugin]


class ComponentStatus(ApiModel):
    status: str


class SchedulerStatus(ComponentStatus):
    latest_scheduler_heartbeat: str | None


class TriggererStatus(ComponentStatus):
    latest_triggerer_heartbeat: str | None


class HealthInfo(ApiModel):
    metastore: ComponentStatus
    scheduler: SchedulerStatus
    triggerer: TriggererStatus


class VersionInfo(ApiModel):
    version: str


def _settings() -> Any:
    from zonda.web.context import web_context

    return web_context().settings


def list_import_errors(query: ListQuery) -> Any:
    """DAG files that failed to load, by file name (tracebacks masked)."""
    from zonda.operations.import_errors import list_import_errors as errors
    from zonda.operations.paging import page_of

    rows = sorted(errors(engine(), settings=_settings(), visible_to=viewer()), key=lambda e: e.id)
    return collection(page_of(rows, page_request(query), lambda e: e.id, "import_error_id"), "import_errors")


def get_import_error(import_error_id: int) -> Any:
    """One import error."""
    from zonda.exceptions import NotFound
    from zonda.operations.import_errors import list_import_errors as errors

    found = [e for e in errors(engine(), settings=_settings(), visible_to=viewer()) if e.id == import_error_id]
    if not found:
        raise NotFound(f"there is no import error {import_error_id}; GET /api/v1/importErrors lists them")
    return found[0]


def list_providers(query: ListQuery) -> Any:
    """The installed providers (from their manifests)."""
    from zonda.operations.extensions import providers_report
    from zonda.operations.paging import page_of

    rows = sorted(providers_report().providers, key=lambda p: p.package)
    return collection(page_of(rows, page_request(query), lambda p: p.package, "package_name"), "providers")


def list_plugins(query: ListQuery) -> Any:
    """The web server's plugins, with their load errors (masked)."""
    from zonda.operations.paging import page_of
    from zonda.web.plugin_views import installed_plugin_rows

    rows = sorted(installed_plugin_rows(), key=lambda p: (p.name, p.source))
    return collection(page_of(rows, page_request(query), lambda p: f"{p.name}/{p.source}", "name"), "plugins")


def get_health() -> Any:
    """The metastore's, the scheduler's and the triggerer's state (no login needed)."""
    from zonda.operations.health import check_health

    timeout = float(_settings().get("scheduler", "scheduler_heartbeat_timeout"))
    return check_health(engine(), timeout).as_json()


def get_version() -> Any:
    """Zonda's version."""
    from zonda.version import __version__

    return {"version": __version__}


def routes() -> list[ApiRoute]:
    read = Permission.READ
    return [
        ApiRoute(
            "GET",
            "/importErrors",
            list_import_errors,
            read,
            "List import errors",
            "ImportError",
            query=ListQuery,
            response=ImportErrorCollection,
        ),
        ApiRoute(
            "GET",
            "/importErrors/{import_error_id}",
            get_import_error,
            read,
            "Get an import error",
            "ImportError",
            response=ImportError_,
            int_params=("import_error_id",),
        ),
        ApiRoute(
            "GET",
            "/providers",
            list_providers,
            read,
            "List providers",
            "Provider",
            query=ListQuery,
            response=ProviderCollection,
        ),
        ApiRoute(
            "GET", "/plugins", list_plugins, read, "List plugins", "Plugin", query=ListQuery, response=PluginCollection
        ),
        ApiRoute("GET", "/health", get_health, Permission.PUBLIC, "Get the health", "Monitor", response=HealthInfo),
        ApiRoute(
            "GET",
            "/version",
            get_version,
            Permission.AUTHENTICATED,
            "Get the version",
            "Monitor",
            response=VersionInfo,
        ),
    ]
