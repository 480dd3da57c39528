"""Plugin views and menu links: what the hooks ``zonda_web_views`` and ``zonda_menu_links`` add to the web UI.

Each blueprint a plugin gives is first registered on a scratch app to look at its routes: every route must
declare its permission with ``@requires`` (the same rule as Zonda's own routes), and its name must not clash with
another blueprint. A blueprint that breaks a rule is refused with a one-line error naming the plugin, and the web
server starts without it. A menu link needs a ``name`` and an ``href`` that is a path on this site or an
http(s) URL (never ``javascript:``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Blueprint, Flask

    from zonda.plugins.manager import PluginManager

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MenuLink:
    name: str
    href: str
    category: str = ""
    plugin: str = ""


@dataclass
class PluginWebExtensions:
    """What plugins added to this app, and what was refused (plugin name, one-line reason)."""

    blueprints: list[str] = field(default_factory=list)
    menu_links: list[MenuLink] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def refuse(self, plugin: str, reason: str) -> None:
        log.error("plugin %r: %s", plugin, reason)
        self.errors.append((plugin, reason))


def _blueprints_of(result: Any) -> list[tuple[Any, str | None]]:
    items = result if isinstance(result, list | tuple) else [result]
    pairs = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            pairs.append((item[0], item[1]))
        else:
            pairs.append((item, None))
    return pairs


def undeclared_routes(blueprint: Blueprint, url_prefix: str | None) -> list[str]:
    """The routes of ``blueprint`` that declare no permission, found on a scratch app (nothing is served)."""
    from flask import Flask

    from zonda.web.access import routes_without_permission

    scratch = Flask("zonda.plugin_check", static_folder=None)
    scratch.register_blueprint(blueprint, url_prefix=url_prefix)
    return routes_without_permission(scratch)


def _add_blueprint(app: Flask, plugin: str, blueprint: Any, url_prefix: str | None, added: PluginWebExtensions) -> None:
    from flask import Blueprint

    if not isinstance(blueprint, Blueprint):
        added.refuse(plugin, f"zonda_web_views returned {type(blueprint).__name__}, not a Flask Blueprint; refused")
        return
    if blueprint.name in app.blueprints:
        added.refuse(plugin, f"its blueprint {blueprint.name!r} clashes with an existing one; rename it")
        return
    missing = undeclared_routes(blueprint, url_prefix)
    if missing:
        added.refuse(
            plugin,
            f"its view(s) {', '.join(missing)} declare no permission; put @requires(Permission.X) under each route",
        )
        return
    try:
        app.register_blueprint(blueprint, url_prefix=url_prefix)
    except (ValueError, AssertionError) as exc:  # Flask's refusals of a clashing endpoint or rule
        added.refuse(plugin, f"its blueprint {blueprint.name!r} could not be registered: {exc}")
        return
    added.blueprints.append(blueprint.name)


def _link(plugin: str, item: Any, added: PluginWebExtensions) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("href"), str):
        added.refuse(plugin, 'a menu link must be a dict with "name" and "href" strings; it was left out')
        return
    href = item["href"].strip()
    if not (href.startswith("/") and not href.startswith("//")) and not href.startswith(("https://", "http://")):
        added.refuse(plugin, f"menu link {item['name']!r}: href must be a path like /my-view or an http(s) URL")
        return
    added.menu_links.append(MenuLink(item["name"], href, str(item.get("category") or ""), plugin))


def install_plugin_views(app: Flask, plugins: PluginManager) -> PluginWebExtensions:
    """Register the plugins' blueprints on ``app`` and collect their menu links; keep what was refused."""
    added = PluginWebExtensions()
    for plugin, result in plugins.call_by_plugin("zonda_web_views"):
        for blueprint, url_prefix in _blueprints_of(result):
            _add_blueprint(app, plugin, blueprint, url_prefix, added)
    for plugin, result in plugins.call_by_plugin("zonda_menu_links"):
        for item in result if isinstance(result, list | tuple) else [result]:
            _link(plugin, item, added)
    for plugin, hook, _text in plugins.call_errors:
        if hook in ("zonda_web_views", "zonda_menu_links"):
            added.errors.append((plugin, f"{hook} raised; see the plugin's error"))
    return added


def installed_plugin_rows() -> list[Any]:
    """The app's plugins with their load errors (masked) and the views or links it refused, for the Plugins page
    and ``/api/v1/plugins``."""
    from flask import current_app

    from zonda.operations.extensions import plugin_rows
    from zonda.web.context import web_context
    from zonda.web.views.load_errors import plugin_manager

    context = web_context()
    return plugin_rows(
        plugin_manager(),
        context.settings,
        metastore=context.metastore(),
        refused=current_app.extensions["zonda_plugin_web"].errors,
    )


__all__ = ["MenuLink", "PluginWebExtensions", "install_plugin_views", "installed_plugin_rows", "undeclared_routes"]
