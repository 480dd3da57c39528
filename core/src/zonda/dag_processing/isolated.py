"""The DAGs folder parsed as the DAG processor parses it, for commands that run without a processor.

``zonda dags list``, ``dags list-import-errors``, ``dags show``, ``dags test``, ``tasks list`` and ``tasks test``
never import a DAG file in their own process first: each file is parsed in a forked child
(:func:`zonda.dag_processing.parsing.parse_in_children`) with ``core.dagbag_import_timeout`` and
``core.dagbag_import_memory_limit``. A file that calls ``os._exit``, ignores SIGALRM, sleeps forever or eats
memory becomes that file's import error; the command goes on with the others. The commands that run a DAG
(``dags test``, ``tasks test``) then import the one file that defines it, which its child showed to be safe.

A DAG id defined by two files belongs to one of them, by the DAG processor's rule: the file that holds it in the
metastore (when one exists), else the first in path order; the other file gets the import error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.dag_processing.parsing import ParsedDag, ParseResult, duplicate_dag_id_error, parse_in_children
from zonda.exceptions import DagNotFound

if TYPE_CHECKING:
    from zonda.config import Settings


class IsolatedDagBag:
    """DAG files parsed in children: their DAGs as :class:`ParsedDag` (JSON), never as imported objects.

    ``files``, ``import_errors``, ``full_scan`` and :meth:`scanned_folders` are what
    :func:`zonda.dagbag.record_import_errors` reads, so the metastore can be brought up to date from it.
    """

    def __init__(
        self, settings: Settings, plugins: Any = None, holders: Callable[[], dict[str, str]] | None = None
    ) -> None:
        from zonda.dagbag import DagBag

        self.listing = DagBag.from_settings(settings, plugins=plugins)
        folder = settings.dags_folder
        # The same paths the DAG processor records (its folder is resolved), so errors replace each other.
        self.listing.dags_folder = folder.resolve() if folder.is_dir() else folder
        self.plugins = plugins
        self.memory_mb = int(settings.get("core", "dagbag_import_memory_limit"))
        #: dag id -> the file holding it in the metastore (it keeps the id when another file defines it too);
        #: read only when two files define the same id, so the usual command never touches the metastore
        self._read_holders = holders
        self._holders: dict[str, str] | None = None
        self.files: dict[str, ParseResult] = {}
        self.dags: dict[str, ParsedDag] = {}
        self.import_errors: dict[str, str] = {}
        self.full_scan = False

    @property
    def dags_folder(self) -> Path | None:
        return self.listing.dags_folder

    def scanned_folders(self) -> list[Path]:
        return self.listing.scanned_folders()

    def collect(self) -> IsolatedDagBag:
        """Parse every candidate file of the DAGs folder (and the examples, when they are loaded)."""
        paths = self._candidates(provider_examples=True)
        self._parse(paths)
        self.full_scan = True
        return self

    def collect_for(self, dag_id: str) -> IsolatedDagBag:
        """Parse the files that mention ``dag_id`` (all of them when none defines it), as
        :meth:`zonda.dagbag.DagBag.collect_for` chooses them."""
        from zonda.dagbag import _mentions

        needle = dag_id.encode()
        files = self._candidates(provider_examples=False)
        self._parse([p for p in files if _mentions(Path(p), needle)])
        if dag_id not in self.dags and self.listing.include_examples:
            extra = [str(p) for p in self.listing._provider_example_files()]
            self._absorb_listing_errors()
            files.extend(extra)
            self._parse([p for p in extra if _mentions(Path(p), needle)])
        if dag_id not in self.dags:
            self._parse([p for p in files if p not in self.files])
        return self

    def file_of(self, dag_id: str) -> str:
        """The file that defines ``dag_id``; :class:`DagNotFound` with a "did you mean" and the import errors."""
        parsed = self.dags.get(dag_id)
        if parsed is not None:
            return parsed.fileloc
        from zonda.suggestions import dag_not_found

        raise DagNotFound(dag_not_found(dag_id, self.dags_folder, self.dags, self.import_errors))

    def holders(self) -> dict[str, str]:
        if self._holders is None:
            self._holders = self._read_holders() if self._read_holders is not None else {}
        return self._holders

    # -- internals ----------------------------------------------------------------------------------------------

    def _candidates(self, *, provider_examples: bool) -> list[str]:
        paths = [str(p) for p in self.listing.candidate_files(provider_examples=provider_examples)]
        self._absorb_listing_errors()
        return paths

    def _absorb_listing_errors(self) -> None:
        """Entries the walk refused (FIFOs, devices, link loops) are import errors without a parse."""
        for path, problem in self.listing.import_errors.items():
            if path not in self.files:
                self.files[path] = ParseResult(path=path, error=problem)
                self.import_errors[path] = problem

    def _parse(self, paths: list[str]) -> None:
        paths = [p for p in paths if p not in self.files]
        if not paths:
            return
        folder = self.dags_folder
        results = parse_in_children(
            paths,
            dags_folder=str(folder) if folder is not None else None,
            import_timeout=self.listing.import_timeout,
            plugins=self.plugins,
            memory_mb=self.memory_mb,
            plugins_folder=str(self.listing.plugins_folder) if self.listing.plugins_folder else None,
        )
        for result in results:
            self.files[result.path] = result
        self._assign()

    def _assign(self) -> None:
        """Give each DAG id to one file (the metastore's holder, else the first in path order) and make the
        other definitions their file's import error. Recomputed over every parsed file, so the outcome does not
        depend on which files a command happened to parse first."""
        ordered = sorted(self.files.values(), key=lambda r: _path_order(r.path, self.scanned_folders()))
        defined = {(d.dag_id, r.path) for r in ordered for d in r.dags}
        owner: dict[str, str] = {}
        if len({dag_id for dag_id, _ in defined}) < len(defined):  # some id is defined by two files
            owner = {dag_id: path for dag_id, path in self.holders().items() if (dag_id, path) in defined}
        for result in ordered:
            for parsed in result.dags:
                owner.setdefault(parsed.dag_id, result.path)
        self.dags = {}
        self.import_errors = {}
        for result in ordered:
            errors = [result.error] if result.error else []
            for parsed in result.dags:
                if owner[parsed.dag_id] == result.path:
                    self.dags[parsed.dag_id] = parsed
                else:
                    errors.append(duplicate_dag_id_error(parsed.dag_id, owner[parsed.dag_id], result.path))
            if errors:
                self.import_errors[result.path] = "\n".join(errors)


def _path_order(path: str, folders: list[Path]) -> tuple[int, str]:
    """The DAGs folder's files first, then the examples', each folder in path order."""
    for index, folder in enumerate(folders):
        if path.startswith(str(folder) + "/"):
            return (index, path)
    return (len(folders), path)
