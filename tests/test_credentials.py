"""Security credentials end to end on the `premises` fixture: change of supplier (old supplier
refused after, new one accepted, across a restart), refused / replayed / wrong-role credential
commands that change nothing, future-dated replacement and its cancellation, the device's own
certificates (CS02c -> CS02d -> CS02e), and the certificate parser against hostile input."""
from __future__ import annotations

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbcs.catalogue import AlertCode, MessageCode, RemotePartyRole
from gbcs.payload import decode_payload
from gbcs.utrn import generate_utrn
from gbhub.firmware.trust import CELLS_NS, CertificateError, parse_certificate
from gbhub.firmware.gbcs_device import SECURITY_ALERTS
from gbhub.tools.pki import add_organisation, certify_request
from gbhub.wan.headend import CommandRejected

NEW_SUPPLIER = bytes.fromhex("0247424830030000")
HOUR = 3600


@pytest_asyncio.fixture
async def site(gbhub_identity, tmp_path):
    """`await site(data=None, start=None)`: a premises like the `premises` fixture's, but on a
    private copy of the session's test PKI and keystore (these tests add organisations and renew
    keys, which the session's other premises must not see)."""
    import dataclasses
    import shutil

    from gbcs.keystore import Keystore
    from gbhub.firmware.gbcs_device import TrustAnchors
    from gbhub.tools.premises import Premises
    from gbhub.tools.rig import default_rig, parse_start

    folder = tmp_path / "pki"
    shutil.copytree(gbhub_identity.pki, folder)
    ks = Keystore()
    ks.merge(gbhub_identity.keystore)
    identity = dataclasses.replace(gbhub_identity, keystore=ks, trust=TrustAnchors.from_keystore(ks), pki=folder)
    made = []

    async def make(data=None, start=None):
        rig = default_rig(data)
        rig.clock = "sim"
        if start is not None:
            rig.start = parse_start(start)
        p = Premises(rig, tcp=True, sim=True, identity=identity)
        await p.start()
        made.append(p)
        return p

    yield make
    for p in made:
        if p.started:
            await p.stop()


@pytest_asyncio.fixture
async def premises(site):
    return await site()


def _new_supplier(p):
    """A second supplier in the premises' (private) PKI, known to the head-end, not to the devices."""
    if NEW_SUPPLIER not in p.identity.keystore:
        p.identity.keystore.merge(add_organisation(p.identity.pki, "supplier", NEW_SUPPLIER, name="new_supplier"))


async def _as(p, use_case, originator=None, **params):
    return await p.headend.send_use_case(use_case, recipient=p.esme.eui, params=params, originator=originator)


def _alert_code(alert) -> int | None:
    try:
        return getattr(decode_payload(alert.message), "alert_code", None)
    except Exception:  # noqa: BLE001
        return None


async def _refused(p, reason, use_case, originator=None, **params):
    sec = len(p.esme.security_log())
    with pytest.raises(CommandRejected) as err:
        await _as(p, use_case, originator, **params)
    assert err.value.code == SECURITY_ALERTS[reason]
    assert len(p.esme.security_log()) == sec + 1 and p.esme.security_log()[-1]["reason"] == reason


def _cells(device) -> dict:
    return dict(device.nvm.items(CELLS_NS))


