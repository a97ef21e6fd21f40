#!/usr/bin/env python3
"""A stub of the Kubernetes API's discovery endpoints on loopback, for
`kubectl apply --dry-run=client` without a cluster (tests/ci/definitions.sh):
/api, /apis and the resource lists of core/v1 and batch/v1. The OpenAPI
documents are 404 (kubectl's --validate needs a real API server). Prints the
port it listens on, then serves until killed."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

def resources(group_version, items):
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": [{"name": n, "singularName": n[:-1], "namespaced": True, "kind": k,
                           "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                          for n, k in items]}

DOCS = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]},
    "/api/v1": resources("v1", [("pods", "Pod"), ("configmaps", "ConfigMap"), ("secrets", "Secret")]),
    "/apis/batch/v1": resources("batch/v1", [("jobs", "Job")]),
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
}

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        doc = DOCS.get(self.path.split("?")[0])
        body = json.dumps(doc if doc is not None else {"kind": "Status", "code": 404}).encode()
        self.send_response(200 if doc is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
