"""``user_processing``: the classic first pipeline, offline.

Create a table, wait for the users API, extract a user, flatten it, store it, report. The "API" is a local,
deterministic generator of fake users (seeded by the run's ``ds``), so the DAG runs without internet access;
the HTTP provider variant of the same DAG is described in ``doc_md`` below.
"""

from __future__ import annotations

import os
import random
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from zonda import DAG
from zonda.operators import BashOperator, PythonOperator
from zonda.sensors import PythonSensor

DB_FILE_NAME = "user_processing.db"
TABLE = "users"

_FIRST_NAMES = ("Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances")
_LAST_NAMES = ("Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Ritchie", "Allen")
_COUNTRIES = ("Argentina", "Chile", "France", "Japan", "Kenya", "Norway", "Peru", "Spain")


def database_path(conf: Any = None) -> Path:
    """The SQLite file the DAG writes to: ``$ZONDA_HOME/user_processing.db``.

    ``conf`` is the task context's ``conf`` (the :class:`~zonda.config.Settings`); without it (a plain Python
    call), ``$ZONDA_HOME`` or ``~/zonda`` is used, as Zonda itself does.
    """
    home = getattr(conf, "home", None)
    if home is None:
        home = Path(os.environ.get("ZONDA_HOME") or "~/zonda").expanduser()
    return Path(home) / DB_FILE_NAME


def fake_user_api(seed: str) -> dict[str, Any]:
    """A stand-in for ``GET https://randomuser.me/api/``: the same response shape, generated locally.

    The same ``seed`` always gives the same user, so re-running a day stores the same row (idempotence).
    """
    rng = random.Random(seed)
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    username = f"{first}.{last}{rng.randint(1, 999)}".lower()
    return {
        "results": [
            {
                "gender": rng.choice(("female", "male")),
                "name": {"title": rng.choice(("Ms", "Mr", "Dr")), "first": first, "last": last},
                "location": {"country": rng.choice(_COUNTRIES), "city": "Somewhere"},
                "email": f"{username}@example.com",
                "login": {"username": username, "password": f"{rng.getrandbits(48):012x}"},
            }
        ],
        "info": {"seed": seed, "results": 1, "version": "1.4"},
    }


def _create_table(conf: Any) -> str:
    path = database_path(conf)
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {TABLE} (
                email TEXT PRIMARY KEY,
                firstname TEXT NOT NULL,
                lastname TEXT NOT NULL,
                country TEXT NOT NULL,
                username TEXT NOT NULL,
                password TEXT NOT NULL,
                ds TEXT NOT NULL
            )
            """
        )
    return str(path)


def _is_api_available(ds: str) -> bool:
    response = fake_user_api(seed=ds)
    return bool(response.get("results"))


def _extract_user(seed: str) -> dict[str, Any]:
    return fake_user_api(seed=seed)["results"][0]


def _process_user(user: dict[str, Any], processed_on: str) -> dict[str, str]:
    return {
        "firstname": user["name"]["first"],
        "lastname": user["name"]["last"],
        "country": user["location"]["country"],
        "username": user["login"]["username"],
        "password": user["login"]["password"],
        "email": user["email"],
        "ds": processed_on,
    }


def _store_user(conf: Any, ti: Any) -> int:
    """Upsert the processed user (re-running a day changes nothing) and return the table's row count."""
    user = ti.xcom_pull(task_ids="process_user")
    with closing(sqlite3.connect(database_path(conf))) as db, db:
        db.execute(
            f"""
            INSERT INTO {TABLE} (email, firstname, lastname, country, username, password, ds)
            VALUES (:email, :firstname, :lastname, :country, :username, :password, :ds)
            ON CONFLICT(email) DO UPDATE SET
                firstname = excluded.firstname, lastname = excluded.lastname, country = excluded.country,
                username = excluded.username, password = excluded.password, ds = excluded.ds
            """,
            user,
        )
        (rows,) = db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()
    return int(rows)


DOC_MD = """
# user_processing

The classic first pipeline, in the style of the Airflow tutorial, runnable offline:

| task | operator | what it does |
|---|---|---|
| `create_table` | `PythonOperator` | creates the `users` table in `$ZONDA_HOME/user_processing.db` (stdlib `sqlite3`) |
| `is_api_available` | `PythonSensor` | pokes the users "API" until it answers |
| `extract_user` | `PythonOperator` | fetches one user; the returned dict is the task's XCom |
| `process_user` | `PythonOperator` | flattens the user; `op_kwargs` are templated (an `XComArg` and `{{ ds }}`) |
| `store_user` | `PythonOperator` | upserts the row (idempotent: re-running a day changes nothing), returns the row count |
| `report` | `BashOperator` | echoes `{{ ds }}` and the row count pulled from XCom |

**No internet needed.** The "API" is `fake_user_api(seed)`, a local generator returning the same JSON shape
as `https://randomuser.me/api/`, seeded by `ds` so a day always yields the same user. With the HTTP provider
(`pip install ./providers/http`) the same DAG fetches over HTTP instead:

```python
from zonda_http.sensors import HttpSensor
from zonda_http.operators import HttpOperator

is_api_available = HttpSensor(task_id="is_api_available", http_conn_id="user_api", endpoint="api/")
extract_user = HttpOperator(
    task_id="extract_user", http_conn_id="user_api", endpoint="api/", method="GET",
    response_filter=lambda response: response.json()["results"][0],
)
```

with a connection such as `ZONDA_CONN_USER_API=http://randomuser.me`.

Try it: `zonda dags test user_processing 2024-01-02`, then
`sqlite3 $ZONDA_HOME/user_processing.db 'select * from users'`.
"""

with DAG(
    "user_processing",
    description="Create a table, wait for the users API, extract, process and store a user",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["example"],
    doc_md=DOC_MD,
) as dag:
    create_table = PythonOperator(task_id="create_table", python_callable=_create_table)

    is_api_available = PythonSensor(
        task_id="is_api_available",
        python_callable=_is_api_available,
        poke_interval=0.1,
        timeout=30,
    )

    extract_user = PythonOperator(
        task_id="extract_user",
        python_callable=_extract_user,
        op_kwargs={"seed": "{{ ds }}"},
    )

    process_user = PythonOperator(
        task_id="process_user",
        python_callable=_process_user,
        op_kwargs={"user": extract_user.output, "processed_on": "{{ ds }}"},
    )

    store_user = PythonOperator(task_id="store_user", python_callable=_store_user)

    report = BashOperator(
        task_id="report",
        # Data (the XCom) goes through env; the script itself is only what this file says.
        bash_command='echo "{{ ds }}: $ROWS row(s) in the users table"',
        env={"ROWS": "{{ ti.xcom_pull(task_ids='store_user') }}"},
        append_env=True,
    )

    create_table >> is_api_available >> extract_user >> process_user >> store_user >> report
