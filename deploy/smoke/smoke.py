"""Chat smoke test against two gateways, over the public protocol only
(REST /api/v1 and /ws, docs/protocol.md). Used by .ci/containers.sh.

  python smoke.py GATEWAY1_URL GATEWAY2_URL -- STOP_COMMAND...

1. alice registers on gateway 1, bob on gateway 2; alice makes a public
   room, bob joins it; each opens a WebSocket on their own gateway.
2. a message each way: the sender gets `ack`, the other gets `message`.
3. STOP_COMMAND stops gateway 1 (e.g. `podman stop -t 45 NAME`): alice's
   socket must close with 1012; while she is away bob sends three messages
   (acked); alice reconnects to gateway 2 and `resume`s from the last
   message she saw: she must get exactly bob's three, in order, then
   `resumed` with complete; a last message from her reaches bob.

Exits 0 when all of that holds, 1 with the first failure otherwise.
"""

import json
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

TIMEOUT = 15


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", flush=True)
        sys.exit(1)


def rest(base, method, path, body=None, token=None):
    request = urllib.request.Request(f"{base}/api/v1{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def register(base, name):
    status, body = rest(base, "POST", "/auth/register", {"username": name, "password": f"{name}-password-123"})
    check(status == 201, f"register {name} on {base}: {status} {body}")
    return body["token"]


class Socket:
    def __init__(self, base, token, who):
        url = base.replace("http://", "ws://") + f"/ws?access_token={token}"
        self.ws = connect(url, open_timeout=TIMEOUT)
        self.who = who
        ready = self.next(lambda f: True)
        check(ready["type"] == "ready", f"{who}: first frame is {ready}")

    def next(self, want, timeout=TIMEOUT):
        """The next frame `want` accepts; others (presence, typing…) are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            check(left > 0, f"{self.who}: timed out waiting for a frame")
            frame = json.loads(self.ws.recv(timeout=left))
            if frame.get("type") == "error":
                check(False, f"{self.who}: error frame {frame}")
            if want(frame):
                return frame

    def send(self, room, content):
        client_id = secrets.token_hex(8)
        self.ws.send(json.dumps({"type": "send", "room_id": room, "content": content, "client_id": client_id}))
        ack = self.next(lambda f: f["type"] == "ack" and f.get("client_id") == client_id)
        return ack["message_id"]

    def message_with(self, message_id):
        """Waits for the `message` frame of that id (times out otherwise)."""
        return self.next(lambda f: f["type"] == "message" and f["message"]["id"] == message_id)["message"]


def main():
    split = sys.argv.index("--")
    gw1, gw2 = sys.argv[1:split]
    stop = sys.argv[split + 1:]
    suffix = secrets.token_hex(3)
    alice, bob = f"alice_{suffix}", f"bob_{suffix}"

    alice_token = register(gw1, alice)
    bob_token = register(gw2, bob)
    status, room = rest(gw1, "POST", "/rooms", {"name": f"smoke-{suffix}"}, alice_token)
    check(status == 201, f"create room: {status} {room}")
    room_id = room["id"]
    status, body = rest(gw2, "POST", f"/rooms/{room_id}/join", None, bob_token)
    check(status == 200, f"bob joins: {status} {body}")
    print(f"ok   {alice} on gateway 1, {bob} on gateway 2, room {room_id}", flush=True)

    a = Socket(gw1, alice_token, alice)
    b = Socket(gw2, bob_token, bob)

    sent = a.send(room_id, "hello from gateway 1")
    got = b.message_with(sent)
    check(got["content"] == "hello from gateway 1", f"bob got {got}")
    sent = b.send(room_id, "hello from gateway 2")
    a.message_with(sent)
    last_seen = sent
    print("ok   a message each way across the two gateways, both acked", flush=True)

    # Stop gateway 1; podman stop returns once it has drained and exited.
    stopper = threading.Thread(target=lambda: subprocess.run(stop, check=True, capture_output=True))
    stopper.start()
    code = None
    try:
        while True:
            a.ws.recv(timeout=60)
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
    check(code == 1012, f"alice's socket closed with {code}, not 1012")
    print("ok   gateway 1 stopping: alice's socket closed with 1012", flush=True)

    missed = [b.send(room_id, f"while alice moves {i}") for i in range(3)]
    stopper.join()
    print("ok   gateway 1 stopped; bob sent 3 acked messages meanwhile", flush=True)

    a = Socket(gw2, alice_token, alice)
    a.ws.send(json.dumps({"type": "resume", "rooms": {room_id: last_seen}, "ref": "r1"}))
    replayed = []
    while True:
        frame = a.next(lambda f: f["type"] in ("message", "resumed"))
        if frame["type"] == "resumed":
            break
        if frame["message"]["id"] not in replayed:  # live and replayed may repeat one
            replayed.append(frame["message"]["id"])
    check(replayed == missed, f"alice resumed with {replayed}, expected bob's {missed}")
    status = frame["rooms"].get(room_id, {})
    check(status.get("complete") is True, f"resumed says {frame}")
    print("ok   alice reconnected to gateway 2 and resumed: exactly the 3 messages she missed, in order", flush=True)

    sent = a.send(room_id, "back, on gateway 2")
    b.message_with(sent)
    print("ok   alice's message from gateway 2 reached bob: smoke test passed", flush=True)


if __name__ == "__main__":
    main()
