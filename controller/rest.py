"""The REST API (Ryu WSGI), documented in docs/rest-api.md.

GET /savi/bindings, POST and DELETE /savi/bindings (static bindings), GET /savi/stats,
GET /savi/trust[?wait=SEQ&timeout=S] (signed; with ``wait`` it answers once the binding
table's sequence number differs from SEQ, or after S seconds: a long poll for hosts),
GET /savi/view (the live view, a page) and GET /savi/view/agents (controller/view.py).
Reads are open (to whoever reaches the management network); writes need the run's
credential, ``Authorization: Bearer TOKEN``, and are refused when none was configured.
"""

from __future__ import annotations

import hmac
import json

from controller import compat, settings, view
from controller.config import ConfigError, static_binding

APP_KEY = "savi_app"
wsgi = compat.wsgi


def register(wsgi_app, app) -> None:
    wsgi_app.register(SaviRest, {APP_KEY: app})


def _json(body, status: int = 200):
    return wsgi.Response(
        status=status, content_type="application/json", charset="utf-8", body=json.dumps(body)
    )


def _error(status: int, message: str):
    return _json({"error": message}, status)


def _authorized(req, token: str | None):
    """None when the request carries the credential, else the error response."""
    if token is None:
        return _error(403, "the API is read-only: the controller was started without a token")
    given = req.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return _error(401, "write calls need the run's credential (Authorization: Bearer ...)")
    return None


class SaviRest(wsgi.ControllerBase if wsgi else object):
    def __init__(self, req, link, data, **config):
        super().__init__(req, link, data, **config)
        self.app = data[APP_KEY]

    @wsgi.route("savi", "/savi/bindings", methods=["GET"])
    def bindings(self, req, **_):
        return _json(self.app.bindings_json())

    @wsgi.route("savi", "/savi/bindings", methods=["POST"])
    def add_binding(self, req, **_):
        denied = _authorized(req, self.app.api_token)
        if denied:
            return denied
        try:
            st = static_binding(_body(req), "request")
        except ConfigError as e:
            return _error(400, str(e))
        self.app.apply_now(self.app.table.add_static(st.dpid, st.port, st.mac, st.ip))
        return _json({"ip": st.ip, "source": "static"}, 201)

    @wsgi.route("savi", "/savi/bindings", methods=["DELETE"])
    def delete_binding(self, req, **_):
        denied = _authorized(req, self.app.api_token)
        if denied:
            return denied
        try:
            body = _body(req)
            ip = body["ip"]
        except (ConfigError, KeyError, TypeError):
            return _error(400, 'body must be a JSON object with "ip"')
        try:
            decision = self.app.table.remove(ip)
        except ValueError as e:
            return _error(400, str(e))
        if decision is None:
            return _error(404, f"no binding for {ip}")
        self.app.apply_now(decision)
        return _json({"ip": decision.binding.ip, "removed": True})

    @wsgi.route("savi", "/savi/stats", methods=["GET"])
    def stats(self, req, **_):
        return _json(self.app.stats_json())

    @wsgi.route("savi", "/savi/trust", methods=["GET"])
    def trust(self, req, **_):
        try:
            wait = req.GET.get("wait")
            timeout = min(float(req.GET.get("timeout", 25)), 60.0)
            wait = None if wait is None else int(wait)
        except ValueError:
            return _error(400, "wait must be an integer and timeout a number of seconds")
        if wait is not None and wait == self.app.seq:
            self.app.seq_changed.wait(timeout=timeout)
        return _json(self.app.trust_json())

    @wsgi.route("savi", "/savi/view", methods=["GET"])
    def live_view(self, req, **_):
        return wsgi.Response(status=200, content_type="text/html", charset="utf-8", body=view.PAGE)

    @wsgi.route("savi", "/savi/view/agents", methods=["GET"])
    def agents(self, req, **_):
        return _json(view.read_agents(settings.agent_state_dir()))


def _body(req):
    try:
        body = json.loads(req.body or b"null")
    except ValueError as e:
        raise ConfigError(f"body is not JSON: {e}") from e
    if not isinstance(body, dict):
        raise ConfigError("body must be a JSON object")
    return body
