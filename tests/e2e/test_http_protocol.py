"""The HTTP layer of `inferd serve` on raw sockets: HTTP/1.0 clients (close-delimited
streams, keep-alive only when asked), request framing that could smuggle a request
(duplicate Content-Length, Content-Length with Transfer-Encoding), and CORS with vLLM's
flags and Starlette's rules, down to a real browser (headless Chromium) on another origin."""

import html
import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

from conftest import free_port

BODY = json.dumps({"model": "smollm2", "prompt": "Hello", "max_tokens": 4, "ignore_eos": True}).encode()
STREAM_BODY = json.dumps({"model": "smollm2", "prompt": "Hello", "max_tokens": 4, "ignore_eos": True,
                          "stream": True}).encode()
ALL_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"


def send(server, data, timeout=60):
    """Sends raw bytes and reads until the server closes: (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    except socket.timeout:
        return out, False
    finally:
        s.close()


def split_response(data):
    """(status, headers with lower-case names, rest) of the first response in `data`."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return lines[0], {k: ", ".join(v) for k, v in headers.items()}, rest


def request(method, path, body=b"", headers=None, version="1.1"):
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", "Connection: close"]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def call(server, method, path, body=b"", headers=None):
    """One HTTP/1.1 request with Connection: close: (status code, headers, body)."""
    data, closed = send(server, request(method, path, body, headers))
    assert closed
    status, hdrs, rest = split_response(data)
    if hdrs.get("transfer-encoding") == "chunked":
        rest = dechunk(rest)
    return int(status.split()[1]), hdrs, rest


def dechunk(data):
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2:]


# ---- HTTP/1.0 ---------------------------------------------------------------------------

def test_http10_stream_is_close_delimited(server):
    req = (b"POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % len(STREAM_BODY)) + STREAM_BODY
    data, closed = send(server, req)
    assert closed, "the end of an HTTP/1.0 stream is the end of the connection"
    status, headers, body = split_response(data)
    assert status == "HTTP/1.1 200 OK"  # the highest version we speak, as nginx and uvicorn
    assert "transfer-encoding" not in headers and "content-length" not in headers, headers
    assert headers["content-type"].startswith("text/event-stream")
    assert headers.get("connection") == "close"
    # The body is the SSE events themselves, with no chunk framing around them.
    events = body.decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]", body
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert chunks and all(e.startswith("data: {") for e in events[:-2])
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["text"]) >= 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_http10_non_streaming(server):
    req = (b"POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % len(BODY)) + BODY
    data, closed = send(server, req)
    assert closed  # HTTP/1.0 without keep-alive: one response, then close
    status, headers, body = split_response(data)
    assert status == "HTTP/1.1 200 OK"
    assert "transfer-encoding" not in headers
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body)["usage"]["completion_tokens"] == 4

    # Keep-alive when the client asks for it, confirmed with the same header.
    s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    for _ in range(2):
        s.sendall(b"GET /v1/models HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        status, headers, body = split_response(data)
        while len(body) < int(headers["content-length"]):
            body += s.recv(65536)
        assert status == "HTTP/1.1 200 OK"
        assert headers.get("connection", "").lower() == "keep-alive", headers
        assert json.loads(body)["data"][0]["id"] == "smollm2"
    s.close()


# ---- request smuggling: ambiguous lengths are 400 and close --------------------------------

def assert_rejected(server, req):
    data, closed = send(server, req)
    assert closed, data
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert data.count(b"HTTP/1.1") == 1, data  # nothing after the error: no smuggled request
    return json.loads(split_response(data)[2])["error"]["message"]


def test_duplicate_content_length_is_rejected(server):
    tail = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"  # a would-be smuggled request
    same = b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}" + tail
    assert "Content-Length" in assert_rejected(server, same)
    differ = b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}" + tail
    assert_rejected(server, differ)
    listed = b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n{}" + tail
    assert_rejected(server, listed)


