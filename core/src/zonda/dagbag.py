"""Finding and importing DAG files.

Every ``.py`` file under the DAGs folder that mentions both "dag" and "zonda" (the cheap safe-mode filter
Airflow users know) and is not excluded by a ``.zondaignore`` is imported in its own module namespace. A file
that raises, or takes longer than ``core.dagbag_import_timeout``, becomes an import error with its traceback;
the other files load regardless.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import importlib.util
import logging
import os
import stat
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda import _context_stack
from zonda.exceptions import DagNotFound, ZondaTaskTimeout

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.dag_definition import DAG

log = logging.getLogger("zonda.dagbag")

IGNORE_FILE = ".zondaignore"
EXAMPLES_FOLDER = Path(__file__).resolve().parent / "example_dags"
#: Safe mode looks for "dag" and "zonda" in this many leading bytes of a file (imports come first), so a huge
#: file costs no more to classify than a small one.
SAFE_MODE_READ_LIMIT = 1 << 20
#: ``.zondaignore`` files are read up to this size.
IGNORE_FILE_READ_LIMIT = 1 << 20


def example_folders() -> list[Path]:
    """The core's example DAG folder, then those installed providers declare."""
    return [EXAMPLES_FOLDER, *provider_example_folders()]


def provider_example_folders() -> list[Path]:
    """Folders of the ``example_dags`` packages installed providers declare in their manifests (located, not
    imported: only each provider's top-level ``__init__`` runs)."""
    from zonda.providers import get_providers_registry

    folders: list[Path] = []
    for info in get_providers_registry().providers.values():
        for module in info.example_dags:
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError) as exc:
                log.warning("provider %s: example DAGs %s not found: %s", info.name, module, exc)
                continue
            locations = list(spec.submodule_search_locations or []) if spec else []
            if not locations:
                log.warning("provider %s: example DAGs %s is not a package", info.name, module)
                continue
            folders.extend(Path(location).resolve() for location in locations)
    return folders


@dataclass
class FileResult:
    path: str
    dag_ids: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class FolderScan:
    """One walk of a DAG folder: the candidate files (regular ``.py`` files, sorted, each real file once) and
    the ``.py`` entries that cannot be DAG files (a FIFO, a socket, a device, a symlink loop or a dangling
    link), each with the one-line reason that becomes its import error."""

    files: list[Path] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    #: ``os.stat`` of each file, taken while classifying it (the DAG processor's change detection reuses it)
    stats: dict[str, os.stat_result] = field(default_factory=dict)


