"""Raw HTTP for what the official clients never send: malformed JSON, wrong
field types, oversized bodies."""

import http.client
import json
import socket
import urllib.parse

# hearth serve's default request body limit (server::config::DEFAULT_MAX_BODY_BYTES).
MAX_BODY_BYTES = 32 << 20


def post_raw(url, path, body):
    """POSTs `body` (bytes) as JSON and returns (status, parsed JSON body).

    A server that answers before it has read the whole body (an oversized one)
    may close while the rest is still being sent: the broken pipe is ignored
    and the answer read from what the server sent.
    """
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=120)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        try:
            sock.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
    finally:
        sock.close()
    return response.status, json.loads(data)


def oversized(field):
    """A JSON body just over the limit, with `field` holding the bulk. Only a
    few bytes beyond the limit, so that the server has read (almost) all of it
    when it answers and does not reset the connection on unread data."""
    start = b'{"model": "tiny", "' + field.encode() + b'": "'
    end = b'"}'
    fill = MAX_BODY_BYTES + 16 - len(start) - len(end)
    return start + b"x" * fill + end
