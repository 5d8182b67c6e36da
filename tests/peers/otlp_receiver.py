"""An independent OTLP/HTTP trace receiver for the integration tests.

Built on Python's `opentelemetry-proto` package (the protobuf classes the OpenTelemetry
project generates from the same .proto files), so a span tree that this receiver decodes the
same way as the Rust tests' own receivers was not merely agreed on by two copies of one
decoder.

Started by scripts/test.sh on 127.0.0.1; prints its port on stdout once listening.

  POST /v1/traces   an ExportTraceServiceRequest (application/x-protobuf, optionally gzip);
                    every span becomes one JSON line, appended to the file given as the first
                    argument (if any) and kept in memory
  GET  /spans       the JSON lines so far (application/x-ndjson); ?trace_id=HEX filters

One line per span:
  {"trace_id": hex, "span_id": hex, "parent_span_id": hex or "", "name": str,
   "kind": "SPAN_KIND_CLIENT", "attributes": {key: value}, "status": {"code": "STATUS_CODE_ERROR",
   "message": str}, "events": [{"name": str, "attributes": {...}}],
   "resource": {key: value}, "scope": str}
"""

import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

LINES = []
LOCK = threading.Lock()
OUT = open(sys.argv[1], "a", encoding="utf-8") if len(sys.argv) > 1 else None


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def span_lines(request):
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield json.dumps(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": Span.SpanKind.Name(span.kind),
                        "start_time_unix_nano": span.start_time_unix_nano,
                        "end_time_unix_nano": span.end_time_unix_nano,
                        "attributes": attributes(span.attributes),
                        "status": {
                            "code": Status.StatusCode.Name(span.status.code),
                            "message": span.status.message,
                        },
                        "events": [
                            {"name": e.name, "attributes": attributes(e.attributes)}
                            for e in span.events
                        ],
                        "resource": resource,
                        "scope": ss.scope.name,
                    },
                    sort_keys=True,
                )


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        if urlparse(self.path).path != "/v1/traces":
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as e:  # noqa: BLE001 - any decode failure is the client's fault
            self.send_error(400, f"not an ExportTraceServiceRequest: {e}")
            return
        lines = list(span_lines(request))
        with LOCK:
            LINES.extend(lines)
            if OUT is not None:
                OUT.write("".join(line + "\n" for line in lines))
                OUT.flush()
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/spans":
            self.send_error(404)
            return
        wanted = parse_qs(url.query).get("trace_id", [None])[0]
        with LOCK:
            lines = [
                line for line in LINES if wanted is None or json.loads(line)["trace_id"] == wanted
            ]
        body = "".join(line + "\n" for line in lines).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
