"""ElasticsearchHook against the real noida-db server, and through real loopback proxies in front of it for what
noida-db does not do itself (another server version, TLS, authentication); see ``es_servers``."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from es_servers import EsProxy, make_ca

from zonda.connection import Connection
from zonda.masking import get_masker
from zonda_elasticsearch.compat import supported_version_from_error, with_compat_version
from zonda_elasticsearch.hooks import ElasticsearchHook, ElasticsearchHookError, Node, parse_hosts, with_tiebreaker

pytestmark = pytest.mark.elasticsearch


@pytest.fixture
def proxy(elasticsearch_url: str) -> Iterator[Callable[..., EsProxy]]:
    """``proxy(**options)``: a started :class:`EsProxy` in front of the test server, stopped after the test."""
    started: list[EsProxy] = []

    def start(**options: Any) -> EsProxy:
        server = EsProxy(elasticsearch_url, **options).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def hook_for(url: str, *, login: str | None = None, password: str | None = None, **extra: Any) -> ElasticsearchHook:
    scheme, _, hostport = url.partition("://")
    host, _, port = hostport.rpartition(":")
    conn = Connection(
        conn_id="es_test",
        conn_type="elasticsearch",
        host=host,
        port=int(port),
        schema=scheme,
        login=login,
        password=password,
        extra={"retries": 0, **extra},
    )
    return ElasticsearchHook("es_test", connection=conn)


def compat_versions(server: EsProxy) -> set[str]:
    found = set()
    for request in server.requests:
        for name in ("accept", "content-type"):
            value = request["headers"].get(name, "")
            if "compatible-with=" in value:
                found.add(value.rsplit("compatible-with=", 1)[1])
    return found


# -- the connection -----------------------------------------------------------------------------------------


def test_hosts_scheme_port_and_path_from_the_connection() -> None:
    nodes = parse_hosts("es1.example.com, es2.example.com:9201,http://es3:80/prefix/,[::1]", scheme="https", port=9300)
    assert nodes == [
        Node("https", "es1.example.com", 9300),
        Node("https", "es2.example.com", 9201),
        Node("http", "es3", 80, "/prefix"),
        Node("https", "::1", 9300),
    ]
    assert nodes[3].url == "https://[::1]:9300" and nodes[3].is_loopback
    assert parse_hosts("localhost")[0] == Node("https", "localhost", 9200)  # the defaults: https, 9200
    with pytest.raises(ElasticsearchHookError, match="not in the host"):
        parse_hosts("https://elastic:s3cret@es1")
    with pytest.raises(ElasticsearchHookError, match="http or https"):
        parse_hosts("ftp://es1")
    with pytest.raises(ElasticsearchHookError, match="names no host"):
        parse_hosts(" , ")


def test_the_uri_form_with_several_hosts_and_extras(monkeypatch: pytest.MonkeyPatch, zonda_home) -> None:
    monkeypatch.setenv(
        "ZONDA_CONN_ES_MULTI",
        "elasticsearch://127.0.0.1,localhost:9201/http?request_timeout=2.5&retries=1&verify_certs=false",
    )
    hook = ElasticsearchHook("es_multi")
    settings = hook.settings
    # In a URI the port after the last host is the connection's port, for every host without its own.
    assert [node.url for node in settings.nodes] == ["http://127.0.0.1:9201", "http://localhost:9201"]
    assert (settings.request_timeout, settings.retries, settings.verify_certs) == (2.5, 1, False)
    client = hook.get_conn()
    assert client is hook.get_conn()  # built once per hook
    assert len(client.transport.node_pool.all()) == 2
    as_json = {"conn_type": "elasticsearch", "host": "https://127.0.0.1:9300,localhost", "port": 9201}
    monkeypatch.setenv("ZONDA_CONN_ES_JSON", json.dumps(as_json))
    nodes = ElasticsearchHook("es_json").settings.nodes
    assert [node.url for node in nodes] == ["https://127.0.0.1:9300", "https://localhost:9201"]


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("http://127.0.0.1:9201", "http://127.0.0.1:9201"),
        ("HTTP://127.0.0.1:9201", "http://127.0.0.1:9201"),
        ("https://127.0.0.1:9201", "https://127.0.0.1:9201"),
        ("http://127.0.0.1:9201/https", "https://127.0.0.1:9201"),  # the schema field still wins
        ("elasticsearch://127.0.0.1:9201", "https://127.0.0.1:9201"),  # no scheme said: TLS
    ],
)
def test_a_uri_scheme_of_http_or_https_is_the_nodes_scheme(
    monkeypatch: pytest.MonkeyPatch, zonda_home, uri: str, url: str
) -> None:
    monkeypatch.setenv("ZONDA_CONN_ES_SCHEME", uri)
    assert [node.url for node in ElasticsearchHook("es_scheme").settings.nodes] == [url]


def test_connection_reports_cluster_name_and_version(es_conn: str) -> None:
    ok, message = ElasticsearchHook(es_conn).test_connection()
    assert ok is True
    assert "'docker-cluster'" in message and "Elasticsearch 8.15.3" in message


def test_unreachable_cluster_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hook = hook_for(f"http://127.0.0.1:{port}")
    ok, message = hook.test_connection()
    assert ok is False and f"cannot reach Elasticsearch at http://127.0.0.1:{port}" in message
    with pytest.raises(ElasticsearchHookError, match="cannot reach"):
        hook.count("anything")


def test_credentials_over_plain_http_to_another_host_warn(caplog: pytest.LogCaptureFixture) -> None:
    """The hosts are never contacted: building the client sends nothing."""

    def hook(host: str, schema: str = "http", **fields: Any) -> ElasticsearchHook:
        conn = Connection(conn_id="es_w", conn_type="elasticsearch", host=host, schema=schema, **fields)
        return ElasticsearchHook("es_w", connection=conn)

    with caplog.at_level(logging.WARNING, logger="zonda.providers.elasticsearch"):
        exposed = hook("es1.example.com,127.0.0.1", login="elastic", password="pw-never-logged-1")
        exposed.get_conn()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "plain http:// to http://es1.example.com:9200" in warnings[0] and "127.0.0.1" not in warnings[0]
    assert "pw-never-logged-1" not in warnings[0]
    assert [n.host for n in exposed.settings.insecure_credential_nodes()] == ["es1.example.com"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zonda.providers.elasticsearch"):
        hook("localhost,127.0.0.2,[::1]", login="elastic", password="pw").get_conn()  # loopback: fine
        hook("es1.example.com", schema="https", login="elastic", password="pw").get_conn()  # TLS: fine
        hook("es1.example.com").get_conn()  # no credentials: nothing to leak
    assert caplog.records == []
    with caplog.at_level(logging.WARNING, logger="zonda.providers.elasticsearch"):
        hook("es1.example.com", extra={"api_key": "key-never-logged-1"}).get_conn()
    assert "sends an API key over plain http://" in caplog.records[0].getMessage()
    assert get_masker().redact_text("key-never-logged-1") == "***"


# -- indices, bulk, search ------------------------------------------------------------------------------------

STRICT = {
    "dynamic": "strict",
    "properties": {
        "n": {"type": "integer"},
        "name": {"type": "keyword"},
        "price": {"type": "double"},
        "at": {"type": "date"},
        "ref": {"type": "keyword"},
    },
}


def test_index_create_exists_delete(es_conn: str, es_index: str) -> None:
    hook = ElasticsearchHook(es_conn)
    assert hook.index_exists(es_index) is False
    assert hook.create_index(es_index, mappings=STRICT, settings={"number_of_shards": 1}) is True
    assert hook.index_exists(es_index) is True
    mapping = hook.get_conn().indices.get_mapping(index=es_index)[es_index]["mappings"]
    assert mapping["dynamic"] == "strict" and mapping["properties"]["n"] == {"type": "integer"}
    assert hook.create_index(es_index, exist_ok=True) is False
    with pytest.raises(Exception, match="resource_already_exists_exception"):
        hook.create_index(es_index)
    assert hook.delete_index(es_index) is True
    assert hook.delete_index(es_index) is False  # missing_ok
    assert hook.index_exists(es_index) is False


def test_bulk_index_reports_each_rejected_document_and_reruns_do_not_duplicate(es_conn: str, es_index: str) -> None:
    hook = ElasticsearchHook(es_conn)
    hook.create_index(es_index, mappings=STRICT)
    docs: list[dict[str, Any]] = [
        {
            "n": i,
            "name": f"item-{i}",
            "price": decimal.Decimal("9.95"),
            "at": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
            "ref": uuid.UUID(int=i),
        }
        for i in range(1200)
    ]
    docs[10]["n"] = "ten"  # not an integer
    docs[20]["extra"] = True  # not in the strict mapping
    del docs[30]["n"]  # no id
    report = hook.bulk_index(es_index, docs, id_field="n", chunk_size=500, refresh=True)
    assert (report.total, report.indexed, report.rejected) == (1200, 1197, 3)
    by_position = {error.position: error for error in report.errors}
    assert by_position[10].id == "ten" and by_position[10].status == 400
    assert by_position[10].error_type == "document_parsing_exception" and "[n]" in by_position[10].reason
    assert by_position[20].id == "20" and by_position[20].error_type == "strict_dynamic_mapping_exception"
    assert by_position[30].id is None and by_position[30].error_type == "missing_id"
    as_dict = report.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict and as_dict["errors_truncated"] is False
    assert "3 rejected" in report.summary() and "id 'ten'" in report.summary()
    assert hook.count(es_index) == 1197
    stored = hook.get_conn().get(index=es_index, id="5")["_source"]
    assert stored == {
        "n": 5,
        "name": "item-5",
        "price": 9.95,
        "at": "2024-01-01T12:00:00+00:00",
        "ref": str(uuid.UUID(int=5)),
    }
    # The same documents again: ids come from "n", so nothing is duplicated.
    again = hook.bulk_index(es_index, docs, id_field="n", refresh=True, max_errors=1)
    assert again.indexed == 1197 and again.rejected == 3 and len(again.errors) == 1 and again.errors_truncated
    assert hook.count(es_index) == 1197


def test_search_and_count_take_dsl_or_lucene(es_conn: str, es_index: str) -> None:
    hook = ElasticsearchHook(es_conn)
    docs = [{"n": i, "color": ["red", "green", "blue"][i % 3]} for i in range(30)]
    hook.bulk_index(es_index, docs, id_field="n", refresh=True)
    assert hook.count(es_index) == 30
    assert hook.count(es_index, "color:red") == 10
    assert hook.count(es_index, {"range": {"n": {"gte": 25}}}) == 5
    assert hook.count(es_index, {"query": {"term": {"color": "blue"}}}) == 10  # a whole body is fine too
    assert hook.count(f"{es_index}-missing", missing_index_ok=True) == 0
    response = hook.search(
        es_index,
        "color:green",
        size=3,
        sort=[{"n": "desc"}],
        source=["n"],
        aggs={"top": {"max": {"field": "n"}}},
    )
    assert [hit["_source"] for hit in response["hits"]["hits"]] == [{"n": 28}, {"n": 25}, {"n": 22}]
    assert response["hits"]["total"]["value"] == 10
    assert response["aggregations"]["top"]["value"] == 28


def test_iter_hits_walks_past_10000_with_a_point_in_time_and_closes_it(
    elasticsearch_url: str, es_index: str, proxy: Callable[..., EsProxy]
) -> None:
    """Through a recording proxy, to see the point-in-time requests."""
    recorder = proxy()
    hook = hook_for(recorder.url)
    hook.bulk_index(es_index, ({"n": i} for i in range(12_345)), id_field="n", chunk_size=5000, refresh=True)
    del recorder.requests[:]
    hits = list(hook.iter_hits(es_index, {"range": {"n": {"gte": 100}}}, sort=[{"n": "desc"}], batch_size=5000))
    numbers = [hit["_source"]["n"] for hit in hits]
    assert numbers == list(range(12_344, 99, -1))  # every hit once, in order, past the 10,000 window
    searches = [r for r in recorder.requests if r["path"].startswith("/_search")]
    assert len(searches) == 3  # 5000 + 5000 + 2245
    methods_paths = [(r["method"], r["path"].split("?")[0]) for r in recorder.requests]
    assert methods_paths[0] == ("POST", f"/{es_index}/_pit")
    assert methods_paths[-1] == ("DELETE", "/_pit")
    # max_hits stops early, and stopping early still closes the point in time.
    del recorder.requests[:]
    assert len(list(hook.iter_hits(es_index, batch_size=400, max_hits=1000))) == 1000
    assert [r["path"].split("?")[0] for r in recorder.requests].count("/_search") == 3  # 400 + 400 + 200
    del recorder.requests[:]
    walk = hook.iter_hits(es_index, batch_size=100)
    next(walk)
    walk.close()
    assert recorder.requests[-1]["method"] == "DELETE" and recorder.requests[-1]["path"] == "/_pit"


def test_sort_gets_the_shard_doc_tiebreaker() -> None:
    assert with_tiebreaker(None) == [{"_shard_doc": "asc"}]
    assert with_tiebreaker("age:desc,name") == [{"age": "desc"}, "name", {"_shard_doc": "asc"}]
    assert with_tiebreaker({"age": "asc"}) == [{"age": "asc"}, {"_shard_doc": "asc"}]
    assert with_tiebreaker([{"_shard_doc": "desc"}]) == [{"_shard_doc": "desc"}]


# -- Elasticsearch 8 and 9 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8.15.3", "9.1.2"])
def test_compatibility_header_follows_the_server_major_version(
    version: str, es_index: str, proxy: Callable[..., EsProxy]
) -> None:
    server = proxy(report_version=version, enforce_compat=True)
    major = version.split(".", maxsplit=1)[0]
    hook = hook_for(server.url)
    ok, message = hook.test_connection()
    assert ok and f"Elasticsearch {version}" in message
    report = hook.bulk_index(es_index, [{"n": i, "tag": f"t{i}"} for i in range(5)], id_field="n", refresh=True)
    assert report.indexed == 5
    assert hook.count(es_index, "tag:t3") == 1
    assert len(list(hook.iter_hits(es_index, batch_size=2))) == 5
    assert hook.server_major_version() == int(major)
    assert compat_versions(server) == {major}
    # The probe went first, in plain JSON, and only once.
    probes = [r for r in server.requests if r["path"] == "/" and r["headers"]["accept"] == "application/json"]
    assert len(probes) == 1 and server.requests[0] is probes[0]


def test_the_stand_in_server_refuses_a_mismatched_header_as_elasticsearch_does(proxy: Callable[..., EsProxy]) -> None:
    """The control for the test above: the stock client (compatible-with=9) against an "8.x" server."""
    from elasticsearch import BadRequestError, Elasticsearch

    server = proxy(report_version="8.15.3", enforce_compat=True)
    with Elasticsearch(server.url) as client, pytest.raises(BadRequestError) as info:
        client.info()
    assert info.value.meta.status == 400
    assert "media_type_header_exception" in json.dumps(info.value.body)
    assert supported_version_from_error(400, info.value.body) == 8


def test_compatibility_is_learnt_from_the_refusal_when_get_root_is_forbidden(
    es_index: str, proxy: Callable[..., EsProxy]
) -> None:
    """An API key without the monitor privilege gets 403 on GET /: the first request is refused, the server's
    error names the version it takes, and the request goes again with that one."""
    server = proxy(report_version="8.15.3", enforce_compat=True, deny_root=True)
    hook = hook_for(server.url)
    hook.create_index(es_index)
    assert hook.count(es_index) == 0
    assert hook.get_conn().transport.server_major == 8
    refused = [r for r in server.requests if "compatible-with=9" in r["headers"].get("accept", "")]
    assert len(refused) == 1  # one refusal, then every request says 8


def test_a_forbidden_probe_is_not_repeated(es_index: str, proxy: Callable[..., EsProxy]) -> None:
    """A 9.x server the same major as the client, GET / forbidden: the header already fits, so after one
    refused probe every request goes straight through."""
    server = proxy(report_version="9.1.0", enforce_compat=True, deny_root=True)
    hook = hook_for(server.url)
    hook.create_index(es_index)
    for _ in range(3):
        assert hook.count(es_index) == 0
    assert [r["path"] for r in server.requests].count("/") == 1
    assert compat_versions(server) == {"9"}


def test_a_bad_host_is_a_failed_test_not_an_exception() -> None:
    conn = Connection(conn_id="bad", conn_type="elasticsearch", host="ftp://es1")
    ok, message = ElasticsearchHook("bad", connection=conn).test_connection()
    assert ok is False and "the scheme must be http or https" in message


def test_async_client_matches_the_server_too(es_index: str, proxy: Callable[..., EsProxy]) -> None:
    server = proxy(report_version="9.0.1", enforce_compat=True)
    hook = hook_for(server.url)
    hook.bulk_index(es_index, [{"n": 1}, {"n": 2}], id_field="n", refresh=True)

    async def count() -> int:
        client = hook.get_async_conn()
        try:
            return int((await client.count(index=es_index))["count"])
        finally:
            await client.close()

    assert asyncio.run(count()) == 2
    assert compat_versions(server) == {"9"}


def test_with_compat_version_rewrites_only_the_version() -> None:
    headers = {
        "accept": "application/vnd.elasticsearch+json; compatible-with=9",
        "content-type": "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
        "authorization": "Basic abc",
    }
    rewritten = with_compat_version(headers, 8)
    assert rewritten["accept"] == "application/vnd.elasticsearch+json; compatible-with=8"
    assert rewritten["content-type"] == "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
    assert rewritten["authorization"] == "Basic abc"


# -- TLS and authentication ---------------------------------------------------------------------------------

USER, PASSWORD = "elastic", "correct-horse-battery-staple"


@pytest.fixture
def tls_proxy(proxy: Callable[..., EsProxy], tmp_path, monkeypatch: pytest.MonkeyPatch):
    """An HTTPS server with a certificate from a fresh test CA, demanding basic auth, in front of noida-db."""
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    certs = make_ca(tmp_path / "tls")
    server = proxy(basic_auth=(USER, PASSWORD), ssl_context=certs.server_context())
    return server, certs


def test_tls_with_an_untrusted_certificate_fails_by_default(tls_proxy) -> None:
    server, _certs = tls_proxy
    hook = hook_for(server.url, login=USER, password=PASSWORD)
    ok, message = hook.test_connection()
    assert ok is False and "TLS verification failed" in message and "ca_certs" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message
    with pytest.raises(ElasticsearchHookError, match="TLS verification failed"):
        hook.count("anything")
    assert server.requests == []  # nothing was sent over the untrusted connection


def test_tls_with_the_ca_and_basic_auth_works(tls_proxy, es_index: str) -> None:
    server, certs = tls_proxy
    hook = hook_for(server.url, login=USER, password=PASSWORD, ca_certs=str(certs.ca_file))
    ok, message = hook.test_connection()
    assert ok, message
    assert hook.bulk_index(es_index, [{"n": 1}], id_field="n", refresh=True).indexed == 1
    assert hook.count(es_index) == 1
    assert all(r["headers"]["authorization"].startswith("Basic ") for r in server.requests)


def test_wrong_password_is_a_clear_error_without_the_password(tls_proxy, caplog: pytest.LogCaptureFixture) -> None:
    server, certs = tls_proxy
    wrong = "wrong-password-do-not-show"
    hook = hook_for(server.url, login=USER, password=wrong, ca_certs=str(certs.ca_file))
    with caplog.at_level(logging.DEBUG):
        ok, message = hook.test_connection()
        with pytest.raises(ElasticsearchHookError) as info:
            hook.count("anything")
    assert ok is False
    for text in (message, str(info.value)):
        assert "refused the credentials of user 'elastic' (HTTP 401" in text
        assert "check the connection's login and password" in text
        assert wrong not in text
    assert info.value.__cause__ is None and info.value.__context__ is not None
    assert all(wrong not in record.getMessage() for record in caplog.records)
    assert get_masker().redact_text(f"say {wrong}") == "say ***"


def test_ssl_assert_fingerprint_pins_the_certificate(tls_proxy) -> None:
    server, certs = tls_proxy
    pinned = hook_for(server.url, login=USER, password=PASSWORD, ssl_assert_fingerprint=certs.fingerprint)
    ok, message = pinned.test_connection()
    assert ok, message
    wrong = "AA:" * 31 + "AA"
    mismatched = hook_for(server.url, login=USER, password=PASSWORD, ssl_assert_fingerprint=wrong)
    ok, message = mismatched.test_connection()
    assert ok is False and "TLS verification failed" in message and "ingerprint" in message


def test_api_key_auth(proxy: Callable[..., EsProxy]) -> None:
    server = proxy(api_key="a2V5LWlkOmtleS1zZWNyZXQ=")
    hook = hook_for(server.url, api_key="a2V5LWlkOmtleS1zZWNyZXQ=")
    assert hook.test_connection()[0] is True
    assert server.requests[-1]["headers"]["authorization"] == "ApiKey a2V5LWlkOmtleS1zZWNyZXQ="
    refused = hook_for(server.url, api_key="d3Jvbmc6d3Jvbmcta2V5LXZhbHVl")
    ok, message = refused.test_connection()
    assert ok is False and "refused the credentials of the API key" in message
    assert "d3Jvbmc6d3Jvbmcta2V5LXZhbHVl" not in message


def test_manifest_names_importable_classes_and_the_fields_the_hook_reads() -> None:
    import importlib

    from zonda_elasticsearch.manifest import manifest

    [conn_type] = manifest["connection_types"]
    paths = [conn_type["hook"], *manifest["hooks"], *manifest["operators"], *manifest["sensors"]]
    paths += [*manifest["triggers"], *manifest["transfers"]]
    for path in paths:
        module, _, name = path.partition(":")
        assert isinstance(getattr(importlib.import_module(module), name), type), path
    assert "providers issue" not in manifest["description"]
    extras = {key.removeprefix("extra.") for key in conn_type["fields"] if key.startswith("extra.")}
    assert extras == {"api_key", "ca_certs", "verify_certs", "ssl_assert_fingerprint", "request_timeout", "retries"}
    values = {
        "api_key": "a2V5OnZhbHVlLXNlY3JldA==",
        "ca_certs": "/etc/ssl/ca.pem",
        "verify_certs": "false",
        "ssl_assert_fingerprint": "AB:CD",
        "request_timeout": "7",
        "retries": "5",
    }
    conn = Connection(conn_id="all", conn_type="elasticsearch", host="es1", extra=values)
    settings = ElasticsearchHook("all", connection=conn).settings
    assert (settings.api_key, settings.ca_certs, settings.verify_certs) == (values["api_key"], "/etc/ssl/ca.pem", False)
    assert (settings.ssl_assert_fingerprint, settings.request_timeout, settings.retries) == ("AB:CD", 7.0, 5)
    assert settings.nodes[0].url == "https://es1:9200"  # the manifest's defaults: https, 9200


def test_a_slow_bulk_is_waited_for_and_never_sent_twice(
    proxy: Callable[..., EsProxy], es_index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster applies a _bulk but answers after the connection's request_timeout: the hook must wait
    (bulks get BULK_REQUEST_TIMEOUT) rather than time out and resend, which would index the documents twice."""
    import zonda_elasticsearch.hooks as hooks

    monkeypatch.setattr(hooks, "BULK_REQUEST_TIMEOUT", 3.0)
    server = proxy(answer_late={"/_bulk": 1.0})
    hook = hook_for(server.url, request_timeout=0.3, retries=3)  # retries on: a timeout would resend
    hook.create_index(es_index, exist_ok=True)
    report = hook.bulk_index(es_index, [{"n": i} for i in range(5)], refresh=True)  # no ids: not idempotent
    assert (report.indexed, report.rejected) == (5, 0)
    bulks = [r for r in server.requests if r["path"].split("?")[0].endswith("/_bulk")]
    assert len(bulks) == 1  # sent once, though it took longer than request_timeout
    assert hook.count(es_index) == 5
    # An ordinary request still times out at request_timeout (and says so).
    slow = proxy(answer_late={"/_count": 1.0})
    with pytest.raises(ElasticsearchHookError, match=r"did not answer within 0\.3s"):
        hook_for(slow.url, request_timeout=0.3).count(es_index)


