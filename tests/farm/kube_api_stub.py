#!/usr/bin/env python3
"""A stand-in Kubernetes API server on loopback for `kubectl apply
--dry-run=client --validate=strict` without a cluster (tests/farm/kube.sh,
docs/farm.md "Kubernetes driver").

What kubectl 1.32 fetches (found by experiment, every request logged):
  /version, /openapi/v3 (the root) and /openapi/v3/apis/batch/v1, to see
  whether the server validates fields itself: when the group-version's
  PATCH operation has a `fieldValidation` query parameter (every server
  since 1.27), kubectl SKIPS client-side validation -- with --dry-run=client
  nothing reaches the server, so nothing is validated at all. Otherwise it
  fetches /openapi/v2 as protobuf (gnostic's openapi.v2.Document) and
  validates each object against those definitions. The v3 documents are
  never used for the validation itself.

So this stub serves the discovery documents, a v3 root whose documents
advertise no fieldValidation parameter, and /openapi/v2 in protobuf made
from a REAL Kubernetes swagger.json: Debian's golang-k8s-kube-openapi-dev
ships Kubernetes v1.13.0's (pkg/schemaconv/testdata/swagger.json). That
predates two fields the farm's Jobs use; the stub adds exactly their
upstream definitions (k8s.io/api core/v1 types.go, v1.25 and v1.19):
PodSpec.hostUsers, SecurityContext.seccompProfile and SeccompProfile.
Nothing else is changed.

Debian 12's own kubectl (kubernetes-client 1.20.2) reads /openapi/v2 only,
without looking at /openapi/v3 first; it validates against the same
document.

With $KUBE_STUB_FIELD_VALIDATION=1 the batch/v1 document advertises the
fieldValidation parameter as a current API server does, which shows
kubectl 1.32 then validating nothing on the client.

Usage: kube_api_stub.py SWAGGER_JSON [LOG]; prints the port, then serves
until killed."""
import os
import json
import struct
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

SWAGGER = sys.argv[1]
LOG = open(sys.argv[2], "a") if len(sys.argv) > 2 else None

# Upstream definitions of what v1.13 lacks (k8s.io/api/core/v1, OpenAPI v2
# as the API server publishes them).
ADDED = {
    ("io.k8s.api.core.v1.PodSpec", "hostUsers"): {
        "description": "Use the host's user namespace. Optional: Default to true. If set to true or not "
                       "present, the pod will be run in the host user namespace, useful for when the pod "
                       "needs a feature only available to the host user namespace, such as loading a kernel "
                       "module with CAP_SYS_MODULE. When set to false, a new userns is created for the pod.",
        "type": "boolean"},
    ("io.k8s.api.core.v1.SecurityContext", "seccompProfile"): {
        "$ref": "#/definitions/io.k8s.api.core.v1.SeccompProfile",
        "description": "The seccomp options to use by this container. If seccomp options are provided at "
                       "both the pod & container level, the container options override the pod options."},
}
SECCOMP_PROFILE = {
    "description": "SeccompProfile defines a pod/container's seccomp profile settings. Only one profile "
                   "source may be set.",
    "properties": {
        "localhostProfile": {"description": "localhostProfile indicates a profile defined in a file on the "
                                            "node should be used.", "type": "string"},
        "type": {"description": "type indicates which kind of seccomp profile will be applied. Valid options "
                                "are: Localhost, RuntimeDefault, Unconfined.", "type": "string"}},
    "required": ["type"],
    "type": "object",
    "x-kubernetes-unions": [{"discriminator": "type",
                             "fields-to-discriminateBy": {"localhostProfile": "LocalhostProfile"}}],
}

swagger = json.load(open(SWAGGER))
defs = swagger["definitions"]
for (name, field), schema in ADDED.items():
    defs[name]["properties"][field] = schema
defs["io.k8s.api.core.v1.SeccompProfile"] = SECCOMP_PROFILE
K8S_VERSION = swagger["info"]["version"]

# ---- protobuf wire format of gnostic's openapi.v2.Document (field numbers
# from github.com/googleapis/gnostic/openapiv2/OpenAPIv2.proto).


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_str(num, s):
    return field_bytes(num, s.encode())


def field_bool(num, v):
    return varint(num << 3) + varint(1 if v else 0)


def field_int(num, v):
    return varint(num << 3) + varint(v & 0xFFFFFFFFFFFFFFFF)


def field_double(num, v):
    return varint(num << 3 | 1) + struct.pack("<d", v)


