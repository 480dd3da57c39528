"""A pytest plugin for DAG authors (registered through the ``pytest11`` entry point).

It must stay cheap to import: pytest loads it in every run of any project that has Zonda installed.
Fixtures arrive as the runtime grows; each builds fresh state in a temp folder, never shared globals.
"""

from __future__ import annotations
