"""The shared look: both themes through CSS custom properties, the toggle script loaded before paint from a file
(never inline, the CSP forbids it), and the keyboard aids every page carries (skip link, focus ring)."""

from __future__ import annotations

import re

import pytest
from test_web_pages import SQLITE_ONLY, WEB_DIR

#: The variables other pages' stylesheets rely on (documented at the top of zonda.css).
SHARED_VARIABLES = ("--bg", "--fg", "--muted", "--border", "--accent", "--surface", "--focus", "--danger")
STATES = (
    "success",
    "failed",
    "running",
    "queued",
    "up_for_retry",
    "up_for_reschedule",
    "skipped",
    "upstream_failed",
    "deferred",
    "scheduled",
    "removed",
    "none",
)


@SQLITE_ONLY
@pytest.mark.parametrize("path", ["/login", "/dags"])
def test_every_page_loads_the_theme_script_before_the_stylesheet_and_has_a_skip_link(web, path) -> None:
    page = web.logged_in("Viewer").get(path).text if path != "/login" else web.client().get(path).text
    head = page.split("</head>", 1)[0]
    assert head.index('<script src="/static/js/theme.js"></script>') < head.index("/static/zonda.css")
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script: the CSP would block it"
    assert re.search(r'<a class="skip-link" href="#main">', page)
    assert '<main id="main" tabindex="-1">' in page
    assert re.search(r'<button type="button" id="theme-toggle" aria-pressed="false" hidden>', page)


def test_the_stylesheet_defines_every_documented_variable_for_both_themes() -> None:
    css = (WEB_DIR / "static" / "zonda.css").read_text(encoding="utf-8")
    root = css[css.index(":root {") : css.index("}", css.index(":root {"))]
    for name in SHARED_VARIABLES + tuple(f"--state-{state}" for state in STATES):
        declared = re.search(rf"^\s*{re.escape(name)}:\s*(.+);$", root, re.MULTILINE)
        assert declared, f"{name} is not declared in :root"
        assert declared.group(1).startswith("light-dark("), f"{name} has no dark value"
        assert name in css[: css.index("*/")], f"{name} is not documented at the top"
    for state in STATES[:-1]:
        assert f'[data-state="{state}"] {{ --state-color: var(--state-{state}); }}' in css
    assert ':root[data-theme="dark"] { color-scheme: dark; }' in css
    assert ':root[data-theme="light"] { color-scheme: light; }' in css
    assert ":focus-visible {" in css


@SQLITE_ONLY
def test_static_theme_script_is_served_as_javascript(web) -> None:
    response = web.client().get("/static/js/theme.js")
    assert response.status_code == 200
    assert response.mimetype in ("text/javascript", "application/javascript")
    assert "localStorage" in response.text and "prefers-color-scheme" in response.text


#: Fixed colours a page stylesheet may keep: the log view is a terminal (light on near-black) in both themes,
#: and its ANSI palette is the terminal's.
TERMINAL_RULES = (".log-view", ".log-number", ".log-hit", ".ansi-")


def test_page_stylesheets_take_every_colour_from_the_theme() -> None:
    """One set of state colours for every page: a page stylesheet that defines its own (a fixed hex colour, a
    copy of the state variables) would break the dark theme or drift from the others."""
    for sheet in sorted((WEB_DIR / "static" / "css").glob("*.css")):
        css = re.sub(r"/\*.*?\*/", "", sheet.read_text(encoding="utf-8"), flags=re.DOTALL)
        for rule in re.findall(r"[^{}]+\{[^}]*\}", css):
            selector = rule.split("{", 1)[0].strip()
            if selector.startswith(TERMINAL_RULES):
                continue
            fixed = re.findall(r"#[0-9a-fA-F]{3,8}\b(?![^(]*\))|\brgb\(", rule)
            assert not fixed, f"{sheet.name}: {selector} has fixed colours {fixed}; use zonda.css's variables"
        assert not re.search(r"--st-\w+\s*:", css), f"{sheet.name} defines its own state colours"
        assert "prefers-color-scheme" not in css, f"{sheet.name}: use light-dark() so the theme toggle applies"
