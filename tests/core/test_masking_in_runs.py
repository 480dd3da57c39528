"""Secrets stay out of task logs, task errors and stored rendered fields during real runs."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select

from zonda import DAG
from zonda.hooks import BaseHook
from zonda.metastore.models import TaskInstanceModel
from zonda.operators import BashOperator, PythonOperator
from zonda.testing import run_dag

SECRET = "s3cr3t-Pa55word!"


def test_connection_password_is_masked_in_logs_errors_and_rendered_fields(zonda_metastore, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA_CONN_WAREHOUSE", f"postgres://etl:{SECRET}@db.internal:5432/dwh")

    def leak() -> None:
        conn = BaseHook.get_connection("warehouse")
        print(f"connecting with password {conn.password}")
        raise RuntimeError(f"login failed for etl:{conn.password}")

    with DAG("masking", start_date=datetime(2024, 1, 1)) as dag:
        PythonOperator(task_id="leak", python_callable=leak)
        BashOperator(
            task_id="echo", bash_command="echo token={{ params.api_token }}", params={"api_token": "tok-123456"}
        )
    result = run_dag(dag, metastore=zonda_metastore)
    leak_ti = result.ti("leak")
    log = leak_ti.log_path.read_text()
    assert SECRET not in log
    assert "connecting with password ***" in log
    assert SECRET not in leak_ti.error and "***" in leak_ti.error
    with zonda_metastore.session() as session:
        rendered = session.scalars(
            select(TaskInstanceModel.rendered_fields).where(TaskInstanceModel.task_id == "echo")
        ).one()
    # the param is named like a secret (api_token), so its value is masked wherever it is rendered
    assert json.loads(rendered)["bash_command"] == "echo token=***"


def test_dag_param_named_like_a_secret_is_masked_in_logs(zonda_home) -> None:
    with DAG("masking_conf", start_date=datetime(2024, 1, 1), params={"db_password": "default-pw-0"}) as dag:
        BashOperator(task_id="echo", bash_command="echo pw={{ params.db_password }}")
    result = run_dag(dag, conf={"db_password": "from-conf-secret"})
    log = result.ti("echo").log_path.read_text()
    assert "from-conf-secret" not in log and "pw=***" in log