def test_content_length_with_transfer_encoding_is_rejected(server):
    tail = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    chunked = b"2\r\n{}\r\n0\r\n\r\n"
    assert_rejected(server, b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n" + chunked + tail)
    assert_rejected(server, b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            b"Content-Length: 2\r\n\r\n" + chunked + tail)
    # Beast alone accepts these two: the length would be Content-Length, or nothing.
    assert_rejected(server, b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
                            b"Content-Length: 2\r\n\r\n{}" + tail)
    assert_rejected(server, b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" + tail)


def test_endless_chunk_trailer_is_cut_off(server):
    # Beast bounds neither a chunk line nor the trailers: without a bound of ours the server
    # would buffer all of this (it grew by 870 MB for 1 GB sent).
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: ")
    try:
        for _ in range(64):
            s.sendall(b"y" * 65536)
    except OSError:
        pass  # the server answered and closed while we were still sending
    data = s.recv(4096)
    s.close()
    assert data.startswith(b"HTTP/1.1 431 "), data


# ---- CORS -------------------------------------------------------------------------------

def preflight(server, origin, method="POST", req_headers=None, extra=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers is not None:
        h["Access-Control-Request-Headers"] = req_headers
    return call(server, "OPTIONS", "/v1/completions", headers={**h, **(extra or {})})


def test_cors_preflight_with_default_flags(server):
    st, h, body = preflight(server, "http://a.example", req_headers="content-type, x-anything")
    assert (st, body) == (200, b"OK")
    assert h["access-control-allow-origin"] == "*"
    assert h["access-control-allow-methods"] == ALL_METHODS
    assert h["access-control-allow-headers"] == "content-type, x-anything"  # mirrored: all allowed
    assert h["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in h and "vary" not in h
    # Disallowed even with the defaults: a method outside the list, a private-network ask.
    st, h, body = preflight(server, "http://a.example", method="PROPFIND")
    assert (st, body) == (400, b"Disallowed CORS method")
    st, h, body = preflight(server, "http://a.example", extra={"Access-Control-Request-Private-Network": "true"})
    assert (st, body) == (400, b"Disallowed CORS private-network")
    # OPTIONS without Access-Control-Request-Method is no preflight: the routes answer it.
    st, h, body = call(server, "OPTIONS", "/v1/completions", headers={"Origin": "http://a.example"})
    assert st == 405 and h["access-control-allow-origin"] == "*"


def test_cors_headers_on_normal_error_and_stream_responses(server):
    origin = {"Origin": "http://a.example"}
    st, h, _ = call(server, "GET", "/v1/models", headers=origin)
    assert st == 200 and h["access-control-allow-origin"] == "*" and "vary" not in h
    st, h, _ = call(server, "POST", "/v1/completions", b"{not json", {**origin, "Content-Type": "application/json"})
    assert st == 400 and h["access-control-allow-origin"] == "*"
    st, h, _ = call(server, "GET", "/no/such/route", headers=origin)
    assert st == 404 and h["access-control-allow-origin"] == "*"
    st, h, body = call(server, "POST", "/v1/completions", STREAM_BODY, {**origin, "Content-Type": "application/json"})
    assert st == 200 and h["content-type"].startswith("text/event-stream")
    assert h["access-control-allow-origin"] == "*" and body.endswith(b"data: [DONE]\n\n")
    # Errors of the HTTP layer itself carry them too, so that a browser can read them.
    data, _ = send(server, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example\r\n"
                           b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}")
    assert split_response(data)[1]["access-control-allow-origin"] == "*"
    # Without Origin nothing changes.
    st, h, _ = call(server, "GET", "/v1/models")
    assert st == 200 and not any(k.startswith("access-control-") for k in h)


def test_cors_restricted_origins_methods_headers(start_server):
    server = start_server("--allowed-origins", '["http://a.example"]', "--allowed-methods", '["GET", "POST"]',
                          "--allowed-headers", '["X-Custom"]')
    st, h, body = preflight(server, "http://a.example", req_headers="Content-Type, x-custom")
    assert (st, body) == (200, b"OK")
    assert h["access-control-allow-origin"] == "http://a.example" and h["vary"] == "Origin"
    assert h["access-control-allow-methods"] == "GET, POST"
    assert h["access-control-allow-headers"] == "Accept, Accept-Language, Content-Language, Content-Type, X-Custom"
    st, h, body = preflight(server, "http://b.example", method="PUT", req_headers="x-other")
    assert (st, body) == (400, b"Disallowed CORS origin, method, headers")
    assert "access-control-allow-origin" not in h
    # Actual requests: the allowed origin is echoed (with Vary), another gets nothing.
    st, h, _ = call(server, "GET", "/v1/models", headers={"Origin": "http://a.example"})
    assert st == 200 and h["access-control-allow-origin"] == "http://a.example" and h["vary"] == "Origin"
    st, h, _ = call(server, "GET", "/v1/models", headers={"Origin": "http://b.example"})
    assert st == 200 and "access-control-allow-origin" not in h


def test_cors_with_credentials(start_server):
    server = start_server("--allow-credentials")
    st, h, body = preflight(server, "http://a.example", req_headers="authorization")
    assert (st, body) == (200, b"OK")
    # A credentialed preflight names the origin: browsers refuse "*" with credentials.
    assert h["access-control-allow-origin"] == "http://a.example" and h["vary"] == "Origin"
    assert h["access-control-allow-credentials"] == "true"
    st, h, _ = call(server, "GET", "/v1/models", headers={"Origin": "http://a.example", "Authorization": "Bearer t"})
    assert h["access-control-allow-origin"] == "http://a.example" and h["vary"] == "Origin"
    assert h["access-control-allow-credentials"] == "true"
    # Starlette's rule: without a cookie or an Authorization the simple answer stays "*".
    st, h, _ = call(server, "GET", "/v1/models", headers={"Origin": "http://a.example"})
    assert h["access-control-allow-origin"] == "*" and h["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize("value", ["http://a.example", '"*"', '["a", 1]', "[", "{}"])
def test_malformed_cors_flag_fails_at_start(inferd_bin, value):
    from conftest import _model_path
    p = subprocess.run([str(inferd_bin), "serve", _model_path(), "--port", "0", "--allowed-origins", value],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "--allowed-origins" in p.stderr and "JSON list of strings" in p.stderr, p.stderr


# ---- a real browser on another origin -------------------------------------------------------

PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
(async () => {
  const out = document.getElementById("out");
  try {
    const models = await (await fetch("%(base)s/v1/models")).json();
    // application/json makes this a non-simple request: the browser sends a preflight first.
    const r = await fetch("%(base)s/v1/completions", {method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({model: "smollm2", prompt: "Hello", max_tokens: 3, ignore_eos: true})});
    const c = await r.json();
    out.textContent = "RESULT " + JSON.stringify({models: models.data.map(m => m.id), status: r.status,
                                                  tokens: c.usage.completion_tokens});
  } catch (e) {
    out.textContent = "FAILED " + e;
  }
})();
</script></body></html>
"""


@pytest.fixture
def browser_page(tmp_path):
    """browser_page(base_url) -> the DOM after the page ran, loaded by headless Chromium from
    a python http.server on another port: another origin than the inference server's."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.fail("chromium not found: run scripts/install-deps.sh (Debian package chromium)")
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                           cwd=site, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)

    def load(base_url):
        """The text the page wrote into <pre id="out">."""
        (site / "page.html").write_text(PAGE % {"base": base_url})
        p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=60000",
                            "--dump-dom", f"http://127.0.0.1:{port}/page.html"],
                           capture_output=True, text=True, timeout=120)
        assert '<pre id="out">' in p.stdout, p.stdout + p.stderr[-2000:]
        return html.unescape(p.stdout.split('<pre id="out">', 1)[1].split("</pre>", 1)[0])
    yield load
    web.terminate()
    web.wait()


def test_browser_cross_origin_fetch(server, browser_page):
    preflights = server.log_text().count('"OPTIONS /v1/completions" 200')
    out = browser_page(server.base_url)
    assert out.startswith("RESULT "), out
    result = json.loads(out.removeprefix("RESULT "))
    assert result == {"models": ["smollm2"], "status": 200, "tokens": 3}
    # The browser sent its preflight (answered 200 by the HTTP layer) before the POST.
    assert server.log_text().count('"OPTIONS /v1/completions" 200') == preflights + 1


def test_browser_fetch_blocked_for_other_origin(start_server, browser_page):
    server = start_server("--allowed-origins", '["http://other.example"]')
    out = browser_page(server.base_url)
    assert out.startswith("FAILED TypeError"), out  # the browser hides the response from the page
