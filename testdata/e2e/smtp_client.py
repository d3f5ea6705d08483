"""Submit a message through mailgate with Python's smtplib.

usage: smtp_client.py implicit|starttls login|plain HOST PORT CAFILE USER PASSWORD FROM TO MESSAGE_FILE

smtplib sends AUTH PLAIN and AUTH LOGIN with the first response inline.
"""
import smtplib
import ssl
import sys


def main():
    mode, method, host, port, cafile, user, password, sender, rcpt, path = sys.argv[1:11]
    ctx = ssl.create_default_context(cafile=cafile)
    if mode == "implicit":
        s = smtplib.SMTP_SSL(host, int(port), context=ctx)
    else:
        s = smtplib.SMTP(host, int(port))
        s.starttls(context=ctx)
    s.ehlo()
    s.user, s.password = user, password
    code, resp = s.auth(method.upper(), getattr(s, "auth_" + method))
    if code != 235:
        sys.exit("AUTH: %d %s" % (code, resp))
    with open(path, "rb") as f:
        refused = s.sendmail(sender, [rcpt], f.read())
    if refused:
        sys.exit("refused: %s" % refused)
    s.quit()
    print("sent")


main()
