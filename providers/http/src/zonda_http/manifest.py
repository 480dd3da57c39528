"""The manifest of Zonda's http provider: names and dotted paths only.

Discovery reads this dict through the ``zonda.providers`` entry point, so this module must stay data: it imports
nothing (no requests, no hook module). The classes it names are imported on first use.
"""

from __future__ import annotations

from typing import Any

manifest: dict[str, Any] = {
    "name": "http",
    "package": "zonda-provider-http",
    "version": "0.1.0",
    "description": ("HTTP APIs (requests): HttpHook, HttpOperator, HttpSensor and an async trigger."),
    "zonda_versions": ">=0.1,<1",
    "connection_types": [
        {
            "conn_type": "http",
            "hook": "zonda_http.hooks:HttpHook",
            "display_name": "HTTP",
            "fields": {
                "host": {
                    "label": "Host",
                    "help": "Host name, or a base URL that may include a scheme and a base path",
                    "placeholder": "api.example.com",
                },
                "schema": {
                    "label": "Scheme",
                    "default": "https",
                    "help": "http or https (ignored when the host includes a scheme)",
                },
                "port": {"label": "Port", "type": "integer"},
                "login": {"label": "Login", "help": "User name for basic authentication"},
                "password": {"label": "Password", "type": "password", "secret": True},
                "extra.token": {
                    "label": "Bearer token",
                    "type": "password",
                    "secret": True,
                    "help": "Sent as 'Authorization: Bearer <token>'",
                },
                "extra.headers": {
                    "label": "Headers",
                    "type": "json",
                    "help": "Extra headers sent with every request, as a JSON object",
                    "placeholder": '{"Accept": "application/json"}',
                },
                "extra.timeout": {
                    "label": "Timeout",
                    "type": "integer",
                    "default": 30,
                    "help": "Seconds to wait for the server",
                },
                "extra.verify": {
                    "label": "Verify TLS",
                    "type": "boolean",
                    "default": True,
                    "help": "Check the server's TLS certificate",
                },
                "extra.ca_bundle": {
                    "label": "CA bundle",
                    "help": "Path to the CA certificate(s) the server certificate is checked against",
                },
                "extra.retries": {
                    "label": "Retries",
                    "type": "integer",
                    "default": 3,
                    "help": "Retries on connection errors and on 429/502/503/504 answers (0 turns them off)",
                },
                "extra.retry_methods": {
                    "label": "Retried methods",
                    "help": "Methods retried on 429/502/503/504, comma-separated; default GET, HEAD, PUT, DELETE, "
                    "OPTIONS, TRACE. Add POST only if the API makes it safe to repeat",
                    "placeholder": "GET, PUT, DELETE, POST",
                },
                "extra.proxies": {
                    "label": "Proxies",
                    "type": "json",
                    "help": "Proxy URL per scheme, as a JSON object",
                    "placeholder": '{"https": "http://proxy:3128"}',
                },
            },
        }
    ],
    "hooks": ["zonda_http.hooks:HttpHook"],
    "operators": ["zonda_http.operators:HttpOperator"],
    "sensors": ["zonda_http.sensors:HttpSensor"],
    "triggers": ["zonda_http.triggers:HttpTrigger"],
    "transfers": [],
    "log_handlers": [],
    "executors": [],
}
