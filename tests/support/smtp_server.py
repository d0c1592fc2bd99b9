"""A real SMTP server for vigil's tests (aiosmtpd).

TLS is required (STARTTLS, or implicit TLS from the first byte) and so is
AUTH. Each message received is written to --dir as one .eml file, renamed
into place so a reader never sees half a message. Prints "ready" once it
accepts connections; runs until killed.
"""

import argparse
import os
import signal
import ssl
import threading
import time
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Maildir:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.eml"
        tmp = os.path.join(self.directory, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 Message accepted"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--mode", choices=["starttls", "tls"], default="starttls")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    a = p.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(a.cert, a.key)
    common = dict(
        hostname="127.0.0.1",
        port=a.port,
        authenticator=authenticator(a.user, a.password),
        auth_required=True,
    )
    if a.mode == "starttls":
        controller = Controller(
            Maildir(a.dir), tls_context=context, require_starttls=True, auth_require_tls=True, **common
        )
    else:
        # Every byte is encrypted already; aiosmtpd only tracks STARTTLS.
        controller = Controller(Maildir(a.dir), ssl_context=context, auth_require_tls=False, **common)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
