"""A tiny SMTP responder for the relay-audit tests (standard library sockets only).

    python3 smtp_responder.py HOST PORT MODE DOMAIN

MODE `open` accepts every recipient (an open relay). MODE `own-domain` accepts only
recipients in DOMAIN, after undoing the address tricks a careful server undoes
(source route, quoting, percent hack, bang path), like postfix with
reject_unauth_destination. It never accepts DATA. Prints "ready" once listening.
"""
import socket
import sys
import threading


def final_domain(address):
    """The domain mail to `address` would really go to."""
    a = address.strip().strip("<>")
    if a.startswith("@") and ":" in a:          # source route: @relay:user@domain
        a = a.split(":", 1)[1]
    if a.startswith('"'):                       # quoted local part: "user@other"@domain
        end = a.find('"', 1)
        inner = a[1:end]
        if "@" in inner:
            return inner.rsplit("@", 1)[1].lower()
        a = inner + a[end + 1:]
    local, _, domain = a.rpartition("@")
    if "%" in local:                            # percent hack: user%other@domain
        return local.rsplit("%", 1)[1].lower()
    if "!" in local:                            # bang path: other!user@domain
        return local.split("!", 1)[0].lower()
    if "!" in domain and not local:
        return domain.split("!", 1)[0].lower()
    return domain.lower()


def serve(conn, mode, domain):
    f = conn.makefile("rwb", buffering=0)

    def reply(text):
        f.write(text.encode() + b"\r\n")

    reply(f"220 {domain} ESMTP mailguard-test")
    sender = None
    for raw in f:
        line = raw.decode(errors="replace").rstrip("\r\n")
        verb = line[:4].upper()
        if verb in ("EHLO", "HELO"):
            reply(f"250-{domain}\r\n250 PIPELINING" if verb == "EHLO" else f"250 {domain}")
        elif line.upper().startswith("MAIL FROM:"):
            sender = line[10:]
            reply("250 2.1.0 Ok")
        elif line.upper().startswith("RCPT TO:"):
            if sender is None:
                reply("503 5.5.1 Need MAIL first")
            elif mode == "open" or final_domain(line[8:]) == domain:
                reply("250 2.1.5 Ok")
            else:
                reply("554 5.7.1 Relay access denied")
        elif verb == "RSET":
            sender = None
            reply("250 2.0.0 Ok")
        elif verb == "DATA":
            reply("554 5.5.1 this test server takes no message bodies")
        elif verb == "QUIT":
            reply("221 2.0.0 Bye")
            break
        else:
            reply("502 5.5.2 Error: command not recognized")
    conn.close()


def main():
    host, port, mode, domain = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    s.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, mode, domain), daemon=True).start()


if __name__ == "__main__":
    main()
