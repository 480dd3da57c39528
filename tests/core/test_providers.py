"""Providers: manifests found through real installed distributions, validation, lazy class loading, the CLI.

Extra providers are installed for a test as real distributions: a temp dir holding ``<name>-1.0.dist-info``
(METADATA, entry_points.txt) and the provider's package, put on ``sys.path``, where ``importlib.metadata`` (and
the registry's own scan) find them exactly as they find pip-installed ones.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from zonda.providers import (
    ProviderImportError,
    ProvidersRegistry,
    UnknownConnectionType,
    get_providers_registry,
    supports_version,
    validate_manifest,
)
from zonda.providers.manifest import normalize_manifest
from zonda.providers.registry import scan_entry_points

WORKSPACE = {"elasticsearch", "http", "postgres"}
HEAVY = (
    "zonda_http.hooks",
    "zonda_postgres.hooks",
    "zonda_elasticsearch.hooks",
    "requests",
    "psycopg",
    "elasticsearch",
)


def good_manifest(name: str, conn_type: str | None = None, **overrides: object) -> dict:
    conn_type = conn_type or name
    manifest = {
        "name": name,
        "package": f"zonda-provider-{name}",
        "version": "1.0",
        "description": f"test provider {name}",
        "zonda_versions": ">=0.1,<1",
        "connection_types": [
            {
                "conn_type": conn_type,
                "hook": f"zonda_{name}.hooks:{name.capitalize()}Hook",
                "display_name": name.upper(),
                "fields": {
                    "host": {"label": "Host"},
                    "password": {"type": "password"},
                    "extra.token": {"type": "password", "secret": True},
                    "extra.verify": {"type": "boolean", "default": True},
                },
            }
        ],
        "hooks": [f"zonda_{name}.hooks:{name.capitalize()}Hook"],
        "operators": [f"zonda_{name}.operators:{name.capitalize()}Operator"],
    }
    manifest.update(overrides)
    return manifest


class Site:
    """A temp directory on sys.path into which tests install provider distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(
        self,
        name: str,
        manifest_source: str | None = None,
        *,
        manifest: dict | None = None,
        files: dict[str, str] | None = None,
        entry_point: str | None = None,
    ) -> str:
        """Install distribution ``zonda-provider-<name>`` with package ``zonda_<name>``; returns the dist name."""
        package = self.root / f"zonda_{name}"
        package.mkdir()
        (package / "__init__.py").write_text("")
        if manifest_source is None:
            manifest_source = f"manifest = {manifest if manifest is not None else good_manifest(name)!r}\n"
        (package / "manifest.py").write_text(manifest_source)
        for rel, text in (files or {}).items():
            (package / rel).write_text(textwrap.dedent(text))
        dist = f"zonda-provider-{name}"
        info = self.root / f"zonda_provider_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        value = entry_point or f"zonda_{name}.manifest:manifest"
        (info / "entry_points.txt").write_text(f"[console_scripts]\nx = y:z\n\n[zonda.providers]\n{name} = {value}\n")
        importlib.invalidate_caches()
        return dist


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    get_providers_registry.cache_clear()
    yield Site(root)
    get_providers_registry.cache_clear()
    for name in set(sys.modules) - before:
        if name.startswith(("zonda_", "lazymarker")) and name.split(".")[0] not in {
            "zonda_http",
            "zonda_postgres",
            "zonda_elasticsearch",
        }:
            del sys.modules[name]
    importlib.invalidate_caches()


def errors_by_name(registry: ProvidersRegistry) -> dict:
    return {error.name: error for error in registry.errors}


# -- the workspace's providers --------------------------------------------------------------------------------