def named_any(name, value):
    # NamedAny{name=1, value=2: Any{yaml=2}}; JSON is YAML.
    return field_str(1, name) + field_bytes(2, field_str(2, json.dumps(value)))


def schema(s):
    out = b""
    if "$ref" in s:
        out += field_str(1, s["$ref"])
    if "format" in s:
        out += field_str(2, s["format"])
    if "title" in s:
        out += field_str(3, s["title"])
    if "description" in s:
        out += field_str(4, s["description"])
    if "default" in s:
        out += field_bytes(5, field_str(2, json.dumps(s["default"])))
    for key, num in (("maximum", 7), ("minimum", 9)):
        if key in s:
            out += field_double(num, float(s[key]))
    for key, num in (("maxLength", 11), ("minLength", 12), ("maxItems", 14), ("minItems", 15)):
        if key in s:
            out += field_int(num, s[key])
    if "pattern" in s:
        out += field_str(13, s["pattern"])
    if s.get("uniqueItems"):
        out += field_bool(16, True)
    for r in s.get("required", []):
        out += field_str(19, r)
    for e in s.get("enum", []):
        out += field_bytes(20, field_str(2, json.dumps(e)))
    if "additionalProperties" in s:
        ap = s["additionalProperties"]
        out += field_bytes(21, field_bool(2, ap) if isinstance(ap, bool) else field_bytes(1, schema(ap)))
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        out += field_bytes(22, b"".join(field_str(1, t) for t in types))
    if "items" in s:
        items = s["items"] if isinstance(s["items"], list) else [s["items"]]
        out += field_bytes(23, b"".join(field_bytes(1, schema(i)) for i in items))
    for a in s.get("allOf", []):
        out += field_bytes(24, schema(a))
    if "properties" in s:
        out += field_bytes(25, b"".join(field_bytes(1, field_str(1, k) + field_bytes(2, schema(v)))
                                        for k, v in s["properties"].items()))
    if s.get("readOnly"):
        out += field_bool(27, True)
    for k, v in s.items():
        if k.startswith("x-"):
            out += field_bytes(31, named_any(k, v))
    return out


V2_PROTOBUF = (field_str(1, "2.0") +
               field_bytes(2, field_str(1, "Kubernetes") + field_str(2, K8S_VERSION)) +
               field_bytes(9, b"".join(field_bytes(1, field_str(1, k) + field_bytes(2, schema(v)))
                                       for k, v in defs.items())))

# ---- discovery and OpenAPI v3 (for kubectl's fieldValidation check only).


def resources(group_version, items):
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": [{"name": n, "singularName": n[:-1], "namespaced": True, "kind": k,
                           "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                          for n, k in items]}


V3 = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": K8S_VERSION},
      "paths": {},  # no operation, so no fieldValidation parameter: kubectl validates on the client
      "components": {"schemas": json.loads(json.dumps(defs).replace("#/definitions/", "#/components/schemas/"))}}
V3_BODY = json.dumps(V3).encode()
V3_BATCH = V3
if os.environ.get("KUBE_STUB_FIELD_VALIDATION") == "1":
    V3_BATCH = dict(V3, paths={"/apis/batch/v1/namespaces/{namespace}/jobs/{name}": {"patch": {
        "x-kubernetes-group-version-kind": {"group": "batch", "version": "v1", "kind": "Job"},
        "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]}}})
V3_BATCH_BODY = json.dumps(V3_BATCH).encode()

DOCS = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]},
    "/api/v1": resources("v1", [("pods", "Pod"), ("configmaps", "ConfigMap"), ("secrets", "Secret")]),
    "/apis/batch/v1": resources("batch/v1", [("jobs", "Job")]),
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
    "/openapi/v3": {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=kiln1"},
                              "apis/batch/v1": {"serverRelativeURL": "/openapi/v3/apis/batch/v1?hash=kiln1"}}},
}


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if LOG:
            LOG.write(f"GET {path} {self.headers.get('Accept')}\n")
            LOG.flush()
        if path == "/openapi/v2":
            return self.reply(200, V2_PROTOBUF, "application/octet-stream")
        if path == "/openapi/v3/api/v1":
            return self.reply(200, V3_BODY)
        if path == "/openapi/v3/apis/batch/v1":
            return self.reply(200, V3_BATCH_BODY)
        doc = DOCS.get(path)
        if doc is None:
            doc = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                   "message": path + " not found"}
        self.reply(200 if doc.get("code") != 404 else 404, json.dumps(doc).encode())

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
