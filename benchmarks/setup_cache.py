"""How much the per-repository package cache saves a repository's setup steps.

A setup step (`python -m venv .venv`, then `pip install numpy requests` into it) runs twice in the
real bubblewrap sandbox, each time in a fresh workspace of the same repository, through the real
egress proxy, against a package index served here on loopback from wheels on this disk. The
index is throttled to look like a registry across the internet (default 40 ms per request,
4 MB/s), since a loopback index would hide exactly the cost the cache saves.

    python benchmarks/setup_cache.py [--bandwidth-mbps 4] [--latency-ms 40]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import ssl
import subprocess
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agents.sandbox import BubblewrapSandbox
from agents.sandbox.egress_gateway import EgressAllowList
from agents.sandbox.package_cache import PackageCache

PACKAGES = ("numpy", "requests")


def download_wheels(into: Path) -> list[Path]:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary",
            ":all:",
            "-d",
            str(into),
            *PACKAGES,
        ],
        check=True,
        capture_output=True,
    )
    return sorted(into.glob("*.whl"))


def project_name(wheel: Path) -> str:
    return wheel.name.split("-", 1)[0].lower().replace("_", "-")


class ThrottledIndex:
    """A PEP 503 simple index over `wheels`, each response delayed and rate-limited."""

    def __init__(self, wheels: list[Path], *, latency_s: float, bytes_per_s: float) -> None:
        self.wheels = {w.name: w for w in wheels}
        self.latency_s = latency_s
        self.bytes_per_s = bytes_per_s
        self.served = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        await asyncio.sleep(self.latency_s)
        body, kind = self.body(path)
        status = b"200 OK" if body is not None else b"404 Not Found"
        body = body or b""
        # PyPI's own caching headers: files never change, index pages for ten minutes.
        cache = "max-age=365000000, immutable, public" if kind != "text/html" else "max-age=600"
        head_lines = [
            f"HTTP/1.1 {status.decode()}",
            f"Content-Type: {kind}",
            f"Cache-Control: {cache}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode())
        chunk = 64 * 1024
        for start in range(0, len(body), chunk):
            writer.write(body[start : start + chunk])
            await writer.drain()
            await asyncio.sleep(chunk / self.bytes_per_s)
        self.served += len(body)
        writer.close()

    def body(self, path: str) -> tuple[bytes | None, str]:
        if path.startswith("/simple/"):
            name = path.removeprefix("/simple/").strip("/").lower().replace("_", "-")
            links = [
                f'<a href="/files/{w}">{w}</a>'
                for w in self.wheels
                if project_name(Path(w)) == name
            ]
            if not links:
                return None, "text/html"
            return f"<html><body>{''.join(links)}</body></html>".encode(), "text/html"
        if path.startswith("/files/") and path.removeprefix("/files/") in self.wheels:
            return self.wheels[
                path.removeprefix("/files/")
            ].read_bytes(), "application/octet-stream"
        return None, "text/plain"


def tls_for_loopback(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for 127.0.0.1: pip caches only what it fetched over HTTPS, as
    from any real registry."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "index.crt", directory / "index.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


async def run_setup(
    root: Path, cache: PackageCache, port: int, label: str, certificate: Path
) -> tuple[float, bool]:
    work = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=root)) / "repo"
    work.mkdir()
    (work / "index.crt").write_bytes(certificate.read_bytes())
    sandbox = BubblewrapSandbox(
        work,
        cache=cache,
        uid_key="benchmark/repository",
        egress=EgressAllowList(allow=(), allow_private=(f"127.0.0.1:{port}",)),
    )
    command = (
        f"{sys.executable} -m venv --without-pip .venv && {sys.executable} -m pip "
        f"--python .venv/bin/python install -q --cert index.crt "
        f"--index-url https://127.0.0.1:{port}/simple/ {' '.join(PACKAGES)}"
    )
    started = time.monotonic()
    result = await sandbox.run(
        command, cwd=work, timeout_s=600, network=True, env={"PIP_CONFIG_FILE": "/dev/null"}
    )
    elapsed = time.monotonic() - started
    if not result.ok or "--debug" in sys.argv:
        print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
    return elapsed, result.ok


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bandwidth-mbps", type=float, default=4.0, help="index bandwidth, MB/s")
    parser.add_argument("--latency-ms", type=float, default=40.0, help="delay per request")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="setup-cache-") as scratch:
        root = Path(scratch)
        root.chmod(0o755)
        wheels = download_wheels(root / "wheels")
        total = sum(w.stat().st_size for w in wheels) / 1e6
        index = ThrottledIndex(
            wheels, latency_s=args.latency_ms / 1000, bytes_per_s=args.bandwidth_mbps * 1e6
        )
        context, certificate = tls_for_loopback(root)
        server = await asyncio.start_server(index.handle, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        cache = PackageCache.for_repository(root / "caches", "1/octo-org/demo")
        try:
            cold, cold_ok = await run_setup(root, cache, port, "cold", certificate)
            cold_bytes = index.served
            warm, warm_ok = await run_setup(root, cache, port, "warm", certificate)
            warm_bytes = index.served - cold_bytes
        finally:
            server.close()
            await server.wait_closed()
    print(
        f"setup step: python -m venv + pip install {' '.join(PACKAGES)} ({total:.1f} MB of wheels)"
    )
    print(f"index: {args.latency_ms:g} ms per request, {args.bandwidth_mbps:g} MB/s")
    print("| run | time | downloaded | ok |")
    print("| --- | --- | --- | --- |")
    print(f"| first (cold cache) | {cold:.1f} s | {cold_bytes / 1e6:.1f} MB | {cold_ok} |")
    print(f"| second (warm cache) | {warm:.1f} s | {warm_bytes / 1e6:.2f} MB | {warm_ok} |")
    print(f"speed-up: {cold / warm:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