async def test_change_of_supplier(premises):
    p = premises
    old = p.identity.supplier
    _new_supplier(p)
    assert (await _as(p, "ECS17b")).ok
    await _refused(p, "unknown_party", "ECS17b", NEW_SUPPLIER)  # not a trust anchor yet

    reply = await _as(p, "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER)
    assert reply.ok and reply.reply.signature == "valid"
    reps = reply.summary["replacements"]
    assert [r["cell"] for r in reps] == ["SUPPLIER/ds", "SUPPLIER/ka", "SUPPLIER/pp-ka"]
    assert all(r["status"] == "SUCCESS" and r["from"] == old.hex().upper() and r["to"] == NEW_SUPPLIER.hex().upper()
               for r in reps)
    assert p.esme.trust.by_role(RemotePartyRole.SUPPLIER).eui == NEW_SUPPLIER

    # the old supplier: refused (0x8F3D, logged, nothing changes), non-critical and critical alike
    supply = (await _as(p, "ECS45", NEW_SUPPLIER)).summary["supply_state"]
    await _refused(p, "unknown_party", "ECS17b", old)
    await _refused(p, "unknown_party", "ECS43", old)
    assert (await _as(p, "ECS45", NEW_SUPPLIER)).summary["supply_state"] == supply
    # the new one: accepted, responses MACed for its KA key / signed for it
    assert (await _as(p, "ECS17b", NEW_SUPPLIER)).ok
    assert (await _as(p, "ECS43", NEW_SUPPLIER)).ok
    assert (await _as(p, "ECS45", NEW_SUPPLIER)).summary["supply_state"] != "on"
    details = await _as(p, "CS02a", NEW_SUPPLIER, roles="supplier")
    supplier = details.summary["roles"][0]
    assert {c["eui"] for c in supplier["cells"]} == {NEW_SUPPLIER.hex().upper()} and len(supplier["cells"]) == 3
    # top-ups: UTRNs from the new supplier's prepayment key credit the meter, the old one's do not
    ks = p.identity.keystore
    for supplier, counter, ok in ((old, 7, False), (NEW_SUPPLIER, 8, True)):
        utrn = generate_utrn(value=500, utrn_counter=counter, supplier=supplier, device=p.esme.eui,
                             private_key=ks.private_key(supplier, "pp-ka"), public_key=ks.public_key(p.esme.eui, "ka"))
        before = p.esme.credit_pence
        r = await p.headend.send_use_case("CS01a", recipient=p.esme.eui, params={"utrn": str(utrn)},
                                          counter=counter << 32, originator=NEW_SUPPLIER)
        assert r.ok is ok and p.esme.credit_pence == before + (500 if ok else 0)
    # alerts now go to the new supplier
    since = len(p.headend.received_alerts)
    await p.esme.raise_alert(AlertCode.UPDATE_SECURITY_CREDENTIALS)
    alert = await p.headend.wait_alert(lambda a: _alert_code(a) == AlertCode.UPDATE_SECURITY_CREDENTIALS, since=since)
    assert alert.message.recipient == NEW_SUPPLIER and alert.valid


async def test_change_of_supplier_survives_restart(site, tmp_path):
    p = await site(tmp_path / "site")
    old = p.identity.supplier
    _new_supplier(p)
    assert (await _as(p, "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER)).ok
    await p.stop()
    q = await site(tmp_path / "site", start=p.clock.now())
    assert q.esme.trust.by_role(RemotePartyRole.SUPPLIER).eui == NEW_SUPPLIER  # from the ESME's NVM
    await _refused(q, "unknown_party", "ECS17b", old)
    assert (await _as(q, "ECS17b", NEW_SUPPLIER)).ok


async def test_supplier_replaces_its_own_credentials(premises):
    """CS02b (SupplierBySupplier): the supplier's new keys, same EUI; the old keys stop working."""
    p = premises
    old = p.identity.supplier
    before = p.identity.keystore.certificate(old, "ds")
    folder = p.identity.pki
    # new key pairs for the same organisation, issued by the same CA
    fresh = add_organisation(folder, "supplier", old, name="supplier-renewed", force=True)
    reply = await _as(p, "CS02b", ds_certificate=fresh.certificate(old, "ds").public_bytes(_DER),
                      ka_certificate=fresh.certificate(old, "ka").public_bytes(_DER),
                      pp_certificate=fresh.certificate(old, "pp-ka").public_bytes(_DER))
    assert reply.ok and all(r["status"] == "SUCCESS" for r in reply.summary["replacements"])
    assert p.esme.trust.by_role(RemotePartyRole.SUPPLIER).ds_public.public_numbers() != before.public_key().public_numbers()
    p.identity.keystore.merge(fresh)  # the head-end now signs and MACs with the new keys
    assert (await _as(p, "ECS43")).ok and (await _as(p, "ECS17b")).ok


async def test_refused_credential_commands_change_nothing(premises):
    p = premises
    _new_supplier(p)
    cells = _cells(p.esme)
    # wrong role: a supplier may not send the transitional CoS party's mode
    await _refused(p, "role", "CS02bSupplierByTransCoS", p.identity.supplier, new_party=NEW_SUPPLIER)
    # a mode replacing cells of a role it does not cover
    await _refused(p, "role", "CS02b", new_party=p.identity.network_operator, target_role="NETWORK_OPERATOR")
    # authorising seq number not above the role's current one (a replayed authorisation)
    assert (await _as(p, "CS02a", roles="transitional_cos", authorising_role="SUPPLIER")).ok
    await _refused(p, "replay", "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER, seq_number=0)
    # a replayed frame
    definition, msg, frame = p.headend.build_use_case("CS02bSupplierByTransCoS", recipient=p.esme.eui,
                                                      params={"new_party": NEW_SUPPLIER, "execution": "2099-01-01T00:00:00Z"})
    reply = await p.headend.exchange(msg, frame, critical=True)
    assert reply.valid
    since, sec = len(p.headend.received_alerts), len(p.esme.security_log())
    await p.headend.link.send(frame)
    await p.headend.wait_alert(lambda a: _alert_code(a) == SECURITY_ALERTS["replay"], since=since, timeout=5)
    assert len(p.esme.security_log()) == sec + 1
    assert _cells(p.esme) == cells and p.esme.trust.by_role(RemotePartyRole.SUPPLIER).eui == p.identity.supplier
    # a certificate the path does not vouch for: that cell keeps its party (NO_TRUST_ANCHOR)
    foreign = _foreign_certificate(NEW_SUPPLIER)
    reply = await _as(p, "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER, ds_certificate=foreign)
    assert not reply.ok and reply.summary["replacements"][0]["status"] == "NO_TRUST_ANCHOR"
    assert _cells(p.esme) == cells


async def test_future_dated_change_of_supplier_and_cancellation(premises):
    p = premises
    _new_supplier(p)
    t0 = p.clock.now()
    when = _iso(t0 + HOUR)
    reply = await _as(p, "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER, execution=when)
    assert reply.ok and reply.summary["accepted"] and not reply.summary["executed"]
    assert p.esme.trust.by_role(RemotePartyRole.SUPPLIER).eui == p.identity.supplier
    cancel = await _as(p, "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER, execution="never")
    assert cancel.summary["accepted"]
    await p.clock.advance(2 * HOUR)
    assert p.esme.trust.by_role(RemotePartyRole.SUPPLIER).eui == p.identity.supplier  # cancelled

    since = len(p.headend.received_alerts)
    assert (await _as(p, "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER, execution=_iso(p.clock.now() + HOUR))).ok
    await p.clock.advance(2 * HOUR)
    alert = await p.headend.wait_alert(lambda a: a.message.message_code == MessageCode.FDA_CS02b, since=since, timeout=5)
    assert alert.valid and alert.message.signature
    payload = decode_payload(alert.message)
    assert payload.alert_code == AlertCode.FUTURE_DATE_HAN_INTERFACE_COMMAND_SUCCESSFULLY_ACTIONED
    assert p.esme.trust.by_role(RemotePartyRole.SUPPLIER).eui == NEW_SUPPLIER
    assert (await _as(p, "ECS17b", NEW_SUPPLIER)).ok


async def test_other_devices_and_modes(premises):
    """The CHF and GPF serve the same use cases from the same model; the ACB renews its own KA
    cell (MACed command, signed response); the CHF holds a WAN-provider cell, the ESME none."""
    p = premises
    acb = p.identity.acb
    for device in ("chf", "gpf"):
        reply = await p.headend.send_use_case("CS02a", recipient=p.eui_of(device), originator=acb,
                                              params={"roles": "access_control_broker,wan_provider",
                                                      "authorising_role": "ACCESS_CONTROL_BROKER"})
        statuses = [r["status"] for r in reply.summary["roles"]]
        assert reply.reply.valid and statuses == ["SUCCESS", "SUCCESS" if device == "chf" else "TRUST_ANCHOR_NOT_FOUND"]
    ka = p.identity.keystore.certificate(acb, "ka").public_bytes(_DER)
    reply = await _as(p, "CS02bAccessControlBrokerByACB", ka_certificate=ka)
    assert reply.reply.valid and reply.reply.mac == "absent" and reply.reply.signature == "valid"
    assert reply.summary["replacements"][0]["status"] == "SUCCESS"
    assert (await _as(p, "ECS17b")).ok  # the same key: MACs still verify
    # the ESME has no WAN-provider cell to replace
    wp = p.identity.keystore.euis()
    wan_provider = next(e for e in wp if p.identity.keystore.role(e) == RemotePartyRole.WAN_PROVIDER)
    await _refused(p, "unknown_party", "CS02bWanProviderByWanProvider", wan_provider,
                   ds_certificate=p.identity.keystore.certificate(wan_provider, "ds").public_bytes(_DER))


async def test_future_dated_updates_are_bounded(premises):
    from gbhub.firmware.credentials import PENDING_LIMIT

    p = premises
    _new_supplier(p)
    later = _iso(p.clock.now() + 30 * 86400)
    for _ in range(PENDING_LIMIT):
        assert not (await _as(p, "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER, execution=later)).summary["executed"]
    full = await _as(p, "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER, execution=later)
    assert {r["status"] for r in full.summary["replacements"]} == {"INSUFFICIENT_MEMORY"}
    assert p.esme.trust.by_role(RemotePartyRole.SUPPLIER).eui == p.identity.supplier


async def test_future_dated_change_of_supplier_survives_restart(site, tmp_path):
    p = await site(tmp_path / "site")
    _new_supplier(p)
    assert (await _as(p, "CS02bSupplierByTransCoS", new_party=NEW_SUPPLIER, execution=_iso(p.clock.now() + HOUR))).ok
    await p.stop()
    q = await site(tmp_path / "site", start=p.clock.now() + 60)
    assert q.esme.trust.by_role(RemotePartyRole.SUPPLIER).eui == p.identity.supplier
    await q.clock.advance(2 * HOUR)
    assert q.esme.trust.by_role(RemotePartyRole.SUPPLIER).eui == NEW_SUPPLIER
    assert (await _as(q, "ECS17b", NEW_SUPPLIER)).ok


async def test_device_certificate_renewal(premises):
    """CS02c makes a key pair and a request; the PKI certifies it; CS02d installs it; CS02e and
    the device's next signatures show the new key."""
    p = premises
    reply = await _as(p, "CS02c", key_usage="DIGITAL_SIGNATURE")
    assert reply.ok
    cert = certify_request(p.identity.pki, bytes.fromhex(reply.summary["certification_request"]))
    since = len(p.headend.received_alerts)
    installed = (await _as(p, "CS02d", certificate=cert)).summary
    assert installed["ok"] and installed["code"] == "SUCCESS"
    await p.headend.wait_alert(lambda a: _alert_code(a) == AlertCode.DEVICE_S_OWN_DIGITAL_SIGNING_CERTIFICATE_REPLACEMENT_SUCCEEDED,
                               since=since, timeout=5)
    got = await _as(p, "CS02e", key_usage="DIGITAL_SIGNATURE")
    assert bytes.fromhex(got.summary["certificate"]) == cert and got.summary["eui"] == p.esme.eui.hex().upper()
    from cryptography import x509

    p.identity.keystore.add_certificate(p.esme.eui, "ds", x509.load_der_x509_certificate(cert))
    assert (await _as(p, "ECS43")).reply.signature == "valid"  # signed with the new key
    # the same certificate again: no key pair waits for it
    assert (await _as(p, "CS02d", certificate=cert)).summary["code"] == "NO_CORRESPONDING_KEY_PAIR"


# -- the certificate parser takes outside input ---------------------------------------------------

_DER = __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(int(t), dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _foreign_certificate(eui: bytes) -> bytes:
    """An organisation DS certificate from a CA the premises does not know."""
    import tempfile

    from gbhub.tools.pki import init_pki

    ks = init_pki(tempfile.mkdtemp(prefix="gbhub-foreign-"), seed_euis={"supplier": eui})
    return ks.certificate(eui, "ds").public_bytes(_DER)


_SAMPLE = None


def _sample() -> bytes:
    global _SAMPLE
    if _SAMPLE is None:
        _SAMPLE = _foreign_certificate(NEW_SUPPLIER)
    return _SAMPLE


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_parse_certificate_random_bytes(data):
    try:
        parse_certificate(data)
    except CertificateError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_parse_certificate_mutated(data):
    der = bytearray(_sample())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(der) - 1))
        der[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(der)))
    try:
        info = parse_certificate(bytes(der[:cut] if data.draw(st.booleans()) else der))
    except CertificateError:
        return
    assert info.usage in (None, "ds", "ka") and len(info.key_id) > 0


def test_parse_certificate_reads_an_organisation_certificate():
    info = parse_certificate(_sample())
    assert info.usage == "ds" and info.role == RemotePartyRole.SUPPLIER and info.eui == NEW_SUPPLIER


# -- content templates for tests/test_esme.py's fuzzing of every code the ESME serves -------------


def _credential_content(rig, use_case: str) -> bytes:
    from gbcs import usecases
    from gbcs.usecases.credentials import CS02B_MODES

    params = {}
    if use_case in CS02B_MODES or use_case == "CS02d":
        cert = rig.pki.keystore.certificate(rig.pki.supplier, "ds").public_bytes(_DER)
        params = {"certificate": cert} if use_case == "CS02d" else {"ds_certificate": cert, "path_certificate": cert}
    return usecases.build_content(use_case, 1000, **params)


def credential_templates() -> dict:
    """message code -> fn(rig) -> valid content, for every credential use case."""
    from gbhub.firmware.credentials import credential_handlers

    return {h.message_code: (lambda r, n=h.message_code.name: _credential_content(r, n)) for h in credential_handlers()}
