"""Debian's nginx running our deploy/nginx config: a prefix folder with the config, a fresh
self-signed certificate and an upstream file naming the app servers on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NGINX_DIR = ROOT / "deploy" / "nginx"
NGINX = "/usr/sbin/nginx"


def nginx_binary() -> str:
    if not os.access(NGINX, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("nginx is missing (Debian package 'nginx'; make system-deps)")
        pytest.skip("Debian nginx is not installed at /usr/sbin/nginx")
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing")
    return NGINX


def self_signed_certificate(certs: Path, name: str = "localhost") -> None:
    certs.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
         "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def nginx_prefix(
    prefix: Path, upstreams: list[str], *, http_port: int = 80, https_port: int = 443
) -> Path:
    """Lay our config out under ``prefix`` as the official image does under /etc/nginx;
    ``upstreams`` replace the compose service name, the listen ports may move off 80/443."""
    prefix.mkdir(parents=True, exist_ok=True)
    config = (NGINX_DIR / "nginx.conf").read_text(encoding="utf-8")
    if (http_port, https_port) != (80, 443):
        config = config.replace("listen 80 ", f"listen {http_port} ")
        config = config.replace("listen [::]:80 ", f"listen [::]:{http_port} ")
        config = config.replace("listen 443 ", f"listen {https_port} ")
        config = config.replace("listen [::]:443 ", f"listen [::]:{https_port} ")
        config = config.replace(
            "return 301 https://$host$request_uri;",
            f"return 301 https://$host:{https_port}$request_uri;",
        )
    # Temp files inside the prefix too, not in the system nginx's /var/lib/nginx.
    temp_paths = "".join(
        f"    {name}_temp_path {prefix / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = config.replace("http {\n", "http {\n" + temp_paths, 1)
    (prefix / "nginx.conf").write_text(config, encoding="utf-8")
    shutil.copy("/etc/nginx/mime.types", prefix / "mime.types")
    servers = "".join(
        f"    server {address} max_fails=3 fail_timeout=10s;\n" for address in upstreams
    )
    (prefix / "onebox-upstream.conf").write_text(
        f"upstream onebox {{\n{servers}    keepalive 32;\n}}\n", encoding="utf-8"
    )
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):  # fmt: skip
        (prefix / name).mkdir(exist_ok=True)
    self_signed_certificate(prefix / "certs")
    return prefix / "nginx.conf"


def nginx_command(prefix: Path, *args: str) -> list[str]:
    """nginx on our config under ``prefix``, its pid file inside the prefix too."""
    return [
        nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
        "-g", f"pid {prefix}/nginx.pid;", *args,
    ]  # fmt: skip
