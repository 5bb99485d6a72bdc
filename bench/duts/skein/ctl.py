#!/usr/bin/env python3
"""The adapter's view of skeind, over its control socket (newline-delimited JSON, src/control/protocol.ts).

  ctl.py SOCKET ready              exit 0 once skeind answers and its speaker has the injector's peer configured
  ctl.py SOCKET accepted ADDRESS   prints the prefixes accepted from the peer at ADDRESS (0 when unknown)

Python, not skeinctl: the harness polls this many times a second, and a node start costs ~50 ms of CPU.
"""
import json
import socket
import sys


def call(path, method):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.sendall((json.dumps({"id": 1, "method": method}) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)["result"]


def main():
    path, what = sys.argv[1], sys.argv[2]
    try:
        peers = call(path, "peers")["peers"]
    except (OSError, ValueError, KeyError):
        if what == "ready":
            return 1
        print(0)
        return 0
    if what == "ready":
        return 0 if len(peers) >= 2 else 1
    total = sum(p["prefixes"]["accepted"] for p in peers if p["address"] == sys.argv[3])
    print(total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
