"""gbcs.catalogue: the spec tables, their internal consistency, and agreement with the RTDS vectors."""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs import catalogue as cat
from gbcs.catalogue import RemotePartyRole as R
from gbcs.frame import decode_message

# -- the tables themselves -------------------------------------------------------------------------


def test_table_sizes():
    assert len(cat.MESSAGE_CODES) >= 240
    assert len(cat.ALERT_CODES) >= 184
    assert len(cat.SERVICE_REQUESTS) == 129
    # the 16 codes named only by RTDS file names (FRAMING §9)
    rtds_only = {0x0004, 0x011A, 0x011B, 0x011C, 0x011D, 0x011E, 0x011F, 0x0120, 0x0121, 0x0122, 0x0123,
                 0x0124, 0x0125, 0x0126, 0x012A, 0x012B}
    assert rtds_only <= set(cat.MESSAGE_CODES)
    assert all(0x8000 <= code <= 0x8FFF for code in cat.ALERT_CODES)


def test_every_row_uses_the_vocabulary():
    for code, uc in cat.MESSAGE_CODES.items():
        assert uc.message_code == code
        assert uc.use_case and uc.name
        assert uc.message_type is None or uc.message_type in cat.MESSAGE_TYPES, uc
        assert uc.device is None or uc.device in cat.DEVICES, uc
        assert uc.payload is None or uc.payload in cat.PAYLOADS, uc
        assert uc.duis_roles <= set(cat.DUIS_ROLES), uc
        assert isinstance(uc.srvs, tuple) and all(s in cat.SERVICE_REQUESTS for s in uc.srvs), uc
        assert uc.critical in (True, False, None)
        if uc.is_alert:
            assert not uc.srvs and not uc.duis_roles, uc
    for srv, req in cat.SERVICE_REQUESTS.items():
        assert req.srv == srv and req.roles <= set(cat.DUIS_ROLES)
        assert req.future_dated in (None, "Device", "DSP", "DSP & Device")


def test_use_cases_are_frozen():
    uc = cat.by_message_code(0x0027)
    with pytest.raises(dataclasses.FrozenInstanceError):
        uc.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "use_case, code, critical, roles",
    [
        # FACTS §2 "key mappings" table
        ("ECS01a", 0x0019, True, {"IS", "GS"}),
        ("CS01a", 0x0007, False, {"IS", "GS"}),
        ("CS01b", 0x0097, False, {"IS", "GS"}),
        ("ECS17b", 0x0027, False, {"IS", "GS", "ED", "GT"}),
        ("GCS13a", 0x0074, False, {"IS", "GS", "ED", "GT"}),
        ("ECS22b", 0x0037, False, {"IS", "GS", "ED", "GT", "OU"}),
        ("ECS70", 0x0062, True, {"IS", "GS"}),
        ("ECS42", 0x004F, True, {"IS"}),
        ("ECS43", 0x0050, True, {"IS", "GS"}),
        ("ECS45", 0x0052, False, {"IS", "ES", "GS", "RSA", "ED", "GT"}),
        ("CS06", 0x0012, True, {"IS", "GS"}),
        ("CCS01", 0x0001, False, {"IS", "GS", "OU"}),
        ("CCS06", 0x010F, False, {"IS", "GS", "OU"}),
        ("CS04AC", 0x000F, None, {"IS", "GS", "OU"}),  # 8.8.1 critical, 8.8.2 not
        ("ECS52", 0x0059, False, set(cat.DUIS_ROLES)),
    ],
)
def test_known_rows(use_case, code, critical, roles):
    uc = cat.by_use_case(use_case)
    assert uc.message_code == code
    assert cat.by_message_code(code) is uc
    assert uc.critical is critical
    assert uc.duis_roles == roles


def test_known_details():
    assert cat.by_use_case("ECS70").srvs == ("6.11", "8.1.1")
    assert cat.by_use_case("ECS17b").title == "ECS17b Read ESME Energy Registers (Import Energy)"
    assert cat.by_use_case("ECS17b").payload == "dlms"
    assert cat.by_use_case("GCS13a").payload == "gbz"
    assert cat.by_use_case("CS03A1").payload == "asn1"
    assert cat.by_use_case("CCS01").device == "chf"
    assert cat.by_use_case("GCS59").device == "gpf"
    assert cat.by_use_case("CS14").message_type == cat.SME_A_NC
    assert cat.by_use_case("PCS01").message_type == cat.SME_C_PPMID_GSME
    assert cat.by_message_code(0x1000).use_case == "GCA"
    assert cat.by_message_code(0x1001).use_case == "GNCA"
    assert cat.by_message_code(0x0000) is None
    assert cat.SERVICE_REQUESTS["11.3"].future_dated == "Device"
    assert cat.by_srv("7.1").name == "Enable Supply" and cat.by_srv("99.9") is None
    assert cat.by_use_case("ECS17b").to_json()["message_code"] == "0027"


