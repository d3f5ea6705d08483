"""Log in to mailgate with Python's imaplib and fetch message 1.

usage: imap_client.py implicit|starttls login|plain HOST PORT CAFILE USER PASSWORD

"plain" uses AUTHENTICATE PLAIN without an initial response (imaplib waits
for the "+" as offlineimap does). Prints one JSON object: the number of
messages in INBOX and message 1 (BODY.PEEK[]) in base64.
"""
import base64
import imaplib
import json
import ssl
import sys


def main():
    mode, method, host, port, cafile, user, password = sys.argv[1:8]
    ctx = ssl.create_default_context(cafile=cafile)
    if mode == "implicit":
        c = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
    else:
        c = imaplib.IMAP4(host, int(port))
        c.starttls(ssl_context=ctx)
    if method == "login":
        c.login(user, password)
    else:
        c.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (user, password)).encode())
    typ, data = c.select("INBOX", readonly=True)
    if typ != "OK":
        sys.exit("SELECT: %s %s" % (typ, data))
    out = {"exists": int(data[0]), "body": ""}
    if out["exists"] > 0:
        typ, data = c.fetch("1", "(BODY.PEEK[])")
        if typ != "OK":
            sys.exit("FETCH: %s %s" % (typ, data))
        out["body"] = base64.b64encode(data[0][1]).decode()
    c.logout()
    print(json.dumps(out))


main()
