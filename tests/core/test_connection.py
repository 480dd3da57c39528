"""Connection URIs and JSON: parsing, rendering, and round trips over awkward values."""

from __future__ import annotations

import json
import random

import pytest

from zonda.connection import Connection, InvalidConnection

AWKWARD = "@:/?#%&=+ \\\"'[]{}~!$*,;éü€😀\t"


def test_from_uri_all_parts():
    conn = Connection.from_uri("postgres://user:pa%40ss@db.example.com:5432/analytics?sslmode=require&x=1", "my_db")
    assert conn.conn_id == "my_db"
    assert conn.conn_type == "postgres"
    assert conn.login == "user"
    assert conn.password == "pa@ss"
    assert conn.host == "db.example.com"
    assert conn.port == 5432
    assert conn.schema == "analytics"
    assert conn.extra == {"sslmode": "require", "x": "1"}
    assert conn.extra_dejson == conn.extra


def test_password_with_every_reserved_character_survives():
    conn = Connection(conn_id="c", conn_type="postgres", host="h", login="u@x", password="p@ss:w/o?r#d%20&=")
    uri = conn.get_uri()
    assert "p@ss" not in uri
    back = Connection.from_uri(uri, "c")
    assert back.password == "p@ss:w/o?r#d%20&="
    assert back.login == "u@x"


def test_underscore_conn_types_use_dashes_in_the_scheme():
    conn = Connection(conn_type="google_cloud_platform", host="h")
    assert conn.get_uri().startswith("google-cloud-platform://")
    assert Connection.from_uri("google-cloud-platform://h").conn_type == "google_cloud_platform"


def test_nested_extras_use_the_extra_parameter():
    conn = Connection(conn_type="http", host="api", extra={"headers": {"X-Trace": "1"}, "timeout": 3, "verify": False})
    uri = conn.get_uri()
    assert "__extra__=" in uri
    assert Connection.from_uri(uri).extra == conn.extra


def test_extra_parameter_written_by_hand_merges_with_plain_ones():
    extra = json.dumps({"a": [1, 2]})
    conn = Connection.from_uri(f"http://h?__extra__={extra}&b=2")
    assert conn.extra == {"a": [1, 2], "b": "2"}


def test_uri_without_credentials_or_port():
    conn = Connection.from_uri("http://example.com")
    assert (conn.host, conn.login, conn.password, conn.port, conn.schema, conn.extra) == (
        "example.com",
        None,
        None,
        None,
        None,
        {},
    )
    assert conn.get_uri() == "http://example.com"


def test_ipv6_host():
    conn = Connection.from_uri("postgres://u:p@[::1]:5432/db")
    assert conn.host == "[::1]"
    assert conn.port == 5432
    assert Connection.from_uri(conn.get_uri()) == conn


def test_raw_at_sign_in_password_is_read_leniently():
    conn = Connection.from_uri("mysql://root:p@ss@localhost:3306")
    assert (conn.login, conn.password, conn.host) == ("root", "p@ss", "localhost")


@pytest.mark.parametrize(
    "uri, message",
    [
        ("not a uri", "type://"),
        ("postgres://h:notaport", "port must be a number"),
        ("postgres://h:70000", "out of range"),
        ("http://h?__extra__=[1]", "JSON object"),
        ("http://h?__extra__={bad", "not valid JSON"),
    ],
)
def test_bad_uris_say_what_is_wrong_without_quoting_the_value(uri, message):
    with pytest.raises(InvalidConnection, match=message) as info:
        Connection.from_uri(uri, "c")
    assert "'c'" in str(info.value)


def test_error_never_echoes_the_uri():
    with pytest.raises(InvalidConnection) as info:
        Connection.from_uri("postgres://u:sup3rsecret@h:nope", "c")
    assert "sup3rsecret" not in str(info.value)


def test_json_round_trip_and_keys():
    conn = Connection(
        conn_id="c",
        conn_type="http",
        host="h",
        login="l",
        password="p",
        schema="s",
        port=1,
        extra={"k": {"n": [1]}},
        description="d",
    )
    data = json.loads(conn.to_json())
    assert set(data) == {"conn_type", "host", "login", "password", "schema", "port", "extra", "description"}
    assert Connection.from_json(conn.to_json(), conn_id="c") == conn


def test_json_accepts_extra_as_a_string_and_port_as_text():
    conn = Connection.from_json('{"conn_type": "http", "port": "80", "extra": "{\\"a\\": 1}"}', "c")
    assert conn.port == 80
    assert conn.extra == {"a": 1}


def test_json_rejects_unknown_keys():
    with pytest.raises(InvalidConnection, match="unknown keys"):
        Connection.from_json('{"conn_type": "http", "hots": "typo"}', "c")


def test_parse_decides_between_uri_and_json():
    assert Connection.parse('  {"conn_type": "http", "host": "h"}', "c").host == "h"
    assert Connection.parse("http://h", "c").host == "h"


def test_repr_hides_the_password_and_extras():
    conn = Connection(conn_id="c", conn_type="http", host="h", password="hunter22", extra={"token": "tok3n-value"})
    text = repr(conn)
    assert "hunter22" not in text
    assert "tok3n-value" not in text
    assert "password='***'" in text


def test_empty_strings_mean_not_set():
    assert Connection(conn_type="x", host="", login="", password="", schema="") == Connection(conn_type="x")


def test_conn_type_that_cannot_be_a_scheme_refuses_a_uri():
    with pytest.raises(InvalidConnection, match="JSON form"):
        Connection(conn_type="My-Type", host="h").get_uri()


# -- property-style round trips ---------------------------------------------------------------------------


def _text(rng: random.Random, allow_empty: bool = True) -> str | None:
    if allow_empty and rng.random() < 0.2:
        return None
    length = rng.randint(1, 12)
    return "".join(rng.choice(AWKWARD + "abcXYZ019") for _ in range(length))


def _value(rng: random.Random, depth: int = 0):
    kind = rng.randint(0, 6 if depth < 2 else 3)
    return [
        lambda: _text(rng, allow_empty=False),
        lambda: rng.randint(-5, 10**6),
        lambda: rng.random() < 0.5,
        lambda: None,
        lambda: [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
        lambda: {_text(rng, False): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))},
        lambda: "",
    ][kind]()


def _random_connection(rng: random.Random) -> Connection:
    all_strings = rng.random() < 0.5
    extra = {}
    for _ in range(rng.randint(0, 4)):
        key = _text(rng, allow_empty=False)
        extra[key] = _text(rng, allow_empty=False) if all_strings else _value(rng)
    return Connection(
        conn_type=rng.choice(["postgres", "http", "google_cloud_platform", "a.b+c", "x1_y2"]),
        host=_text(rng),
        login=_text(rng),
        password=_text(rng),
        schema=_text(rng),
        port=rng.choice([None, 0, 1, 5432, 65535]),
        extra=extra,
    )


@pytest.mark.parametrize("seed", range(40))
def test_uri_round_trip_is_lossless(seed):
    rng = random.Random(seed)
    for _ in range(25):
        conn = _random_connection(rng)
        assert Connection.from_uri(conn.get_uri()) == conn, conn.get_uri()


@pytest.mark.parametrize("seed", range(10))
def test_json_round_trip_is_lossless(seed):
    rng = random.Random(1000 + seed)
    for _ in range(25):
        conn = _random_connection(rng)
        conn.description = _text(rng)
        assert Connection.from_json(conn.to_json()) == conn
