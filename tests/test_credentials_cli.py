"""Change of supplier from the command line, as the README's "Security credentials" section says:
`gbhub pki org` makes the new supplier's keys in the data folder, `gbhub send
CS02bSupplierByTransCoS new_party=EUI` puts them into the ESME, and `--as` picks the originator."""
from __future__ import annotations

import json

import pytest

from test_cli_run import Running, gbhub

NEW = "0247424830030000"
ESME = "02474248400000A0"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    data = tmp_path_factory.mktemp("credentials") / "site"
    run = Running("--data", str(data))
    try:
        yield data
    finally:
        assert run.stop() == 0


def test_change_of_supplier_from_the_command_line(site):
    keys = site / "keys"
    made = gbhub("pki", "org", str(keys), "supplier", NEW, "--name", "new_supplier")
    assert made.returncode == 0, made.stderr
    assert json.loads((keys / "pki.json").read_text())["roles"]["new_supplier"]["eui"] == NEW
    # a CS02b needs certificates: the head-end takes them from the keys folder, the path from ca/
    built = gbhub("build", "CS02bSupplierByTransCoS", f"new_party={NEW}", "--data", str(site))
    assert built.returncode == 0, built.stderr
    decoded = json.loads(gbhub("decode", built.stdout.strip(), "--keys", str(keys)).stdout)
    assert decoded["signature"] == "valid" and decoded["originator"] == "0247424830000004"  # the transitional CoS party
    assert len(decoded["payload"]["replacements"]) == 3 and len(decoded["payload"]["certification_path_certificates"]) == 1

    before = gbhub("send", "ECS17b", "--as", "new_supplier", "--data", str(site))
    assert before.returncode == 1 and "0x8F3D" in before.stderr  # not a trust anchor yet
    cos = gbhub("send", "CS02bSupplierByTransCoS", "--summary", "--data", str(site))  # new_party: the other supplier
    assert cos.returncode == 0, cos.stderr
    assert cos.stdout.startswith("CS02bSupplierByTransCoS ok") and '"to": "' + NEW in cos.stdout
    old = gbhub("send", "ECS17b", "--data", str(site))
    assert old.returncode == 1 and "0x8F3D" in old.stderr and len(old.stderr.strip().splitlines()) == 1
    new = gbhub("send", "ECS17b", "--as", "new_supplier", "--summary", "--data", str(site))
    assert new.returncode == 0 and new.stdout.startswith("ECS17b ok"), new.stderr
    bad = gbhub("send", "ECS17b", "--as", "nobody", "--data", str(site))
    assert bad.returncode == 2 and "--as nobody" in bad.stderr


def test_device_certificate_from_the_command_line(site):
    """After the change of supplier above: the new supplier renews the ESME's DS certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    request = gbhub("send", "CS02c", "key_usage=DIGITAL_SIGNATURE", "--as", "new_supplier", "--data", str(site))
    assert request.returncode == 0, request.stderr
    csr = json.loads(request.stdout)["summary"]["certification_request"]
    cert = gbhub("pki", "certify", str(site / "keys"), csr)
    assert cert.returncode == 0, cert.stderr
    installed = gbhub("send", "CS02d", f"certificate={cert.stdout.strip()}", "--as", "new_supplier", "--summary",
                      "--data", str(site))
    assert installed.returncode == 0 and installed.stdout.startswith("CS02d ok"), installed.stdout + installed.stderr
    # the head-end learns the new certificate from the keys folder
    der = bytes.fromhex(cert.stdout.strip())
    (site / "keys" / f"{ESME.lower()}-ds.pem").write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    signed = gbhub("send", "ECS43", "--as", "new_supplier", "--data", str(site))
    assert signed.returncode == 0 and json.loads(signed.stdout)["response"]["signature"] == "valid", signed.stdout + signed.stderr
    assert gbhub("pki", "certify", str(site / "keys"), "00").returncode == 1


def test_certificate_parameters_from_files(site, tmp_path):
    keys = site / "keys"
    pem = keys / "0247424830010000-ds.pem"
    built = gbhub("build", "CS02b", f"ds_certificate=@{pem}", "--data", str(site), "--as", "supplier")
    assert built.returncode == 0, built.stderr
    decoded = json.loads(gbhub("decode", built.stdout.strip(), "--keys", str(keys)).stdout)
    assert len(decoded["payload"]["replacements"]) == 1
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    for arg in (f"ds_certificate=@{tmp_path / 'junk.pem'}", f"ds_certificate=@{tmp_path / 'missing.pem'}"):
        out = gbhub("build", "CS02b", arg, "--data", str(site))
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "ds_certificate" in out.stderr


def test_cs02b_help_and_alias():
    out = gbhub("send", "CS02b", "--help")
    assert out.returncode == 0 and "new_party" in out.stdout and "CS02bSupplierBySupplier" in out.stdout


def test_change_of_supplier_survives_sigkill(tmp_path):
    """Acknowledged means stored: SIGKILL right after the CS02b response, then restart."""
    data = tmp_path / "site"
    run = Running("--data", str(data))
    try:
        assert gbhub("pki", "org", str(data / "keys"), "supplier", NEW, "--name", "new_supplier").returncode == 0
        cos = gbhub("send", "CS02bSupplierByTransCoS", "--summary", "--data", str(data))
        assert cos.returncode == 0, cos.stderr
    finally:
        run.kill()  # SIGKILL: no clean shutdown
    run = Running("--data", str(data))
    try:
        old = gbhub("send", "ECS17b", "--data", str(data))
        assert old.returncode == 1 and "0x8F3D" in old.stderr
        new = gbhub("send", "ECS17b", "--as", "new_supplier", "--summary", "--data", str(data))
        assert new.returncode == 0, new.stderr
    finally:
        assert run.stop() == 0
