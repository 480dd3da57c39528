"""The secrets masker: log records, nested structures, exception text, encoded forms, short secrets."""

from __future__ import annotations

import io
import logging
from urllib.parse import quote

import pytest

from zonda.connection import Connection
from zonda.masking import MASK, RedactingFilter, SecretsMasker, get_masker, is_sensitive_name, mask_secret

SECRET = "s3cr3t/p@ss word"


@pytest.fixture
def masker() -> SecretsMasker:
    m = SecretsMasker()
    m.add(SECRET)
    return m


@pytest.fixture
def process_masker(monkeypatch: pytest.MonkeyPatch) -> SecretsMasker:
    """A fresh process masker for this test, the previous one back afterwards: what other tests registered
    cannot change this test's outcome, and what this test registers does not leak into theirs."""
    import zonda.masking

    monkeypatch.setattr(zonda.masking, "_default_masker", None)
    return get_masker()


@pytest.fixture
def logger(masker):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(masker))
    log = logging.getLogger(f"test_masking.{id(masker)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield log, stream
    log.removeHandler(handler)


def test_log_message_and_args_are_redacted(logger):
    log, stream = logger
    log.info("connecting with %s to %s", SECRET, "db")
    log.info(f"inline {SECRET}")
    log.info("mapping %(cfg)s", {"cfg": {"password": "abc", "host": "h"}})
    text = stream.getvalue()
    assert SECRET not in text
    assert "connecting with *** to db" in text
    assert "inline ***" in text
    assert "'password': '***'" in text and "'host': 'h'" in text


def test_exception_text_in_logs_is_redacted(logger):
    log, stream = logger
    try:
        raise RuntimeError(f"login failed for {SECRET}")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    assert "RuntimeError: login failed for ***" in text
    assert SECRET not in text


def test_url_encoded_and_json_forms_are_redacted(masker):
    assert masker.redact_text(f"postgres://u:{quote(SECRET, safe='')}@h") == "postgres://u:***@h"
    assert masker.redact_text("q=" + quote(SECRET)) == "q=***"
    masker.add('with"quote\\back')
    assert masker.redact_text('{"p": "with\\"quote\\\\back"}') == '{"p": "***"}'


def test_nested_structures(masker):
    value = {
        "sql": f"select '{SECRET}'",
        "conf": {"api_key": "short", "Authorization": "Bearer xyz", "nested": [SECRET, 1, None]},
        "tuple": (SECRET,),
        "db_password": None,
    }
    assert masker.redact(value) == {
        "sql": "select '***'",
        "conf": {"api_key": MASK, "Authorization": MASK, "nested": [MASK, 1, None]},
        "tuple": (MASK,),
        "db_password": None,
    }


def test_value_under_a_sensitive_name_is_replaced_whole():
    m = SecretsMasker()
    assert m.redact("anything", name="private_key") == MASK
    assert m.redact({"a": 1}, name="credentials") == {"a": MASK}
    assert m.redact("anything", name="host") == "anything"


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "DB_PASSWORD",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "X-Api-Key",
        "authorization",
        "private_key",
        "credentials",
        "keyfile_dict",
    ],
)
def test_sensitive_names(name):
    assert is_sensitive_name(name)


@pytest.mark.parametrize("name", ["host", "schema", "login", "timeout", "sslmode", "", None, 3])
def test_not_sensitive_names(name):
    assert not is_sensitive_name(name)


def test_short_secrets_are_not_masked_by_substring():
    m = SecretsMasker()
    m.add("abc")
    assert m.redact_text("abcdef abc") == "abcdef abc"
    assert m.redact({"password": "abc"}) == {"password": MASK}


def test_exception_args_are_redacted_in_place_with_cause(masker):
    try:
        try:
            raise KeyError(SECRET)
        except KeyError as inner:
            raise ValueError(f"wrapped {SECRET}", 3) from inner
    except ValueError as exc:
        masker.redact_exception(exc)
        assert exc.args == ("wrapped ***", 3)
        assert str(exc.__cause__) == "'***'"


def test_connection_secrets_are_added():
    m = SecretsMasker()
    conn = Connection(
        conn_type="http",
        host="public-host",
        password="pw-123456",
        extra={
            "api_token": "tok-abcdef",
            "timeout": "30000",
            "auth": {"client_secret": "cs-abcdef"},
            "cert": "c-xyzxyz",
        },
    )
    m.add_connection(conn, secret_fields=["cert"])
    text = "public-host pw-123456 tok-abcdef 30000 cs-abcdef c-xyzxyz"
    assert m.redact_text(text) == "public-host *** *** 30000 *** ***"


def test_filter_is_a_no_op_when_nothing_is_registered():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    assert RedactingFilter(SecretsMasker()).filter(record)
    assert record.args == ("world",)  # untouched: the fast path did no formatting


