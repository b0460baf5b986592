"""Private git servers for the tests, both real: git over ssh (OpenSSH's sshd in a container
made from a test image with openssh-server, the project's deploy key in its authorized_keys)
and smart HTTP over TLS (``git http-backend`` behind a small server on the bridge's host
address that asks for a token)."""

from __future__ import annotations

import base64
import http.server
import ipaddress
import ssl
import subprocess
import threading
from pathlib import Path

from tests.support.apps import BRIDGE_ADDRESS
from tests.support.playbooks import build_image

GIT_HOST_IMAGE = "dpltest-githost"


def build_git_host_image(tmp_path: Path) -> None:
    """The test image of the ssh git host: DPL's base recipe with openssh-server instead of
    Node."""
    build_image(tmp_path, GIT_HOST_IMAGE, extra_packages=["openssh-server"])


def self_signed_certificate(folder: Path, address: str) -> tuple[Path, Path]:
    """A certificate for ``address`` (an IP SAN), as a private git host's own CA would sign."""
    cert, key = folder / "git.crt", folder / "git.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=dpltest git host", "-addext", f"subjectAltName=IP:{address}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class TokenGitServer:
    """Smart HTTP git over TLS on the bridge's host address: every request must carry
    ``token`` as its Basic password (any user), as a forge's personal access token."""

    def __init__(self, root: Path, token: str, folder: Path, address: str = BRIDGE_ADDRESS):
        ipaddress.ip_address(address)
        self.root, self.token, self.address = root, token, address
        self.cert, key = self_signed_certificate(folder, address)
        self.seen: list[tuple[str, str | None]] = []  # (path, user) of every request
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.serve()

            def do_POST(self):
                self.serve()

            def serve(self):
                user = server.authorized(self.headers.get("Authorization", ""))
                server.seen.append((self.path, user))
                if user is None:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _question, query = self.path.partition("?")
                env = {"PATH": "/usr/bin:/bin", "GIT_PROJECT_ROOT": str(server.root), "GIT_HTTP_EXPORT_ALL": "1",
                       "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
                       "REMOTE_USER": user, "REMOTE_ADDR": self.client_address[0],
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                       "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env["CONTENT_LENGTH"] = str(len(body))
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                                     check=False).stdout
                head, _blank, payload = out.partition(b"\r\n\r\n")
                headers = [line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line]
                status = next((int(value.split()[0]) for name, value in headers if name == "Status"), 200)
                self.send_response(status)
                for name, value in headers:
                    if name != "Status":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer((address, 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def authorized(self, header: str) -> str | None:
        """The user of a request with the right token, else None."""
        if not header.startswith("Basic "):
            return None
        user, _colon, password = base64.b64decode(header[6:]).decode("utf-8", "replace").partition(":")
        return user if password == self.token else None

    def url(self, repo_name: str) -> str:
        return f"https://{self.address}:{self.port}/{repo_name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
