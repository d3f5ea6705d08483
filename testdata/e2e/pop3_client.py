"""Log in to mailgate with Python's poplib and fetch every message.

usage: pop3_client.py implicit|starttls HOST PORT CAFILE USER PASSWORD

poplib has no AUTH command, so it logs in with USER and PASS; on a
starttls listener it sends STLS first (poplib.POP3.stls, RFC 2595). It
reads CAPA, STAT, LIST, UIDL, TOP 1 0 and RETR of each message, deletes
nothing and ends with QUIT. Prints one JSON object: the capabilities, the
number of messages, and each message (RETR) and the headers of message 1
(TOP) in base64, lines joined with CRLF as on the wire.
"""
import base64
import json
import poplib
import ssl
import sys


def main():
    mode, host, port, cafile, user, password = sys.argv[1:7]
    ctx = ssl.create_default_context(cafile=cafile)
    if mode == "implicit":
        c = poplib.POP3_SSL(host, int(port), context=ctx, timeout=60)
    else:
        c = poplib.POP3(host, int(port), timeout=60)
        c.stls(context=ctx)
    caps = sorted(c.capa())
    c.user(user)
    c.pass_(password)
    count, _ = c.stat()
    _, listing, _ = c.list()
    _, uidl, _ = c.uidl()
    if len(listing) != count or len(uidl) != count:
        sys.exit("LIST/UIDL: %d/%d entries for %d messages" % (len(listing), len(uidl), count))
    out = {"capa": caps, "count": count, "messages": [], "top": ""}
    for i in range(1, count + 1):
        _, lines, _ = c.retr(i)
        out["messages"].append(base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode())
    if count > 0:
        _, lines, _ = c.top(1, 0)
        out["top"] = base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode()
    c.quit()
    print(json.dumps(out))


main()
