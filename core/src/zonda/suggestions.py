""" "Did you mean ...?": close matches for a name a user typed (a DAG id, a task id, an operator argument).

One helper for every place that reports an unknown name, so the CLI's commands, the DAG bag and operator
argument checks all phrase a likely typo the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

#: How similar a candidate must be (difflib ratio) to be offered; difflib's default.
CUTOFF = 0.6


def close_matches(word: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The candidates most like ``word``, best first (at most ``limit``); a case-only difference first of all.
    ``word`` itself is never offered (suggesting the name the user already typed helps nobody)."""
    names = sorted(set(candidates) - {word})
    same_but_case = [name for name in names if name.lower() == word.lower() and name != word]
    found = difflib.get_close_matches(word, names, n=limit, cutoff=CUTOFF)
    return (same_but_case + [name for name in found if name not in same_but_case])[:limit]


def did_you_mean(word: str, candidates: Iterable[str], limit: int = 3) -> str:
    """``"did you mean 'a'?"`` or ``"did you mean 'a' or 'b'?"``; empty when nothing is close."""
    return suggest(close_matches(word, candidates, limit))


def suggest(found: Sequence[str]) -> str:
    """``"did you mean 'a'?"`` for names already chosen by :func:`close_matches` (a caller that also needs the
    names themselves); empty when there are none."""
    if not found:
        return ""
    quoted = [repr(name) for name in found]
    choices = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"did you mean {choices}?"


def unknown_name(message: str, word: str, candidates: Iterable[str], otherwise: str = "") -> str:
    """``message`` followed by ``; did you mean ...?`` when something is close, else by ``; otherwise``.

    >>> unknown_name("no DAG 'user_procesing' in the DAGs folder", "user_procesing", ["user_processing"])
    "no DAG 'user_procesing' in the DAGs folder; did you mean 'user_processing'?"
    """
    hint = did_you_mean(word, candidates) or otherwise
    return f"{message}; {hint}" if hint else message


def dag_not_found(dag_id: str, dags_folder: object, known: Iterable[str], import_errors: Iterable[str]) -> str:
    """The one-line "unknown DAG" message of every command that reads DAG files, with a likely typo named and
    the files that failed to import (the DAG may be in one of them)."""
    where = f"the DAGs folder {dags_folder}" if dags_folder else "any DAGs folder (none is set)"
    message = unknown_name(f"no DAG {dag_id!r} in {where}", dag_id, known, "`zonda dags list` lists them")
    failed = sorted(import_errors)
    if failed:
        message += f"; {len(failed)} DAG file(s) failed to import (see `zonda dags list-import-errors`): " + ", ".join(
            failed[:3]
        )
    return message