def test_discovers_the_three_workspace_providers() -> None:
    registry = ProvidersRegistry.discover()
    assert set(registry.providers) >= WORKSPACE
    assert not [e for e in registry.errors if e.name in WORKSPACE]
    http = registry.providers["http"]
    assert http.package == "zonda-provider-http"
    assert "HttpHook" in http.description
    assert http.entry_point == "http = zonda_http.manifest:manifest"
    assert "zonda_http.operators:HttpOperator" in http.components["operators"]

    cts = registry.connection_types
    pg = cts["postgres"]
    assert pg.hook == "zonda_postgres.hooks:PostgresHook"
    assert pg.fields["port"].default == 5432 and pg.fields["port"].type == "integer"
    assert pg.fields["schema"].label == "Database"
    assert pg.secret_fields == ("password",)
    assert {f"extra.{k}" for k in ("sslmode", "sslrootcert", "options", "application_name", "connect_timeout")} <= set(
        pg.fields
    )
    web = cts["http"]
    assert set(web.secret_fields) == {"password", "extra.token"}
    assert web.secret_extras == ("token",)
    assert registry.secret_extras_for("http") == ("token",) and registry.secret_extras_for("nosuch") == ()
    assert web.fields["extra.verify"].type == "boolean" and web.fields["extra.verify"].default is True
    assert web.fields["extra.headers"].type == "json" and web.fields["extra.proxies"].type == "json"
    assert web.fields["schema"].label == "Scheme"
    es = cts["elasticsearch"]
    assert set(es.secret_fields) == {"password", "extra.api_key"}
    assert es.fields["extra.verify_certs"].default is True
    assert {"extra.ca_certs", "extra.ssl_assert_fingerprint", "extra.request_timeout", "extra.retries"} <= set(
        es.fields
    )

    hooks = {h.hook: h for h in registry.hooks}
    assert hooks["zonda_http.hooks:HttpHook"].conn_types == ("http",)
    kinds = {(c.path, c.kind) for c in registry.operators}
    assert ("zonda_postgres.sensors:SqlSensor", "sensors") in kinds
    assert ("zonda_elasticsearch.transfers:SqlToElasticsearchOperator", "transfers") in kinds


def test_workspace_manifests_are_valid_data() -> None:
    for name in WORKSPACE:
        module = importlib.import_module(f"zonda_{name}.manifest")
        assert validate_manifest(module.manifest) == []


def test_discovery_imports_no_provider_code() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from zonda.providers import ProvidersRegistry
        registry = ProvidersRegistry.discover()
        assert {sorted(WORKSPACE)!r} == sorted(n for n in registry.providers if n in {sorted(WORKSPACE)!r})
        print([m for m in {HEAVY!r} if m in sys.modules])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_scan_agrees_with_importlib_metadata(site: Site) -> None:
    site.install("alpha")
    site.install("beta")
    ours = sorted((ep.name, ep.value) for ep in scan_entry_points())
    theirs = sorted((ep.name, ep.value) for ep in importlib.metadata.entry_points(group="zonda.providers"))
    assert ours == theirs
    assert ("alpha", "zonda_alpha.manifest:manifest") in ours


# -- broken, invalid and incompatible providers ---------------------------------------------------------------


def test_bad_and_incompatible_providers_are_reported_and_the_rest_load(site: Site) -> None:
    bad = {
        "package": "zonda-provider-bad",
        "version": 3,
        "zonda_versions": ">=0.1",
        "connection_types": [
            {
                "conn_type": "bad",
                "hook": "zonda_bad.hooks.BadHook",
                "fields": {
                    "host": {"type": "float"},
                    "hostname": {},
                    "extra.port": {"type": "integer", "default": "80"},
                    "password": {"secret": False},
                    "extra.x": {"secert": True},
                },
            }
        ],
        "operators": ["zonda_bad.operators:Bad Operator", 42],
    }
    bad_dist = site.install("bad", manifest=bad)
    old_dist = site.install("old", manifest=good_manifest("old", zonda_versions=">=99"))
    broken_dist = site.install("broken", "raise RuntimeError('manifest exploded')\n")
    site.install("fine")

    registry = ProvidersRegistry.discover()
    assert {"fine", *WORKSPACE} <= set(registry.providers)
    assert not {"bad", "old", "broken"} & set(registry.providers)
    assert "bad" not in registry.connection_types and "fine" in registry.connection_types

    errors = errors_by_name(registry)
    # The bad manifest has no name: it is reported under its entry point's name.
    assert errors["bad"].distribution == bad_dist
    assert errors["bad"].kind == "invalid"
    problems = "\n".join(errors["bad"].problems)
    for expected in (
        "name: missing",
        "version: expected a string, got int",
        "connection_types[0].hook: 'zonda_bad.hooks.BadHook' is not a dotted path",
        "unknown field type 'float'",
        "unknown field name 'hostname'",
        "'80' is not a valid integer",
        "a password field cannot be declared non-secret",
        "unknown key 'secert'",
        "operators[0]: 'zonda_bad.operators:Bad Operator' does not look importable",
        "operators[1]: expected a dotted path string, got int",
    ):
        assert expected in problems
    assert len(errors["bad"].problems) == 10

    assert errors["old"].kind == "incompatible"
    assert errors["old"].distribution == old_dist
    assert errors["old"].problems == (f"supports zonda >=99, this is zonda {registry.core_version}",)

    assert errors["broken"].kind == "load"
    assert errors["broken"].distribution == broken_dist
    assert errors["broken"].problems == ("RuntimeError: manifest exploded",)
    assert "Traceback" in errors["broken"].traceback


