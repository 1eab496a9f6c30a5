"""A throwaway CA and a broker certificate for the SASL_SSL broker, made with the JDK's ``keytool``.

keytool ships with the Java runtime the broker already needs, so TLS costs no extra host tool
(no openssl) and the broker gets the PKCS12 stores it reads natively. The Python client gets
the CA as PEM (``keytool -exportcert -rfc``), which is all ``ssl.create_default_context``
needs. The broker certificate names ``IP:127.0.0.1`` and ``DNS:localhost`` so hostname
verification stays ON in clients: it is what a production client does, so the test proves it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shared.broker.errors import BrokerToolError

CA_ALIAS = "aidtrail-local-ca"
BROKER_ALIAS = "broker"
VALIDITY_DAYS = 3650
_KEYTOOL_TIMEOUT_S = 60.0
# keytool is a short-lived JVM run 8 times in a row: C1 only and the serial GC halve its start-up.
_FAST_JVM = ("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC")


@dataclass(frozen=True)
class TlsFiles:
    """What the broker (PKCS12 key- and truststore) and the Python client (CA PEM) read."""

    directory: Path

    @property
    def ca_store(self) -> Path:
        """The CA's private key: only needed to sign, kept so a re-sign does not need a new CA."""
        return self.directory / "ca.p12"

    @property
    def ca_pem(self) -> Path:
        """Give this to clients as AIDTRAIL_KAFKA_SSL_CAFILE."""
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.keystore.p12"

    @property
    def truststore(self) -> Path:
        """Trusts the CA; the broker's own inter-broker client uses it."""
        return self.directory / "broker.truststore.p12"

    @property
    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca_store, self.ca_pem, self.keystore, self.truststore))


def find_keytool(java: str) -> str:
    """keytool next to the java that runs the broker (same JDK), else on PATH."""
    sibling = Path(java).resolve().parent / "keytool"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    found = shutil.which("keytool")
    if found is None:
        raise BrokerToolError(
            "`keytool` (part of every Java runtime) was not found next to "
            f"{java} or on PATH; the SASL_SSL broker needs it to make its certificates"
        )
    return found


def ensure_tls(keytool: str, files: TlsFiles, password: str, *, force: bool = False) -> bool:
    """Create the CA, the broker keystore, the truststore and the CA PEM unless all exist.

    Returns True when new files were made. Everything is regenerated together: a keystore
    signed by a CA the clients no longer have would fail in a way that is hard to read.
    """
    if files.complete and not force:
        return False
    shutil.rmtree(files.directory, ignore_errors=True)
    files.directory.mkdir(parents=True, mode=0o700)
    csr = files.directory / "broker.csr"
    signed = files.directory / "broker.crt"
    store = ("-storetype", "PKCS12", "-storepass", password)
    # 1. The CA: self-signed, basicConstraints CA:true marked critical (strict X.509 checkers insist).
    _keytool(
        keytool,
        "-genkeypair",
        "-alias",
        CA_ALIAS,
        "-keyalg",
        "RSA",
        "-keysize",
        "2048",
        "-dname",
        "CN=aidtrail local test CA",
        "-ext",
        "bc:c=ca:true",
        "-ext",
        "ku:c=keyCertSign,cRLSign",
        "-validity",
        str(VALIDITY_DAYS),
        "-keystore",
        str(files.ca_store),
        *store,
    )
    _keytool(
        keytool,
        "-exportcert",
        "-rfc",
        "-alias",
        CA_ALIAS,
        "-file",
        str(files.ca_pem),
        "-keystore",
        str(files.ca_store),
        *store,
    )
    # 2. The broker key, a CSR, and the CA's signature with the loopback names as SANs.
    _keytool(
        keytool,
        "-genkeypair",
        "-alias",
        BROKER_ALIAS,
        "-keyalg",
        "RSA",
        "-keysize",
        "2048",
        "-dname",
        "CN=localhost",
        "-validity",
        str(VALIDITY_DAYS),
        "-keystore",
        str(files.keystore),
        *store,
    )
    _keytool(keytool, "-certreq", "-alias", BROKER_ALIAS, "-file", str(csr), "-keystore", str(files.keystore), *store)
    _keytool(
        keytool,
        "-gencert",
        "-rfc",
        "-alias",
        CA_ALIAS,
        "-infile",
        str(csr),
        "-outfile",
        str(signed),
        "-ext",
        "san=ip:127.0.0.1,dns:localhost",
        "-ext",
        "ku:c=digitalSignature,keyEncipherment",
        "-ext",
        "eku=serverAuth,clientAuth",
        "-validity",
        str(VALIDITY_DAYS),
        "-keystore",
        str(files.ca_store),
        *store,
    )
    # 3. keytool builds the chain of the signed reply only from certificates it trusts: CA first.
    for target in (files.keystore, files.truststore):
        _keytool(
            keytool,
            "-importcert",
            "-noprompt",
            "-alias",
            CA_ALIAS,
            "-file",
            str(files.ca_pem),
            "-keystore",
            str(target),
            *store,
        )
    _keytool(
        keytool, "-importcert", "-alias", BROKER_ALIAS, "-file", str(signed), "-keystore", str(files.keystore), *store
    )
    csr.unlink()
    return True


def _keytool(keytool: str, *args: str) -> None:
    command = [keytool, *_FAST_JVM, *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_KEYTOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerToolError(f"`keytool {args[0]}` did not finish in {_KEYTOOL_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        shown = " ".join(
            "***" if previous == "-storepass" else a for previous, a in zip(("", *args), args, strict=False)
        )
        output = (done.stdout + done.stderr).strip()
        raise BrokerToolError(f"keytool failed (exit {done.returncode}):\n$ keytool {shown}\n{output}")
