"""``email_on_failure`` / ``email_on_retry`` send real mail to a real SMTP server on loopback (aiosmtpd).

Compared with Airflow 3.3 (``airflow.sdk.execution_time.task_runner``): both flags default to true once ``email``
is set, one message per failed try (retry or final failure), and a send failure never changes the task's state.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from smtp_server import SmtpServer, body, free_port
from tls_files import self_signed_pem

from zonda import DAG
from zonda.hooks import BaseHook
from zonda.hooks.smtp import SmtpHook, SmtpSendError
from zonda.operators import PythonOperator
from zonda.testing import run_dag

SECRET = "pw-Zq81!secret"


def _fail() -> None:
    conn = BaseHook.get_connection("warehouse")
    raise RuntimeError(f"login refused for etl:{conn.password}")


def _dag(dag_id: str, **task_args: object) -> DAG:
    with DAG(dag_id, start_date=datetime(2024, 1, 1), schedule=None) as dag:
        PythonOperator(task_id="load", python_callable=_fail, retry_delay=timedelta(0), **task_args)
    return dag


@pytest.fixture
def smtp(zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA_CONN_WAREHOUSE", f"postgres://etl:{SECRET}@db.internal:5432/dwh")
    monkeypatch.setenv("ZONDA__EMAIL__FROM_EMAIL", "zonda@example.com")
    monkeypatch.setenv("ZONDA__WEBSERVER__BASE_URL", "https://zonda.example.com/")
    with SmtpServer() as server:
        monkeypatch.setenv("ZONDA_CONN_SMTP_DEFAULT", server.connection_json(starttls=False))
        yield server


def test_one_message_per_retry_and_per_failure_with_task_run_try_and_log_link(smtp) -> None:
    result = run_dag(_dag("mailer", email=["ops@example.com", "oncall@example.com"], retries=1), "2024-03-01")
    assert result.states() == {"load": "failed"}
    assert len(smtp.messages) == 2
    retry, failure = smtp.messages
    assert retry["Subject"] == "Zonda alert: mailer.load failed, will retry (try 1 of 2)"
    assert failure["Subject"] == "Zonda alert: mailer.load failed (try 2 of 2)"
    assert failure["From"] == "zonda@example.com"
    assert smtp.envelopes[1] == ("zonda@example.com", ["ops@example.com", "oncall@example.com"])
    text = body(failure)
    run_id = result.run.run_id
    assert f"Run:       {run_id}" in text
    assert "Try:       2 of 2" in text
    assert "https://zonda.example.com/dags/mailer/runs/" in text and "/tasks/load?try_number=2" in text
    assert "RuntimeError: login refused for etl:***" in text
    assert SECRET not in text and SECRET not in body(retry)


def test_email_on_retry_false_sends_only_the_failure(smtp) -> None:
    result = run_dag(_dag("quiet_retry", email="ops@example.com", retries=1, email_on_retry=False))
    assert result.states() == {"load": "failed"}
    assert [m["Subject"] for m in smtp.messages] == ["Zonda alert: quiet_retry.load failed (try 2 of 2)"]


def test_default_args_carry_email_and_flags(smtp) -> None:
    with DAG(
        "from_defaults",
        start_date=datetime(2024, 1, 1),
        schedule=None,
        default_args={"email": "ops@example.com", "email_on_failure": False},
    ) as dag:
        PythonOperator(task_id="load", python_callable=_fail)
        PythonOperator(task_id="loud", python_callable=_fail, email_on_failure=True)
    assert run_dag(dag).states() == {"load": "failed", "loud": "failed"}
    assert [m["Subject"] for m in smtp.messages] == ["Zonda alert: from_defaults.loud failed (try 1 of 1)"]


def test_nothing_is_sent_without_email_or_on_success(smtp) -> None:
    with DAG("silent", start_date=datetime(2024, 1, 1), schedule=None) as dag:
        PythonOperator(task_id="load", python_callable=_fail)
        PythonOperator(task_id="fine", python_callable=lambda: None, email="ops@example.com")
    assert run_dag(dag).states() == {"load": "failed", "fine": "success"}
    assert smtp.messages == []


def test_an_unreachable_mail_server_is_logged_and_changes_nothing(zonda_home, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA_CONN_WAREHOUSE", f"postgres://etl:{SECRET}@db.internal:5432/dwh")
    dead = free_port()
    monkeypatch.setenv(
        "ZONDA_CONN_SMTP_DEFAULT",
        f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {dead}, "login": "u", "password": "{SECRET}"}}',
    )
    result = run_dag(_dag("no_mail_server", email="ops@example.com", retries=1))
    ti = result.ti("load")
    assert ti.state.value == "failed" and ti.try_number == 2
    log = ti.log_path.read_text()
    assert "Could not send the failure e-mail alert to ops@example.com through connection 'smtp_default'" in log
    assert f"cannot reach SMTP server 127.0.0.1:{dead}" in log
    assert SECRET not in log


def test_tls_is_verified_by_default_and_a_ca_bundle_makes_it_work(zonda_home, tmp_path, monkeypatch) -> None:
    cert, key = self_signed_pem(tmp_path)
    with SmtpServer(tls_files=(cert, key), login=("mailer", SECRET)) as server:
        conn = f'"conn_type": "smtp", "host": "127.0.0.1", "port": {server.port}, "login": "mailer", "password": "{SECRET}"'
        monkeypatch.setenv("ZONDA_CONN_SMTP_DEFAULT", "{" + conn + "}")
        with pytest.raises(SmtpSendError, match=r"TLS with SMTP server .* failed: .*ca_bundle") as refused:
            SmtpHook().send_email("ops@example.com", "hello", "body", from_email="zonda@example.com")
        assert SECRET not in str(refused.value)
        assert server.messages == []

        monkeypatch.setenv("ZONDA_CONN_SMTP_DEFAULT", "{" + conn + f', "extra": {{"ca_bundle": "{cert}"}}}}')
        SmtpHook().send_email("ops@example.com", "hello", "body text", from_email="zonda@example.com")
        assert [m["Subject"] for m in server.messages] == ["hello"]
        assert body(server.messages[0]).strip() == "body text"


def test_starttls_missing_on_the_server_is_an_error_not_clear_text(zonda_home, monkeypatch) -> None:
    with SmtpServer() as server:
        monkeypatch.setenv("ZONDA_CONN_SMTP_DEFAULT", server.connection_json())
        with pytest.raises(SmtpSendError, match='does not offer STARTTLS; set the extra "ssl": true'):
            SmtpHook().send_email("ops@example.com", "hello", "body", from_email="zonda@example.com")
        assert server.messages == []


KILLED = """
import os
import signal
from datetime import datetime, timedelta