def test_an_incompatible_manifest_is_reported_as_such_even_with_unknown_keys(site: Site) -> None:
    site.install("future", manifest={**good_manifest("future", zonda_versions=">=5"), "widgets": []})
    error = errors_by_name(ProvidersRegistry.discover())["future"]
    assert error.kind == "incompatible"


def test_duplicate_connection_type_across_providers(site: Site) -> None:
    site.install("zz_http", manifest=good_manifest("zz_http", conn_type="http"))
    registry = ProvidersRegistry.discover()
    assert registry.connection_types["http"].provider == "http"
    error = errors_by_name(registry)["zz_http"]
    assert error.kind == "invalid"
    assert error.problems == ("connection_types: 'http' is already provided by 'http' (zonda-provider-http)",)


def test_manifest_may_be_a_callable(site: Site) -> None:
    source = f"def get_provider_info():\n    return {good_manifest('callme')!r}\n"
    site.install("callme", source, entry_point="zonda_callme.manifest:get_provider_info")
    assert "callme" in ProvidersRegistry.discover().providers


def test_validate_manifest_rejects_non_dicts_and_lists_every_problem() -> None:
    assert validate_manifest([]) == ["manifest: expected a dict, got list"]
    problems = validate_manifest({"connection_types": {}, "hooks": "a.b:C"})
    assert problems == [
        "name: missing",
        "package: missing",
        "version: missing",
        "zonda_versions: missing",
        "connection_types: expected a list, got dict",
        "hooks: expected a list of dotted paths, got str",
    ]
    assert validate_manifest(good_manifest("ok")) == []


def test_invalid_version_specifier_is_a_problem(site: Site) -> None:
    site.install("spec", manifest=good_manifest("spec", zonda_versions="about 1"))
    error = errors_by_name(ProvidersRegistry.discover())["spec"]
    assert error.kind == "invalid"
    assert "not a valid version specifier" in error.problems[0]


@pytest.mark.parametrize(
    ("spec", "version"),
    [
        (spec, version)
        for spec in (">=0.1,<1", ">=0.1.0", "<0.1", "==0.1", "==0.1.*", "!=0.1.*", "~=0.1", "~=0.1.1", "~=1.0", ">0.1")
        for version in ("0.1.0", "0.1", "0.2.5", "1.0", "0.0.9", "0.1.1")
    ]
    + [(">=0.1", "0.2.0.dev1"), ("<1", "1.0rc1"), ("==0.1.0+local", "0.1.0+local"), (">=0.1", "0.1.post1")],
)
def test_supports_version_agrees_with_packaging(spec: str, version: str) -> None:
    from packaging.specifiers import SpecifierSet

    assert supports_version(spec, version) == SpecifierSet(spec).contains(version, prereleases=True)


# -- lazy loading ---------------------------------------------------------------------------------------------


LAZY_FILES = {
    "hooks.py": """
        import lazymarker

        lazymarker.IMPORTED.append(__name__)


        class LazyHook:
            conn_type = "lazy"
    """,
}


def test_load_class_imports_on_first_use_and_caches(site: Site) -> None:
    (site.root / "lazymarker.py").write_text("IMPORTED = []\n")
    manifest = good_manifest("lazy")
    manifest["connection_types"][0]["hook"] = "zonda_lazy.hooks:LazyHook"
    site.install("lazy", manifest=manifest, files=LAZY_FILES)
    import lazymarker

    registry = ProvidersRegistry.discover()
    assert "lazy" in registry.providers
    assert lazymarker.IMPORTED == []
    assert "zonda_lazy.hooks" not in sys.modules
    assert registry.loaded_classes() == {}

    hook = registry.hook_class_for("lazy")
    assert hook.__name__ == "LazyHook" and hook.conn_type == "lazy"
    assert lazymarker.IMPORTED == ["zonda_lazy.hooks"]

    del sys.modules["zonda_lazy.hooks"]  # a second import would append again: the cache must answer
    assert registry.load_class("zonda_lazy.hooks:LazyHook") is hook
    assert registry.hook_class_for("lazy") is hook
    assert lazymarker.IMPORTED == ["zonda_lazy.hooks"]
    assert registry.loaded_classes() == {"zonda_lazy.hooks:LazyHook": hook}


def test_load_class_errors_name_the_provider(site: Site) -> None:
    site.install("ghost")
    registry = ProvidersRegistry.discover()
    with pytest.raises(ProviderImportError, match=r"zonda_ghost.hooks:GhostHook.*provider 'ghost'"):
        registry.hook_class_for("ghost")
    with pytest.raises(ProviderImportError, match="has no 'Nope'"):
        registry.load_class("zonda.version:Nope")
    with pytest.raises(UnknownConnectionType, match=r"'nosuch' \(known: .*http"):
        registry.hook_class_for("nosuch")