def test_bulk_bodies_stay_under_max_chunk_bytes(proxy: Callable[..., EsProxy], es_index: str) -> None:
    server = proxy()
    hook = hook_for(server.url)
    hook.create_index(es_index, exist_ok=True)
    docs = [{"n": i, "text": "x" * 1000} for i in range(40)]  # ~1 KB each
    report = hook.bulk_index(es_index, docs, id_field="n", max_chunk_bytes=8_000, refresh=True)
    assert (report.indexed, report.rejected) == (40, 0)
    sizes = [r["size"] for r in server.requests if r["path"].split("?")[0].endswith("/_bulk")]
    assert len(sizes) >= 6 and max(sizes) <= 8_000  # split by bytes long before the 500-document count
    assert hook.count(es_index) == 40
    with pytest.raises(ValueError, match="max_chunk_bytes must be a positive integer"):
        hook.bulk_index(es_index, docs, max_chunk_bytes=0)


def test_a_413_splits_the_body_and_rejects_only_a_document_too_large_alone(
    proxy: Callable[..., EsProxy], es_index: str
) -> None:
    """A server whose http.max_content_length is below the hook's byte bound answers 413: the body is split in
    halves until it fits, and a document that alone is too large is rejected by name, not the whole load."""
    server = proxy(max_body=6_000)
    hook = hook_for(server.url)
    hook.create_index(es_index, exist_ok=True)
    docs = [{"n": i, "text": "y" * 1000} for i in range(20)]
    docs.insert(7, {"n": "huge", "text": "z" * 20_000})
    report = hook.bulk_index(es_index, docs, id_field="n", refresh=True)
    assert (report.indexed, report.rejected) == (20, 1)
    (error,) = report.errors
    assert (error.position, error.id, error.status, error.error_type) == (7, "huge", 413, "request_entity_too_large")
    assert "http.max_content_length" in error.reason
    assert hook.count(es_index) == 20


