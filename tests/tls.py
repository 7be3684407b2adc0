"""A throw-away certificate authority and a server certificate for the emulator, made at test time with the
`openssl` command-line tool (stdlib only otherwise).

    certs = make_certs()                       # or: with certificates() as certs: ...
    try:
        with Emulator(tls=(certs.cert, certs.key)) as emu:
            requests.get(emu.files_url + "/x", verify=certs.ca)
    finally:
        shutil.rmtree(certs.folder)            # the caller deletes the folder

The server certificate is for 127.0.0.1 and localhost (subjectAltName IP:127.0.0.1, DNS:localhost), the API
and FILE hosts of the emulator, valid for two days, signed by a CA that exists only in that folder. Both carry
the extensions Python 3.13's strict verification (VERIFY_X509_STRICT) wants.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MISSING = "the openssl command-line tool is not installed: TLS tests need it to make a throw-away CA"

_CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = Runware Emulator Throw-away Test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

_SERVER_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class Certs:
    folder: Path  # holds everything below, and the CA's private key: delete it when done
    ca: Path  # ca.pem: the CA certificate, for verify= / cafile=
    cert: Path  # cert.pem: the server certificate
    key: Path  # key.pem: the server's private key


def openssl() -> str | None:
    """The openssl executable, or None when it is not installed."""
    return shutil.which("openssl")


def make_certs(folder: str | Path | None = None) -> Certs:
    """Write ca.pem, cert.pem and key.pem into `folder` (default: a new temporary folder, which the caller
    deletes). Raises FileNotFoundError with `MISSING` when there is no openssl."""
    tool = openssl()
    if tool is None:
        raise FileNotFoundError(MISSING)
    out = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="emulator-tls-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.cnf").write_text(_CA_CONFIG)
    (out / "server.cnf").write_text(_SERVER_CONFIG)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        done = subprocess.run([tool, *args], cwd=out, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")

    run("req", "-x509", "-config", "ca.cnf", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2")
    run("req", "-new", "-config", "server.cnf", *ec, "-keyout", "key.pem", "-out", "server.csr")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", f"0x{secrets.token_hex(8)}", "-days", "2", "-out", "cert.pem",
        "-extfile", "server.cnf", "-extensions", "v3_server")
    return Certs(out, out / "ca.pem", out / "cert.pem", out / "key.pem")


@contextlib.contextmanager
def certificates() -> Iterator[Certs]:
    """make_certs() in a temporary folder that is deleted afterwards."""
    certs = make_certs()
    try:
        yield certs
    finally:
        shutil.rmtree(certs.folder, ignore_errors=True)