def _ignore_patterns(folder: Path) -> list[str]:
    ignore = folder / IGNORE_FILE
    try:
        text = read_regular_file(ignore, limit=IGNORE_FILE_READ_LIMIT).decode("utf-8", errors="replace")
    except (OSError, NotARegularFile):
        return []
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def _ignored(relative: str, patterns: Iterable[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    for raw in patterns:
        pattern = raw.rstrip("/")
        if pattern.startswith("/"):
            if fnmatch.fnmatch(relative, pattern[1:]) or relative.startswith(pattern[1:] + "/"):
                return True
        elif (
            fnmatch.fnmatch(relative, pattern)
            or fnmatch.fnmatch(name, pattern)
            or fnmatch.fnmatch(relative, f"*/{pattern}")
            or relative.startswith(pattern + "/")
            or f"/{pattern}/" in f"/{relative}"
        ):
            return True
    return False


def list_dag_files(folder: Path, *, safe_mode: bool = True) -> list[Path]:
    """DAG files under ``folder``, sorted; ``.zondaignore`` patterns (glob syntax) apply to their folder's tree."""
    scan = scan_dag_folder(folder)
    if not safe_mode:
        return scan.files
    return [path for path in scan.files if _might_contain_dag(path)]


def scan_dag_folder(folder: Path) -> FolderScan:
    """Walk ``folder`` without ever looping or blocking.

    Symbolic links are followed, but each real directory is entered once (a link to an ancestor, or two links
    to each other, would otherwise make the walk endless), and each real file is listed once. Nothing is opened
    here but ``.zondaignore`` files (regular files only, size-capped): entries are classified with ``stat``.
    """
    scan = FolderScan()
    if not folder.is_dir():
        return scan
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    # Each frame: a directory (its path as reached, under ``folder``) and the ignore rules in force there.
    stack: list[tuple[Path, list[tuple[Path, list[str]]]]] = [(folder, [])]
    while stack:
        root, inherited = stack.pop()
        real = os.path.realpath(root)
        if real in seen_dirs:
            log.debug("%s: already walked as %s; not walking it twice", root, real)
            continue
        seen_dirs.add(real)
        patterns = _ignore_patterns(root)
        active = [*inherited, (root, patterns)] if patterns else inherited

        def excluded(path: Path, active: list[tuple[Path, list[str]]] = active) -> bool:
            return any(_ignored(path.relative_to(base).as_posix(), pats) for base, pats in active)

        try:
            with os.scandir(root) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            log.warning("cannot list %s: %s", root, exc)
            continue
        subdirs: list[Path] = []
        for entry in entries:
            path = root / entry.name
            try:
                is_dir = entry.is_dir()  # follows links; a link loop is not a directory
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.name.startswith((".", "__")) and not excluded(path):
                    subdirs.append(path)
                continue
            if not entry.name.endswith(".py") or entry.name.startswith(".") or excluded(path):
                continue
            try:
                st = os.stat(path)
            except OSError:
                st = None
            problem = _not_a_dag_file(path, st)
            if problem == "":
                continue  # removed while walking
            if problem is not None:
                scan.problems[str(path)] = problem
                continue
            real_file = os.path.realpath(path) if entry.is_symlink() else os.path.join(real, entry.name)
            if real_file in seen_files:
                continue
            seen_files.add(real_file)
            scan.files.append(path)
            if st is not None:
                scan.stats[str(path)] = st
        stack.extend((sub, active) for sub in reversed(subdirs))
    scan.files.sort()
    return scan


def _not_a_dag_file(path: Path, st: os.stat_result | None = None) -> str | None:
    """Why ``path`` (a ``.py`` entry) cannot be read as a DAG file, or None when it is a regular file ("" when it
    vanished meanwhile). ``st``: its ``os.stat`` when the caller already has it."""
    fix = "remove it, rename it so it does not end in .py, or list it in .zondaignore"
    try:
        st = st if st is not None else os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; {fix}"
        return ""
    except OSError as exc:  # ELOOP: links pointing at each other; EACCES
        reason = "a symbolic link loop" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
        return f"{path} is {reason}; {fix}"
    if stat.S_ISREG(st.st_mode):
        return None
    return f"{path} is {_file_kind(st.st_mode)}, not a regular file, and is never read as a DAG file; {fix}"


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


class NotARegularFile(Exception):
    """Raised instead of opening a FIFO, socket or device in a way that could block or never end."""


def read_regular_file(path: Path | str, *, limit: int | None) -> bytes:
    """At most ``limit`` bytes (all when None) of ``path``, which must be a regular file.

    The file is opened non-blocking (opening a FIFO with no writer would otherwise wait forever) and checked with
    ``fstat`` on the open descriptor, so a file swapped for a FIFO or a device after a ``stat`` is still refused.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(f"{path} is {_file_kind(mode)}, not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read() if limit is None else handle.read(limit)
    finally:
        os.close(fd)


def _might_contain_dag(path: Path) -> bool:
    """Safe mode: the file's first :data:`SAFE_MODE_READ_LIMIT` bytes mention both "dag" and "zonda"."""
    try:
        content = read_regular_file(path, limit=SAFE_MODE_READ_LIMIT).lower()
    except (OSError, NotARegularFile):
        return False
    return b"dag" in content and b"zonda" in content


class DagBag:
    """The DAGs found in a folder (and the examples, when asked), with the files that failed to import."""

    def __init__(
        self,
        dags_folder: Path | str | None,
        *,
        include_examples: bool = False,
        import_timeout: float = 30.0,
        safe_mode: bool = True,
        plugins: Any = None,
        plugins_folder: Path | str | None = None,
    ) -> None:
        self.dags_folder = Path(dags_folder) if dags_folder is not None else None
        self.include_examples = include_examples
        self.import_timeout = import_timeout
        self.safe_mode = safe_mode
        self.plugins = plugins
        #: On ``sys.path`` while DAG files import, as the plugin manager's folder is (given when there is none).
        self.plugins_folder = Path(plugins_folder) if plugins_folder else None
        self.dags: dict[str, DAG] = {}
        self.import_errors: dict[str, str] = {}
        self.files: dict[str, FileResult] = {}
        self.full_scan = False

    @classmethod
    def from_settings(cls, settings: Settings, plugins: Any = None) -> DagBag:
        return cls(
            settings.dags_folder,
            include_examples=bool(settings.get("core", "load_examples")),
            import_timeout=float(settings.get("core", "dagbag_import_timeout")),
            plugins=plugins,
            plugins_folder=settings.plugins_folder,
        )

    def candidate_files(self, *, provider_examples: bool = True) -> list[Path]:
        """The files to import. Entries that cannot be DAG files (a FIFO, a device, a symlink loop named
        ``*.py``) are recorded as import errors here, never opened."""
        files = self._scan(self.dags_folder, safe_mode=self.safe_mode) if self.dags_folder else []
        if self.include_examples:
            files.extend(self._scan(EXAMPLES_FOLDER, safe_mode=False))
            if provider_examples:
                files.extend(self._provider_example_files())
        return files

    def _scan(self, folder: Path, *, safe_mode: bool) -> list[Path]:
        scan = scan_dag_folder(folder)
        for path, problem in scan.problems.items():
            self.files[path] = FileResult(path=path, error=problem)
            self.import_errors[path] = problem
        if not safe_mode:
            return scan.files
        return [path for path in scan.files if _might_contain_dag(path)]

    def _provider_example_files(self) -> list[Path]:
        files: list[Path] = []
        for folder in provider_example_folders():
            files.extend(self._scan(folder, safe_mode=False))
        return files

    def collect(self) -> DagBag:
        for path in self.candidate_files():
            self.process_file(path)
        self.full_scan = True
        return self

    def scanned_folders(self) -> list[Path]:
        """Folders a full :meth:`collect` covered; an import error recorded under one of them for a file that
        was not seen any more (deleted, renamed, now ignored) is stale."""
        folders = [self.dags_folder.resolve()] if self.dags_folder is not None else []
        if self.include_examples:
            folders.extend(example_folders())
        return folders

    def collect_for(self, dag_id: str) -> DagBag:
        """Import only the files whose text mentions ``dag_id``; all files when none does.

        ``zonda dags test`` and ``tasks test`` need one DAG, and importing one file instead of a whole folder
        is most of their start-up time.
        """
        needle = dag_id.encode()
        # The user's files and the core's examples first: reading the providers' manifests (for their
        # example DAGs) costs more than finding most DAGs.
        files = self.candidate_files(provider_examples=False)
        for path in files:
            if _mentions(path, needle):
                self.process_file(path)
        if dag_id not in self.dags and self.include_examples:
            extra = self._provider_example_files()
            files.extend(extra)
            for path in extra:
                if _mentions(path, needle):
                    self.process_file(path)
        if dag_id not in self.dags:
            for path in files:
                if str(path) not in self.files:
                    self.process_file(path)
        return self

    def get_dag(self, dag_id: str) -> DAG:
        if dag_id in self.dags:
            return self.dags[dag_id]
        from zonda.suggestions import dag_not_found

        raise DagNotFound(dag_not_found(dag_id, self.dags_folder, self.dags, self.import_errors))

    def process_file(self, path: Path) -> FileResult:
        from zonda.runner.timeout import deadline

        path = path.resolve()
        key = str(path)
        if self.dags_folder is not None and self.dags_folder.is_dir():
            # As in Airflow, DAG files may import helper modules that sit next to them.
            folder = str(self.dags_folder.resolve())
            if folder not in sys.path:
                sys.path.append(folder)
        if self.plugins is not None:
            self.plugins.make_folder_importable()
        if self.plugins_folder is not None and self.plugins_folder.is_dir():
            from zonda.plugins.manager import ensure_on_path

            ensure_on_path(self.plugins_folder)
        result = FileResult(path=key)
        self.files[key] = result
        module_name = "zonda_dag_" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]
        started = time.perf_counter()
        token = _context_stack.start_collecting()
        created: list[DAG] = []
        try:
            problem = _not_a_dag_file(path)
            if problem:  # importing would open it: a FIFO blocks, a device never ends
                raise NotARegularFile(problem)
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            message = (
                f"DAG file {path} took longer than core.dagbag_import_timeout ({self.import_timeout:g} s) to "
                "import; move slow work (API calls, queries) out of module level into tasks, or raise the timeout"
            )
            with deadline(self.import_timeout, message):
                spec.loader.exec_module(module)
        except NotARegularFile as exc:
            created = _context_stack.stop_collecting(token)
            token = None
            result.error = str(exc)
        except (Exception, SystemExit, ZondaTaskTimeout) as exc:
            created = _context_stack.stop_collecting(token)
            token = None
            sys.modules.pop(module_name, None)
            result.error = _format_error(exc, key)
        finally:
            if token is not None:
                created = _context_stack.stop_collecting(token)
            result.seconds = time.perf_counter() - started
        if result.error is None:
            self._register(path, module, created, result)
        if result.error is not None:
            self.import_errors[key] = result.error
        return result

    def _register(self, path: Path, module: object, created: list[DAG], result: FileResult) -> None:
        from zonda.dag_definition import DAG

        found: dict[int, DAG] = {id(d): d for d in created}
        for value in vars(module).values():
            if isinstance(value, DAG):
                found.setdefault(id(value), value)
        errors = []
        for dag in found.values():
            if dag.fileloc in ("<unknown>", "") or not Path(dag.fileloc).exists():
                dag.fileloc = str(path)
            try:
                dag.validate()
                self._apply_policies(dag)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            existing = self.dags.get(dag.dag_id)
            if existing is not None and existing is not dag:
                if dag.dag_id in result.dag_ids:
                    errors.append(
                        f"DuplicateDagId: DAG {dag.dag_id!r} is defined twice in {path}; the first definition "
                        "is kept: give the other one another dag_id"
                    )
                else:
                    from zonda.dag_processing.parsing import duplicate_dag_id_error

                    errors.append(duplicate_dag_id_error(dag.dag_id, self._file_of(dag.dag_id), str(path)))
                continue
            self.dags[dag.dag_id] = dag
            result.dag_ids.append(dag.dag_id)
        if errors:
            result.error = "\n".join(errors)

    def _file_of(self, dag_id: str) -> str:
        """The processed file that defined ``dag_id``."""
        return next((key for key, result in self.files.items() if dag_id in result.dag_ids), "another file")

    def _apply_policies(self, dag: DAG) -> None:
        """``dag_policy`` then ``task_policy`` from plugins; a rejection names the DAG, the policy and why."""
        if self.plugins is None:
            return
        from zonda.exceptions import PolicyViolation

        try:
            self.plugins.call_policy("dag_policy", dag=dag)
            for task in dag.tasks:
                self.plugins.call_policy("task_policy", task=task)
        except PolicyViolation as exc:
            raise PolicyViolation(f"DAG {dag.dag_id!r}: {exc}") from None

    def __iter__(self) -> Iterator[DAG]:
        return iter(self.dags.values())

    def __len__(self) -> int:
        return len(self.dags)


def _mentions(path: Path, needle: bytes) -> bool:
    try:
        return needle in read_regular_file(path, limit=SAFE_MODE_READ_LIMIT)
    except (OSError, NotARegularFile):
        return False


def _format_error(exc: BaseException, filename: str) -> str:
    """The traceback from the DAG file's first frame on (Zonda's import machinery is noise to the user)."""
    frames = traceback.extract_tb(exc.__traceback__)
    start = next((i for i, f in enumerate(frames) if f.filename == filename), 0)
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames[start:])]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    from zonda.masking import get_masker

    # Here, in the parsing process, the masker also knows connections the file fetched from any backend.
    return get_masker().redact_text("".join(lines).rstrip())