def test_filter_still_masks_sensitive_keys_with_nothing_registered():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "cfg %s", ({"token": "abc"},), None)
    RedactingFilter(SecretsMasker()).filter(record)
    assert record.getMessage() == "cfg {'token': '***'}"


def test_filter_is_idempotent_across_handlers(masker):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "100%% %s", (SECRET,), None)
    flt = RedactingFilter(masker)
    flt.filter(record)
    flt.filter(record)
    assert record.getMessage() == "100% ***"


def test_process_masker_and_mask_secret(process_masker):
    assert not process_masker
    mask_secret("registered-explicitly-42")
    assert get_masker() is process_masker
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value registered-explicitly-42", (), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "value ***"


# -- URL credentials and query secrets (hidden even when no one registered them) ----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET https://user:pw@host/x", "GET https://user:***@host/x"),
        ("postgresql+psycopg://etl:p%40ss@db:5432/x", "postgresql+psycopg://etl:***@db:5432/x"),
        ("redis://:pw1@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("http://h/x?password=abc&page=2", "http://h/x?password=***&page=2"),
        ("http://h/x?page=2&api_token=abc#frag", "http://h/x?page=2&api_token=***#frag"),
        ("s3://b/k?X-Amz-Signature=abc&X-Amz-Credential=AK%2F1", "s3://b/k?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("https://maps/api?key=abc&q=x", "https://maps/api?key=***&q=x"),
        ("https://host/path?page=2&sort_key=name", "https://host/path?page=2&sort_key=name"),
        ("plain text, a=b and user@example.com", "plain text, a=b and user@example.com"),
    ],
)
def test_url_credentials_and_query_secrets_are_hidden(text: str, expected: str) -> None:
    assert SecretsMasker().redact_text(text) == expected


def test_filter_hides_url_credentials_with_nothing_registered():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling %s", ("https://u:pw@h?token=t",), None)
    RedactingFilter(SecretsMasker()).filter(record)
    assert record.getMessage() == "calling https://u:***@h?token=***"


def test_filter_hides_url_credentials_in_an_exception_argument_with_nothing_registered():
    error = RuntimeError("cannot connect to postgresql://u:hunter22@h/x")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "failed: %s", (error,), None)
    RedactingFilter(SecretsMasker()).filter(record)
    assert record.getMessage() == "failed: cannot connect to postgresql://u:***@h/x"


def test_redacted_exceptions_hide_url_credentials_with_nothing_registered():
    error = SecretsMasker().redact_exception(RuntimeError("postgresql://u:hunter22@h/x?password=abc"))
    assert str(error) == "postgresql://u:***@h/x?password=***"


def test_loading_settings_teaches_the_masker_the_configuration(tmp_path, monkeypatch, process_masker):
    from zonda.config import load_settings

    key_one, key_two = "Z" * 43 + "=", "Y" * 43 + "="
    (tmp_path / "zonda.toml").write_text(
        f'[core]\nfernet_key = "{key_one},{key_two}"\n[my_plugin]\nclient_secret = "cs-Pa55-1"\n'
    )
    environ = {
        "ZONDA__DATABASE__SQL_ALCHEMY_CONN": "postgresql://u:db-Pa55-2@h/x",
        "ZONDA__CELERY__BROKER_URL": "amqp://u:br-Pa55-3@h//",
        "ZONDA__CELERY__RESULT_BACKEND": "db+postgresql://u:rb-Pa55-4@h/x",
        "ZONDA__WEBSERVER__SECRET_KEY": "web-Pa55-5",
        "ZONDA_CONN_JSON": '{"conn_type": "http", "password": "js-Pa55-6", "extra": {"token": "ex-Pa55-7"}}',
        "ZONDA_CONN_BROKEN": "not a uri",
    }
    load_settings(tmp_path, environ)
    values = [
        key_one,
        key_two,
        "cs-Pa55-1",
        "db-Pa55-2",
        "br-Pa55-3",
        "rb-Pa55-4",
        "web-Pa55-5",
        "js-Pa55-6",
        "ex-Pa55-7",
    ]
    assert get_masker().redact_text(" ".join(values)) == " ".join([MASK] * len(values))
    assert get_masker().redact_text("postgresql://u:***@h/x and 127.0.0.1") == "postgresql://u:***@h/x and 127.0.0.1"


def test_urls_without_password_in_configuration_stay_readable(tmp_path, process_masker):
    from zonda.config import load_settings

    settings = load_settings(tmp_path, {"ZONDA__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0"})
    text = f"metastore {settings.sql_alchemy_conn}, broker redis://127.0.0.1:6379/0"
    assert get_masker().redact_text(text) == text
