"""An independent SMTP server for the email notifier tests, built on Python's `aiosmtpd`.

Listens on 127.0.0.1 (a free port it picks), prints the port on its first stdout line, then
runs until killed. Every accepted message is parsed with Python's `email` package and written
to DIR/<n>.json (n = 1, 2, ...; written to a temporary name first, so a file that exists is
complete):

  {"mail_from", "rcpt_tos", "tls": bool, "login": str or null,
   "headers": {name: value}, "structure": "multipart/alternative(text/plain, ...)",
   "parts": [{"content_type", "content", "content_id", "disposition"}], "raw": message text}

A part's "content" is its decoded text, or for a binary part (an image) its bytes in base64.

Options:
  --dir DIR                          where messages are written (required)
  --starttls-cert CERT --starttls-key KEY
                                     offer STARTTLS with this PEM pair and require it
  --user U --password P              require AUTH with these credentials (over TLS when TLS
                                     is on)
  --reject-rcpt ADDR                 answer 550 to RCPT TO:<ADDR>
"""

import argparse
import base64
import email
import email.policy
import json
import os
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    """The aiosmtpd handler: records messages, rejects one recipient if asked."""

    def __init__(self, directory, reject_rcpt):
        self.directory = directory
        self.reject_rcpt = reject_rcpt
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_rcpt and address.lower() == self.reject_rcpt.lower():
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = describe(envelope, session)
        path = os.path.join(self.directory, "%d.json" % self.count)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
        os.replace(path + ".tmp", path)
        return "250 2.0.0 Message accepted"


def describe(envelope, session):
    raw = envelope.original_content or envelope.content
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
    return {
        "mail_from": envelope.mail_from,
        "rcpt_tos": list(envelope.rcpt_tos),
        "tls": session.ssl is not None,
        "login": login.decode("utf-8", "replace") if login else None,
        "headers": {name: str(value) for name, value in message.items()},
        "structure": structure(message),
        "parts": [describe_part(part) for part in message.walk() if not part.is_multipart()],
        "raw": raw.decode("utf-8", "replace"),
    }


def structure(part):
    """The MIME tree as text: `multipart/alternative(text/plain, multipart/related(...))`."""
    if not part.is_multipart():
        return part.get_content_type()
    children = ", ".join(structure(p) for p in part.iter_parts())
    return "%s(%s)" % (part.get_content_type(), children)


def describe_part(part):
    content = part.get_content()
    if isinstance(content, bytes):
        content = base64.b64encode(content).decode("ascii")
    return {
        "content_type": part.get_content_type(),
        "content": content,
        "content_id": part.get("Content-ID"),
        "disposition": part.get_content_disposition(),
    }


def authenticator(user, password):
    """Accepts exactly the configured credentials, with any mechanism aiosmtpd offers."""

    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


def free_port():
    """A port nothing listens on; aiosmtpd's Controller needs the number before it binds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_parameters(args):
    params = {"decode_data": False}
    tls = args.starttls_cert is not None
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.starttls_cert, args.starttls_key)
        params.update(tls_context=context, require_starttls=True)
    if args.user is not None:
        params.update(
            authenticator=authenticator(args.user, args.password),
            auth_required=True,
            auth_require_tls=tls,
        )
    return params


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--starttls-cert")
    parser.add_argument("--starttls-key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--reject-rcpt")
    args = parser.parse_args()
    if (args.starttls_cert is None) != (args.starttls_key is None):
        parser.error("--starttls-cert and --starttls-key go together")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")

    handler = Sink(args.dir, args.reject_rcpt)
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), **smtp_parameters(args)
    )
    controller.start()
    print(controller.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
