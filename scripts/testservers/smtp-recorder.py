#!/usr/bin/env python3
"""A local SMTP server (aiosmtpd) for the notification tests.

Listens on a free loopback port with STARTTLS required (or implicit TLS
with --implicit-tls), using CERT and KEY; prints "PORT <n>" on stdout and
appends every message to OUTFILE as one JSON line: mail_from, rcpt_tos,
tls (whether the session was encrypted when the mail came) and data.
Runs until killed or until its stdin closes.

    smtp-recorder.py OUTFILE CERT KEY [--implicit-tls]
"""
import json
import socket
import ssl
import sys

from aiosmtpd.controller import Controller

OUT, CERT, KEY = sys.argv[1:4]
IMPLICIT = "--implicit-tls" in sys.argv[4:]


class Recorder:
    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(CERT, KEY)
port = free_port()
if IMPLICIT:
    controller = Controller(Recorder(), hostname="127.0.0.1", port=port, ssl_context=ctx)
else:
    controller = Controller(
        Recorder(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True
    )
controller.start()
print("PORT", port, flush=True)
sys.stdin.read()
controller.stop()
