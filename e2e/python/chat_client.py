"""A python-socketio 4.x client (Socket.IO protocol v4 over Engine.IO 3) for eio3.test.mjs.

    chat_client.py URL USER TRANSPORT PEER

Connects as USER (development mode: `?user=` in the handshake's query) on TRANSPORT
(`websocket` or `polling`), sends PEER a message and an empty one, waits for a message from
PEER, and prints one JSON object per line: `{"ready": ...}`, `{"sent": ack}`,
`{"empty": ack}`, `{"message": ...}`. Every wait has a deadline; exits 1 on a missed one.
"""

import json
import sys
import threading

import socketio

TIMEOUT = 10


def main():
    url, user, transport, peer = sys.argv[1:5]
    sio = socketio.Client(reconnection=False)
    ready, message = threading.Event(), threading.Event()

    def out(**kv):
        print(json.dumps(kv), flush=True)

    @sio.on("ready")
    def on_ready(payload):
        out(ready=payload)
        ready.set()

    @sio.on("error")
    def on_error(payload):
        out(refused=payload)

    @sio.on("message")
    def on_message(msg):
        if msg.get("from") == peer:
            out(message=msg)
            message.set()
        # The return value is the delivery ack.
        return None

    def call(payload):
        answer, done = {}, threading.Event()

        def on_ack(res):
            answer["res"] = res
            done.set()

        sio.emit("message:send", payload, callback=on_ack)
        if not done.wait(TIMEOUT):
            sys.exit("no ack within the deadline")
        return answer["res"]

    sio.connect(f"{url}?user={user}", transports=[transport])
    if not ready.wait(TIMEOUT):
        sys.exit("no ready within the deadline")
    out(sent=call({"to": peer, "body": "from python", "clientId": f"py-{transport}"}))
    out(empty=call({"to": peer, "body": "", "clientId": f"py-{transport}-2"}))
    if not message.wait(TIMEOUT):
        sys.exit("no message from the peer within the deadline")
    sio.disconnect()


if __name__ == "__main__":
    main()
