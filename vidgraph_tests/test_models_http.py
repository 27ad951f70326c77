"""OpenAI-compatible HTTP backend against a small local test server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from vidgraph.models import GenerationParams, OpenAIChatModel, system, user

SECRET = "sk-test-SECRET-12345"


class FakeOpenAIServer:
    """Chat-completions server whose behaviour is chosen by a ``MODE=...`` word in the last message.

    MODE=ok             answer; describes any images it decoded ("image WxH")
    MODE=429once:KEY    429 (Retry-After: 0) on the first call for KEY, then ok
    MODE=500once:KEY    500 on the first call for KEY, then ok
    MODE=always500      always 500
    MODE=hang           sleeps until released (the client must time out)
    MODE=slow           sleeps 0.15 s, then ok (for the concurrency cap)
    MODE=400echo        400 whose body echoes the request's Authorization header
    MODE=badmessage     200 whose choices[0].message is a string
    MODE=deep           200 whose body is a JSON list nested 100,000 deep
    MODE=trickle        200 whose body comes one byte every 0.2 s
    MODE=huge           200 with a valid 400 kB answer
    """

    def __init__(self):
        self.calls: list[dict] = []
        self.counts: dict[str, int] = {}
        self.inflight = 0
        self.max_inflight = 0
        self.release = threading.Event()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep test output quiet
                pass

            def _send(self, status, body, headers=None):
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    self._handle(body)
                finally:
                    with server.lock:
                        server.inflight -= 1

            def _handle(self, body):
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "not found"})
                msgs = body["messages"]
                last = msgs[-1]["content"]
                texts = [last] if isinstance(last, str) else [p["text"] for p in last if p["type"] == "text"]
                images = []
                if not isinstance(last, str):
                    for p in last:
                        if p["type"] == "image_url":
                            url = p["image_url"]["url"]
                            head, b64 = url.split(",", 1)
                            assert head == "data:image/jpeg;base64"
                            images.append(Image.open(io.BytesIO(base64.b64decode(b64))))
                text = " ".join(texts)
                mode = next((w[5:] for w in text.split() if w.startswith("MODE=")), "ok")
                with server.lock:
                    server.calls.append({"auth": self.headers.get("Authorization"), "body": body, "mode": mode})
                    n = server.counts[mode] = server.counts.get(mode, 0) + 1
                if mode.startswith("429once") and n == 1:
                    return self._send(429, {"error": "rate limited"}, {"Retry-After": "0"})
                if mode.startswith("500once") and n == 1:
                    return self._send(500, {"error": "boom"})
                if mode == "always500":
                    return self._send(503, {"error": "overloaded"})
                if mode == "400echo":
                    return self._send(400, {"error": f"bad request from {self.headers.get('Authorization')}"})
                if mode == "badmessage":
                    return self._send(200, {"choices": [{"message": "just a string"}]})
                if mode == "deep":
                    return self._send(200, b"[" * 100_000 + b"]" * 100_000)
                if mode == "trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    for _ in range(1000):
                        if server.release.wait(0.2):
                            return
                        try:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                        except OSError:
                            return
                if mode == "huge":
                    text = "x" * 400_000
                if mode == "hang":
                    server.release.wait(5)
                if mode == "slow":
                    time.sleep(0.15)
                desc = " ".join(f"image {im.size[0]}x{im.size[1]}" for im in images)
                answer = f"echo[{text}] {desc}".strip()
                return self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                                        "choices": [{"index": 0, "message": {"role": "assistant",
                                                                             "content": answer},
                                                     "finish_reason": "stop"}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    with FakeOpenAIServer() as s:
        yield s


def _model(server, **kw):
    kw = {"api_key": SECRET, "timeout_s": 5, "max_retries": 2, "backoff_s": 0.01, **kw}
    return OpenAIChatModel(server.base_url, "test-vlm", **kw)


P = GenerationParams(max_new_tokens=33, temperature=0.0, top_p=0.9, seed=5)


def test_success_with_image_data_url(server):
    m = _model(server)
    img = Image.new("RGB", (64, 48), (200, 10, 10))
    res = m.generate([[system("sys"), user(img, "MODE=ok what is this")], [user("MODE=ok text only")]], P)
    assert [r.ok for r in res] == [True, True], [r.error for r in res]
    assert "image 64x48" in res[0].text  # the server decoded the JPEG data URL
    assert res[1].text == "echo[MODE=ok text only]"
    assert res[0].model_id == "test-vlm"
    body = next(c["body"] for c in server.calls if len(c["body"]["messages"]) == 2)  # calls run concurrently
    assert body["model"] == "test-vlm" and body["max_tokens"] == 33 and body["temperature"] == 0.0
    assert body["top_p"] == 0.9 and body["seed"] == 5
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    assert [p["type"] for p in body["messages"][1]["content"]] == ["image_url", "text"]
    assert all(c["auth"] == f"Bearer {SECRET}" for c in server.calls)
    m.close()


@pytest.mark.parametrize("mode", ["429once:a", "500once:b"])
def test_retry_then_success(server, mode, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    m = _model(server)
    (r,) = m.generate([[user(f"MODE={mode}")]], P)
    assert SECRET not in caplog.text
    assert r.ok, r.error
    assert r.extra["attempts"] == 2
    assert server.counts[mode] == 2


def test_gives_up_after_max_retries(server):
    m = _model(server, max_retries=2)
    res = m.generate([[user("MODE=always500")], [user("MODE=ok")]], P)
    assert res[0].text is None and "HTTP 503" in res[0].error and "3 attempts" in res[0].error
    assert server.counts["always500"] == 3
    assert res[1].ok


def test_client_error_is_not_retried_and_key_is_scrubbed(server):
    m = _model(server)
    (r,) = m.generate([[user("MODE=400echo")]], P)
    assert r.error.startswith("HTTP 400") and server.counts["400echo"] == 1
    assert SECRET not in r.error and "***" in r.error


def test_timeout_is_recorded_on_that_request_only(server):
    m = _model(server, timeout_s=0.3, max_retries=1)
    t0 = time.monotonic()
    res = m.generate([[user("MODE=ok first")], [user("MODE=hang")], [user("MODE=ok third")]], P)
    elapsed = time.monotonic() - t0
    assert res[0].ok and res[2].ok
    assert res[0].text == "echo[MODE=ok first]" and res[2].text == "echo[MODE=ok third]"
    assert res[1].text is None and "timeout" in res[1].error and "2 attempts" in res[1].error
    assert server.counts["hang"] == 2
    assert elapsed < 3.0


def test_connection_error_is_recorded():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    m = OpenAIChatModel(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_s=0.01, timeout_s=2)
    (r,) = m.generate([[user("hi")]], P)
    assert r.text is None and "connection error" in r.error


def test_concurrency_is_capped(server):
    m = _model(server, max_concurrency=3)
    res = m.generate([[user(f"MODE=slow {i}")] for i in range(9)], P)
    assert [r.text for r in res] == [f"echo[MODE=slow {i}]" for i in range(9)]  # in request order
    assert 1 < server.max_inflight <= 3


def test_key_never_in_describe_or_repr(server):
    m = _model(server)
    blob = json.dumps(m.describe()) + repr(m) + str(m)
    assert SECRET not in blob
    assert m.describe()["base_url"] == server.base_url and m.describe()["backend"] == "openai"


def test_malformed_deep_trickling_and_huge_responses_become_row_errors(server):
    """issue 14, item 9: none of these may escape as an exception or hang past the deadline."""
    m = _model(server, timeout_s=1.0, max_retries=0)
    m.max_response_bytes = 300_000
    t0 = time.monotonic()
    res = m.generate([[user("MODE=badmessage")], [user("MODE=deep")], [user("MODE=trickle")],
                      [user("MODE=huge")], [user("MODE=ok fine")]], P)
    elapsed = time.monotonic() - t0
    bad, deep, trickle, huge, ok = res
    assert "malformed response" in bad.error and "not an object" in bad.error
    assert "malformed response" in deep.error and "nested deeper" in deep.error
    assert "timeout" in trickle.error
    assert "malformed response" in huge.error and "over the limit" in huge.error
    assert ok.ok and ok.text == "echo[MODE=ok fine]"
    assert elapsed < 3.0  # the trickle is cut at its 1 s deadline, not after 200 s