from zonda import DAG
from zonda.operators import PythonOperator


def die(**context):
    os.kill(os.getpid(), signal.SIGKILL)  # no end state, no callback, no mail from the task process


with DAG("killed", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="dies", python_callable=die, retries=1, retry_delay=timedelta(0), email="ops@example.com")
"""


def test_tries_the_scheduler_ends_are_mailed_from_the_dag_processor(zonda_home, monkeypatch) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    import scheduler_helpers as h

    from zonda.dag_processing import DagProcessor
    from zonda.executors.local import LocalExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    with SmtpServer() as server:
        monkeypatch.setenv("ZONDA_CONN_SMTP_DEFAULT", server.connection_json(starttls=False))
        monkeypatch.setenv("ZONDA__EMAIL__FROM_EMAIL", "zonda@example.com")
        settings, metastore = h.configure(zonda_home, monkeypatch, None, {("scheduler", "task_heartbeat_timeout"): 30})
        try:
            h.write_dag(zonda_home, "killed.py", KILLED)
            h.store_dags(settings, metastore)
            run = int(trigger_dag(metastore.engine, "killed")["id"])
            scheduler = Scheduler(
                settings, executor=LocalExecutor(parallelism=1, settings=settings), metastore=metastore
            )
            assert h.drive(scheduler, [run], timeout=60)[run] == "failed"
            assert server.messages == []
            with DagProcessor(settings, metastore) as processor:
                assert processor.run_callbacks(timeout=60) == 2
        finally:
            metastore.dispose()
        assert [m["Subject"] for m in server.messages] == [
            "Zonda alert: killed.dies failed, will retry (try 1 of 2)",
            "Zonda alert: killed.dies failed (try 2 of 2)",
        ]
        assert "exited with -9 without recording an end state" in body(server.messages[1])