def test_by_use_case_is_case_insensitive_and_knows_rtds_names():
    assert cat.by_use_case("ecs17B").message_code == 0x0027
    assert cat.by_use_case(" GCS13a ").message_code == 0x0074
    assert cat.by_use_case("CS02bSupplierBySupplier").message_code == 0x0102
    assert cat.by_use_case("cs02bwpbywp").message_code == 0x0105
    assert cat.by_use_case("ECS70Commission").message_code == 0x0062
    assert cat.by_use_case("FDRA-ZigBee").message_code == 0x00CF


def test_by_use_case_miss_lists_close_matches():
    with pytest.raises(KeyError) as err:
        cat.by_use_case("ECS17x")
    assert "ECS17b" in str(err.value)
    with pytest.raises(KeyError):
        cat.by_use_case("")
    with pytest.raises(KeyError) as err:
        cat.by_use_case("CS02b")  # ten modes share the id
    assert "CS02bSupplierBySupplier" in str(err.value)
    assert [u.message_code for u in cat.use_cases("CS02b")] == list(range(0x0100, 0x010A))
    assert [u.message_code for u in cat.use_cases("cs02g")] == [0x0125, 0x0126]
    assert cat.use_cases("ECS17b") == (cat.MESSAGE_CODES[0x0027],)
    assert cat.use_cases("nope") == ()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_by_use_case_only_raises_key_error(name):
    try:
        assert isinstance(cat.by_use_case(name), cat.UseCase)
    except KeyError:
        pass


def test_criticality_and_alerts():
    assert cat.is_critical_command(0x004F)  # ECS42
    assert not cat.is_critical_command(0x0027)  # ECS17b
    assert cat.is_critical_command(0x0102)  # CS02b supplierBySupplier: KRP-signed
    assert not cat.is_critical_command(0x0104)  # CS02b ACB-by-ACB: MAC only
    assert not cat.is_critical_command(0x0008)  # CS02a variant
    assert not cat.is_critical_command(0x1000)  # alerts are not commands
    assert not cat.is_critical_command(0xFFFF)
    for code in (0x0018, 0x0061, 0x00B2, 0x00CC, 0x00D5, 0x00F0, 0x1000, 0x1001, 0x0110):
        assert cat.is_alert(code), hex(code)
    for code in (0x0027, 0x0001, 0x009B, 0x0116, 0xFFFF):
        assert not cat.is_alert(code), hex(code)


def test_alert_codes():
    assert cat.alert_name(0x8F51) == "Duplicate UTRN entered"
    assert cat.alert_name(0x8F63) == "UTRN not Authentic"
    assert cat.alert_name(0x8F64) == "UTRN not for this Device"
    assert cat.alert_name(0x8F12) == "CHF Device Log Changed"
    assert cat.alert_name(0x1234) is None
    assert all("  " not in name for name in cat.ALERT_CODES.values())


def test_enums_and_euis():
    assert [int(r) for r in R] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 127]
    assert R.ACCESS_CONTROL_BROKER == 4 and R.OTHER == 127
    assert [int(d) for d in cat.DeviceType] == list(range(7))
    assert cat.DeviceType.PPMID == 5 and cat.DEVICE_TYPE_BY_NAME["gpf"] is cat.DeviceType.GPF
    assert set(cat.DUIS_ROLE_TO_REMOTE_PARTY) == set(cat.DUIS_ROLES)
    assert cat.RTDS_ACB == bytes.fromhex("90B3D51F30000002")
    assert cat.RTDS_SUPPLIER == bytes.fromhex("90B3D51F30010000")
    assert cat.RTDS_ESME == bytes.fromhex("00DB1234567890A0")
    for eui in list(cat.RTDS_REMOTE_PARTIES) + list(cat.RTDS_DEVICES):
        assert isinstance(eui, bytes) and len(eui) == 8


def test_allowed_remote_party_roles():
    allowed = cat.allowed_remote_party_roles
    assert allowed(0x0027) == {R.SUPPLIER, R.NETWORK_OPERATOR}  # ECS17b: IS GS ED GT
    assert allowed(0x004F) == {R.SUPPLIER}  # ECS42: IS only
    assert allowed(0x0058) == {R.ACCESS_CONTROL_BROKER}  # ECS50: OU via the ACB
    assert allowed(0x004D) == {R.ACCESS_CONTROL_BROKER}  # ECS39b: ES via the ACB
    for uc in ("CCS01", "CCS02", "CCS03", "CCS06", "CCS07"):
        assert allowed(cat.by_use_case(uc).message_code) == {R.ACCESS_CONTROL_BROKER}, uc
    for uc in ("CS03A2", "CS03C", "CS04AC"):  # ACB-signed PPMID variants
        assert {R.SUPPLIER, R.ACCESS_CONTROL_BROKER} <= allowed(cat.by_use_case(uc).message_code), uc
    assert allowed(0x0104) == {R.ACCESS_CONTROL_BROKER}
    assert allowed(0x0108) == {R.RECOVERY}
    assert allowed(0x00ED) == {R.NETWORK_OPERATOR}  # ECS25b3
    assert allowed(0x00EB) == {R.SUPPLIER}  # ECS25a2
    assert allowed(0x0018) == frozenset()  # alert
    assert allowed(0x009B) == frozenset()  # HAN-only PCS01 (PPMID, not a remote party)
    assert allowed(0xFFFF) == frozenset()
    for code, uc in cat.MESSAGE_CODES.items():
        if uc.is_command and uc.duis_roles:
            assert allowed(code), uc.use_case


