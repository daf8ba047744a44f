"""A mail sink for the MTA tests: accepts every message over SMTP on port 25 and appends
one JSON line per message ({"from": ..., "rcpt": [...]}) to a file.

    python3 mta_sink.py ADDRESS RECORD_FILE [UNKNOWN_PREFIX [DEFER_PREFIX]]

With UNKNOWN_PREFIX, RCPT of an address whose local part starts with it is answered
"550 5.1.1 user unknown" (a harvested list's dead addresses); with DEFER_PREFIX, "451 4.3.0
try again later" (the message stays in the MTA's queue, retried). Prints "ready" once
listening. Standard library only."""
import json
import socket
import sys
import threading

lock = threading.Lock()


def serve(conn, record, unknown, defer):
    f = conn.makefile("rwb", buffering=0)

    def reply(text):
        f.write(text.encode() + b"\r\n")

    reply("220 sink.test ESMTP")
    sender, rcpt = "", []
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line.decode(errors="replace").strip()
        verb = cmd[:4].upper()
        if verb in ("EHLO", "HELO"):
            reply("250 sink.test")
        elif verb == "MAIL":
            sender, rcpt = cmd.split(":", 1)[1].strip(), []
            reply("250 ok")
        elif verb == "RCPT":
            address = cmd.split(":", 1)[1].strip().strip("<>")
            if unknown and address.startswith(unknown):
                reply("550 5.1.1 user unknown")
                continue
            if defer and address.startswith(defer):
                reply("451 4.3.0 try again later")
                continue
            rcpt.append(address)
            reply("250 ok")
        elif verb == "DATA":
            reply("354 go ahead")
            while f.readline().rstrip(b"\r\n") != b".":
                pass
            with lock, open(record, "a") as out:
                out.write(json.dumps({"from": sender, "rcpt": rcpt}) + "\n")
            reply("250 queued")
        elif verb == "QUIT":
            reply("221 bye")
            return
        else:
            reply("250 ok")


def main():
    address, record = sys.argv[1], sys.argv[2]
    unknown = sys.argv[3] if len(sys.argv) > 3 else ""
    defer = sys.argv[4] if len(sys.argv) > 4 else ""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, 25))
    s.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, record, unknown, defer), daemon=True).start()


if __name__ == "__main__":
    main()