def test_database_values_serialize_to_the_json_elasticsearch_maps() -> None:
    """Every value type a SQL driver hands back, through the encoder bulk bodies and JSON-lines files use."""
    import ipaddress

    from zonda_elasticsearch.serialization import dumps_line

    row = {
        "key": decimal.Decimal("12345678901234567890"),
        "price": decimal.Decimal("9.50"),
        "at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "day": dt.date(2024, 1, 2),
        "took": dt.timedelta(seconds=90),
        "ref": uuid.UUID(int=7),
        "ip": ipaddress.ip_address("10.0.0.1"),
        "net": ipaddress.ip_network("10.0.0.0/24"),
        "blob": b"\x00\xff",
        "tags": ("a", "b"),
        "name": "ünïcode",
    }
    assert json.loads(dumps_line(row)) == {
        "key": 12345678901234567890,
        "price": 9.5,
        "at": "2024-01-02T03:04:05+00:00",
        "day": "2024-01-02",
        "took": 90.0,
        "ref": str(uuid.UUID(int=7)),
        "ip": "10.0.0.1",
        "net": "10.0.0.0/24",
        "blob": "AP8=",
        "tags": ["a", "b"],
        "name": "ünïcode",
    }
    with pytest.raises(TypeError, match="cannot encode object as JSON"):
        dumps_line({"bad": object()})