def record_import_errors(metastore: object, bag: DagBag) -> None:
    """Replace the metastore's import errors of the files this bag processed with the current ones; after a full
    scan, also drop errors of files under the scanned folders that no longer exist or are now ignored."""
    from sqlalchemy import delete, insert, select

    from zonda.metastore.tables import filename_hash, import_error
    from zonda.timezone import utcnow

    engine = metastore.engine  # type: ignore[attr-defined]
    processed = list(bag.files)
    full_scan = getattr(bag, "full_scan", False)
    if not processed and not full_scan:
        return
    from zonda.secrets import mask_stored_texts

    files = list(bag.import_errors)
    masked = mask_stored_texts([bag.import_errors[f] for f in files], metastore=metastore)  # type: ignore[arg-type]
    errors = dict(zip(files, masked, strict=True))
    with engine.begin() as conn:
        hashes = [filename_hash(p) for p in processed]
        for start in range(0, len(hashes), 500):
            conn.execute(delete(import_error).where(import_error.c.filename_hash.in_(hashes[start : start + 500])))
        if full_scan:
            seen = set(processed)
            roots = [str(folder) + os.sep for folder in bag.scanned_folders()]
            stale = [
                row.id
                for row in conn.execute(select(import_error.c.id, import_error.c.filename))
                if row.filename not in seen and any(row.filename.startswith(root) for root in roots)
            ]
            if stale:
                conn.execute(delete(import_error).where(import_error.c.id.in_(stale)))
        rows = [
            {"filename": f, "filename_hash": filename_hash(f), "stacktrace": e, "timestamp": utcnow()}
            for f, e in errors.items()
        ]
        if rows:
            conn.execute(insert(import_error), rows)
