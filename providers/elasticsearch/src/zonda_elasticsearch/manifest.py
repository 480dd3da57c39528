"""The manifest of Zonda's elasticsearch provider: names and dotted paths only.

Discovery reads this dict through the ``zonda.providers`` entry point, so this module must stay data: it imports
nothing (no elasticsearch client, no hook module). The classes it names are imported on first use.
"""

from __future__ import annotations

from typing import Any

manifest: dict[str, Any] = {
    "name": "elasticsearch",
    "package": "zonda-provider-elasticsearch",
    "version": "0.1.0",
    "description": (
        "Elasticsearch 8 and 9: ElasticsearchHook, search and index operators, a query sensor, "
        "SqlToElasticsearchOperator and a task-log handler."
    ),
    "zonda_versions": ">=0.1,<1",
    "connection_types": [
        {
            "conn_type": "elasticsearch",
            "hook": "zonda_elasticsearch.hooks:ElasticsearchHook",
            "display_name": "Elasticsearch",
            "fields": {
                "host": {
                    "label": "Hosts",
                    "help": "One or more hosts, comma-separated; each may carry its own scheme and port",
                    "placeholder": "es1.example.com,es2.example.com:9201",
                },
                "port": {
                    "label": "Port",
                    "type": "integer",
                    "default": 9200,
                    "help": "For hosts given without a port",
                },
                "schema": {
                    "label": "Scheme",
                    "default": "https",
                    "help": "http or https, for hosts given without a scheme",
                },
                "login": {"label": "Login"},
                "password": {"label": "Password", "type": "password", "secret": True},
                "extra.api_key": {
                    "label": "API key",
                    "type": "password",
                    "secret": True,
                    "help": "An encoded API key, used instead of login and password",
                },
                "extra.ca_certs": {
                    "label": "CA certificates",
                    "help": "Path to the CA certificate(s) the server certificate is checked against",
                },
                "extra.verify_certs": {
                    "label": "Verify certificates",
                    "type": "boolean",
                    "default": True,
                    "help": "Check the server's TLS certificate",
                },
                "extra.ssl_assert_fingerprint": {
                    "label": "Certificate fingerprint",
                    "help": "SHA-256 fingerprint the server certificate must have",
                },
                "extra.request_timeout": {
                    "label": "Request timeout",
                    "type": "integer",
                    "default": 10,
                    "help": "Seconds to wait for each request",
                },
                "extra.retries": {
                    "label": "Retries",
                    "type": "integer",
                    "default": 3,
                    "help": "Retries on connection errors and timeouts",
                },
            },
        }
    ],
    "hooks": ["zonda_elasticsearch.hooks:ElasticsearchHook"],
    "operators": [
        "zonda_elasticsearch.operators:ElasticsearchIndexOperator",
        "zonda_elasticsearch.operators:ElasticsearchSearchOperator",
    ],
    "sensors": ["zonda_elasticsearch.sensors:ElasticsearchQuerySensor"],
    "triggers": ["zonda_elasticsearch.triggers:ElasticsearchQueryTrigger"],
    "transfers": ["zonda_elasticsearch.transfers:SqlToElasticsearchOperator"],
    "log_handlers": ["zonda_elasticsearch.log_handler:ElasticsearchTaskLogHandler"],
    "executors": [],
    # es_search_pipeline, loaded with the core's examples; `zonda standalone` serves it a local server
    "example_dags": ["zonda_elasticsearch.example_dags"],
    "standalone_services": ["zonda_elasticsearch.local_server:standalone_service"],
}