# -- against the RTDS vectors ----------------------------------------------------------------------

_RTDS_DEVICE = {"A0": "esme", "A1": "gsme", "A2": "chf", "A3": "gpf", "A4": "ppmid", "A5": "hcalcs"}


def _payload_kind(kind: str) -> str | None:
    if kind.startswith("DLMS"):
        return "dlms"
    if kind == "Profile ID" or kind.startswith("GBZ"):
        return "gbz"
    if kind == "Payload":  # the reference parser left it undecoded
        return None
    return "asn1"


def test_rtds_message_codes_names_and_payloads(rtds):
    for row in rtds:
        code = int(row["messageCode"], 16)
        uc = cat.by_message_code(code)
        assert uc is not None, row["file"]
        if row["messageName"]:
            expected = " ".join(row["messageName"].split()).replace("Futured", "Future")
            assert expected in (uc.title, uc.name), row["file"]
        kind = _payload_kind(row["payloadKind"])
        if kind is not None:
            assert uc.payload == kind, row["file"]
        else:
            assert decode_message(row["bytes"]).content[:1] == b"\x30" and uc.payload == "asn1", row["file"]


def test_rtds_folders_resolve(rtds):
    folders = defaultdict(set)
    for row in rtds:
        if row["cra"] == "Command":
            folders[row["file"].split("/")[0]].add(int(row["messageCode"], 16))
    assert folders
    for folder, codes in folders.items():
        srv, name = folder.split("_", 1)
        uc = cat.by_use_case(name)
        assert codes == {uc.message_code}, folder
        if srv != "NA":
            assert srv in uc.srvs, folder


def test_rtds_commands_criticality_and_sender(rtds, rtds_keystore):
    seen = 0
    for row in rtds:
        if row["cra"] != "Command" or "PRECOMMAND" in row["file"]:
            continue
        code = int(row["messageCode"], 16)
        uc = cat.by_message_code(code)
        assert uc.is_command
        signed = row["signature"] == "valid"
        if uc.message_type != cat.VARIANT:
            assert signed == cat.is_critical_command(code), row["file"]
        originator = bytes.fromhex(row["originator"])
        if uc.message_type == cat.SME_C_PPMID_GSME:
            assert rtds_keystore.is_device(originator)  # HAN-only: a PPMID, not a remote party
        else:
            role = rtds_keystore.role(originator)
            assert role in cat.allowed_remote_party_roles(code), (row["file"], role)
        device = _RTDS_DEVICE.get(row["recipient"][-2:])
        if uc.device is not None and device is not None and bytes.fromhex(row["recipient"]) in cat.RTDS_DEVICES:
            assert device == uc.device or (uc.device, device) == ("gsme", "gpf"), row["file"]
        seen += 1
    assert seen > 200


def test_rtds_alerts(rtds):
    seen = 0
    for row in rtds:
        if row["cra"] != "Alert":
            continue
        code = int(row["messageCode"], 16)
        uc = cat.by_message_code(code)
        assert cat.is_alert(code), row["file"]
        if uc.message_type is not None:
            assert (row["signature"] == "valid") == (uc.message_type == cat.SME_A_C), row["file"]
        seen += 1
    assert seen > 20


def test_rtds_remote_party_roles_match_certificates(rtds_keystore):
    for eui, role in cat.RTDS_REMOTE_PARTIES.items():
        found = rtds_keystore.role(eui)
        if found is not None:  # the "other user" has no certificate in the RTDS keystore
            assert found == role, eui.hex()
    for eui in cat.RTDS_DEVICES:
        assert rtds_keystore.is_device(eui), eui.hex()


def test_json_forms():
    data = json.loads(json.dumps(cat.by_use_case("ECS42").to_json()))
    assert data["duis_roles"] == ["IS"] and data["critical"] is True
    assert json.loads(json.dumps(cat.SERVICE_REQUESTS["4.1.1"].to_json()))["roles"] == ["ED", "GS", "GT", "IS"]
