"""A minimal OpenAI chat-completions server that is never the bottleneck of a client bench.

Raw asyncio protocol (uvloop when installed), HTTP/1.1 keep-alive, one canned answer with
usage. It parses just enough HTTP to be correct for the clients under test (Content-Length
bodies, no chunked uploads). Written by hand because every general server framework costs
more CPU per request than the clients we are trying to measure.

    python bench/fast_server.py --port 0      # prints the URL, serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

import orjson

BODY = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1767225600,
    "model": "bench-model-2026-01-01", "system_fingerprint": "fp_bench",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "The answer is 42.",
                             "refusal": None}}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26,
              "prompt_tokens_details": {"cached_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0}},
})
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
            b"x-ratelimit-remaining-requests: 999999\r\n\r\n" + BODY)


class _Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            i = head.lower().find(b"content-length:")
            if i >= 0:
                j = head.find(b"\r\n", i)
                length = int(head[i + 15: j if j >= 0 else len(head)])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            self.buf = self.buf[total:]
            self.t.write(RESPONSE)


async def serve(port: int, ready=None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, "127.0.0.1", port, backlog=4096,
                                      reuse_address=True)
    sock: socket.socket = server.sockets[0]
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(url, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port))
    except ImportError:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