def test_registries_are_independent(site: Site) -> None:
    first = ProvidersRegistry.discover()
    site.install("later")
    second = ProvidersRegistry.discover()
    assert "later" not in first.providers and "later" in second.providers
    assert get_providers_registry() is get_providers_registry()


# -- the command line -----------------------------------------------------------------------------------------


def run_cli(args: list[str], site_root: Path | None = None) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        import sys
        from zonda.cli import main
        rc = main({args!r})
        print("HEAVY=" + ",".join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
        raise SystemExit(rc)
        """
    )
    env = dict(os.environ)
    if site_root is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site_root), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize("sub", ["list", "hooks", "connection-types", "operators"])
def test_cli_imports_no_provider_code(sub: str) -> None:
    out = run_cli(["providers", sub])
    assert out.returncode == 0, out.stderr
    assert out.stderr.rstrip().endswith("HEAVY="), out.stderr
    assert "http" in out.stdout


def test_cli_list_reports_skipped_providers(site: Site) -> None:
    site.install("old", manifest=good_manifest("old", zonda_versions="<0.0.1"))
    site.install("broken", "raise RuntimeError('manifest exploded')\n")

    table = run_cli(["providers", "list"], site.root)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "package", "version"]
    assert any(line.startswith("http ") for line in lines)
    tail = table.stdout[table.stdout.index("2 provider(s) skipped:") :]
    assert "broken (zonda-provider-broken" in tail and "RuntimeError: manifest exploded" in tail
    assert "old (zonda-provider-old" in tail and "incompatible" in tail

    out = run_cli(["providers", "list", "--output", "json"], site.root)
    data = json.loads(out.stdout)
    assert set(data) == {"providers", "errors"}
    assert {p["name"] for p in data["providers"]} >= WORKSPACE
    assert {(e["name"], e["kind"]) for e in data["errors"]} == {("old", "incompatible"), ("broken", "load")}
    error = next(e for e in data["errors"] if e["name"] == "old")
    assert error["distribution"] == "zonda-provider-old"
    assert error["entry_point"] == "old = zonda_old.manifest:manifest"
    assert error["problems"] and isinstance(error["problems"], list)

    hooks = run_cli(["providers", "hooks", "-o", "json"], site.root)
    assert "2 provider(s) skipped" in hooks.stderr
    assert isinstance(json.loads(hooks.stdout), list)


def test_cli_json_listings(capsys: pytest.CaptureFixture[str], site: Site) -> None:
    from zonda.cli import main

    assert main(["providers", "connection-types", "-o", "json"]) == 0
    cts = {row["conn_type"]: row for row in json.loads(capsys.readouterr().out)}
    assert cts["postgres"]["fields"]["port"] == {
        "label": "Port",
        "type": "integer",
        "secret": False,
        "default": 5432,
        "help": "",
        "placeholder": "",
    }
    assert cts["http"]["fields"]["extra.token"]["secret"] is True

    assert main(["providers", "hooks", "-o", "json"]) == 0
    hooks = json.loads(capsys.readouterr().out)
    assert {"hook": "zonda_http.hooks:HttpHook", "provider": "http", "conn_types": ["http"]} in hooks

    assert main(["providers", "operators", "-o", "json"]) == 0
    ops = json.loads(capsys.readouterr().out)
    assert {"class": "zonda_http.sensors:HttpSensor", "kind": "sensors", "provider": "http"} in ops
    assert main(["providers", "operators", "--kind", "triggers", "-o", "json"]) == 0
    assert {row["kind"] for row in json.loads(capsys.readouterr().out)} == {"triggers"}

    assert main(["providers", "connection-types"]) == 0
    table = capsys.readouterr().out
    assert "password*" in table and "extra.token*" in table


def test_example_dags_and_standalone_services_are_validated() -> None:
    base = {"name": "x", "package": "zonda-provider-x", "version": "1.0", "zonda_versions": ">=0.1"}
    good = {**base, "example_dags": ["x_pkg.example_dags"], "standalone_services": ["x_pkg.local:service"]}
    assert validate_manifest(good) == []
    info = normalize_manifest(good)
    assert info.example_dags == ("x_pkg.example_dags",)
    assert info.standalone_services == ("x_pkg.local:service",)
    problems = validate_manifest({**base, "example_dags": ["x_pkg/examples"], "standalone_services": ["x_pkg.local"]})
    assert problems == [
        "example_dags[0]: 'x_pkg/examples' is not a module name like 'package.example_dags'",
        "standalone_services[0]: 'x_pkg.local' is not a dotted path 'package.module:Class' (missing ':')",
    ]
    assert validate_manifest({**base, "example_dags": "x_pkg.example_dags"}) == [
        "example_dags: expected a list of module names, got str"
    ]
