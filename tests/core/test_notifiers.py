"""``BaseNotifier`` and ``SmtpNotifier`` as task and DAG callbacks, mail received by a real SMTP server.

As in Airflow 3.3 (``airflow.sdk.BaseNotifier``): a notifier is called with the context, its template fields are
rendered from the author's strings first, and it works alone or in a list of callbacks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from smtp_server import SmtpServer, body

from zonda import DAG
from zonda.notifications import BaseNotifier, SmtpNotifier
from zonda.operators import PythonOperator
from zonda.testing import run_dag


class Recorder(BaseNotifier):
    template_fields = ("message",)
    seen: list[str]

    def __init__(self, message: str) -> None:
        self.message = message
        self.seen = []

    def notify(self, context) -> None:
        self.seen.append(self.message)


def _boom() -> None:
    raise ValueError("bad row 7")


@pytest.fixture
def smtp(zonda_home, monkeypatch):
    with SmtpServer() as server:
        monkeypatch.setenv("ZONDA_CONN_SMTP_DEFAULT", server.connection_json(starttls=False))
        monkeypatch.setenv("ZONDA__EMAIL__FROM_EMAIL", "zonda@example.com")
        yield server


def test_template_fields_render_per_call_from_the_authors_template(zonda_home) -> None:
    shared = Recorder("{{ ti.task_id }} failed in {{ dag.dag_id }} on {{ ds }}")
    with DAG("notified", start_date=datetime(2024, 1, 1), schedule=None) as dag:
        PythonOperator(task_id="a", python_callable=_boom, on_failure_callback=shared)
        PythonOperator(task_id="b", python_callable=_boom, on_failure_callback=[shared, shared])
    assert run_dag(dag, "2024-05-02").states() == {"a": "failed", "b": "failed"}
    assert shared.seen == [
        "a failed in notified on 2024-05-02",
        "b failed in notified on 2024-05-02",
        "b failed in notified on 2024-05-02",
    ]
    assert shared.message == "{{ ti.task_id }} failed in {{ dag.dag_id }} on {{ ds }}"


def test_a_notifier_that_raises_is_logged_and_the_others_still_run(zonda_home) -> None:
    class Broken(BaseNotifier):
        def notify(self, context) -> None:
            raise RuntimeError("webhook down")

    after = Recorder("ran")
    with DAG("broken_notifier", start_date=datetime(2024, 1, 1), schedule=None) as dag:
        PythonOperator(task_id="a", python_callable=_boom, on_failure_callback=[Broken(), after])
    result = run_dag(dag)
    assert result.states() == {"a": "failed"}
    assert after.seen == ["ran"]
    log = result.ti("a").log_path.read_text()
    assert "on_failed_callback Broken() raised" in log and "RuntimeError: webhook down" in log


def test_a_notifier_without_notify_says_what_to_implement() -> None:
    with pytest.raises(NotImplementedError, match="Recorderless must implement notify"):
        type("Recorderless", (BaseNotifier,), {})()({})


def test_smtp_notifier_on_task_retry_and_dag_failure(smtp) -> None:
    with DAG(
        "mailed",
        start_date=datetime(2024, 1, 1),
        schedule=None,
        on_failure_callback=SmtpNotifier(to="ops@example.com", subject="Run {{ run_id }} of {{ dag.dag_id }} failed"),
    ) as dag:
        PythonOperator(
            task_id="load",
            python_callable=_boom,
            retries=1,
            retry_delay=timedelta(0),
            on_retry_callback=SmtpNotifier(
                to=["dev@example.com"], subject="retrying {{ ti.task_id }}", text="try {{ ti.try_number }} failed"
            ),
        )
    result = run_dag(dag, "2024-05-02")
    assert result.states() == {"load": "failed"}
    subjects = [m["Subject"] for m in smtp.messages]
    assert subjects == ["retrying load", f"Run {result.run.run_id} of mailed failed"]
    assert body(smtp.messages[0]).strip() == "try 1 failed"
    run_text = body(smtp.messages[1])
    assert "DAG:       mailed" in run_text and "Task:      load" in run_text
    assert smtp.envelopes[1] == ("zonda@example.com", ["ops@example.com"])
