"""GBZ payloads and the ZCL codec: every RTDS GBZ payload decodes (and decrypts) and re-encodes
byte-exactly; property tests for random/mutated input and for build -> decode round trips."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import rtds_rows, vectors_dir
from gbcs import security, zcl
from gbcs.codec import DecodeError, EncodeError, Node, jsonable
from gbcs.frame import CRA, decode_message
from gbcs.gbz import (
    FIRMWARE_DISTRIBUTION_RECEIPT_ALERT_GBZ,
    FUTURE_DATED_ALERT_GBZ,
    GCS53_ALERT,
    METER_INTEGRITY_ALERT_GBZ,
    FirmwareDistributionReceipt,
    FutureDatedAlertData,
    GbzAlert,
    GbzComponent,
    GbzPayload,
    MeterIntegrityIssue,
    decode_gbz,
    decryptor,
    encryptor,
    is_gbz,
)
from gbcs.zcl import (
    ATTRIBUTES,
    COMMANDS,
    OPTIONAL,
    REST,
    AttributeValue,
    ClusterCommand,
    Cluster,
    ConfigureReporting,
    ConfigureReportingResponse,
    DefaultResponse,
    Direction,
    DiscoverAttributes,
    DiscoverAttributesResponse,
    AttributeInfo,
    FrameType,
    RawPayload,
    ReadAttributeRecord,
    ReadAttributes,
    ReadAttributesResponse,
    ReportAttributes,
    ReportingConfiguration,
    ReportingStatus,
    Rep,
    Status,
    Switch,
    TimeOfDay,
    WriteAttributes,
    WriteAttributesResponse,
    AttributeStatus,
    ZclArray,
    ZclDate,
    ZclFrame,
    ZclStruct,
    ZclType,
    attribute_type,
    decode_attribute_value,
    decode_zcl,
    encode_attribute_value,
    read_attributes_response,
)


def _gbz_rows() -> list[dict]:
    rows = []
    for row in rtds_rows():
        msg = decode_message(row["bytes"])
        if is_gbz(msg.content):
            rows.append({**row, "message": msg})
    return rows


ROWS = _gbz_rows()


def _id(row):
    return row["file"].split("/")[-1]


def _decrypt_for(msg, keystore):
    """Encryption key between the device (originator) KA and the recipient or supplementary
    remote party KA, from whichever side has a private key."""
    other = msg.supplementary_remote_party_id or msg.recipient
    pairs = ((keystore.private_key(other, "ka"), keystore.public_key(msg.originator, "ka")),
             (keystore.private_key(msg.originator, "ka"), keystore.public_key(other, "ka")))
    for priv, pub in pairs:
        if priv is not None and pub is not None:
            secret = security.SecretCache().secret(priv, pub)
            return decryptor(security.encryption_key(secret, msg), msg.originator), security.encryption_key(secret, msg)
    return None, None


def _walk(node: Node):
    yield node
    for child in node.children:
        yield from _walk(child)


# --------------------------------------------------------------------------------------------
# RTDS vectors
# --------------------------------------------------------------------------------------------


def test_rtds_gbz_present():
    vectors_dir()
    assert len(ROWS) >= 161


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_rtds_gbz_decodes_and_reencodes(row, rtds_keystore):
    msg = row["message"]
    content = msg.content
    plain = decode_gbz(content, cra=msg.cra, message_code=msg.message_code)
    assert plain.encode() == content
    decrypt, _ = _decrypt_for(msg, rtds_keystore)
    full = decode_gbz(content, cra=msg.cra, message_code=msg.message_code, decrypt=decrypt, strict=True)
    assert full.encode() == content
    if row["encryptedContent"].startswith("decrypted"):
        assert plain.encryption_status == "not_decrypted"
        assert full.encryption_status == "decrypted"
    else:
        assert full.encryption_status == "none"
    # Every vector fits a known layout: nothing is left raw, nothing trails a layout.
    for comp in full.components:
        assert not isinstance(comp.payload, RawPayload), (comp.cluster_id, comp.header)
        if isinstance(comp.payload, ClusterCommand):
            assert comp.payload.extra == b""
            assert comp.payload.name[0].isupper()
        if isinstance(comp.payload, ReadAttributesResponse):  # the attribute table agrees with the wire
            for rec in comp.payload.records:
                if rec.type_id is not None:
                    assert attribute_type(comp.cluster_id, rec.attribute_id) == rec.type_id, hex(rec.attribute_id)
    json.dumps(jsonable(full))
    nodes = list(_walk(full.tree()))
    assert all(isinstance(n.raw, bytes) for n in nodes)
    if isinstance(full, GbzPayload):
        assert [c.last for c in full.components] == [i == len(full.components) - 1 for i in range(len(full.components))]


@pytest.mark.parametrize("row", [r for r in ROWS if r["encryptedContent"].startswith("decrypted")], ids=_id)
def test_rtds_encrypted_components_rebuild_exactly(row, rtds_keystore):
    """GCM with the GBCS IV is deterministic, so re-encrypting the plaintext reproduces the block."""
    msg = row["message"]
    decrypt, key = _decrypt_for(msg, rtds_keystore)
    decoded = decode_gbz(msg.content, cra=msg.cra, message_code=msg.message_code, decrypt=decrypt)
    encrypt = encryptor(key, msg.originator)
    for comp in decoded.components:
        if not comp.encrypted:
            continue
        rebuilt = GbzComponent.build_encrypted(
            comp.cluster_id,
            comp.payload,
            encrypt,
            sequence=comp.header.sequence,
            direction=comp.header.direction,
            disable_default_response=comp.header.disable_default_response,
            from_date_time=comp.from_date_time,
            last=comp.last,
            additional_header_control=comp.additional_header_control,
            additional_header_frame_counter=comp.additional_header_frame_counter,
        )
        assert rebuilt.encode() == comp.encode()


def _row(fragment: str) -> dict:
    vectors_dir()
    for row in ROWS:
        if fragment in row["file"]:
            return row
    pytest.skip(f"no vector {fragment}")


def test_gcs13a_read_and_encrypted_response(rtds_keystore):
    cmd = _row("GCS13a_4.1.1_SUCCESS_RELIABLE_GSME_COMMAND")["message"]
    gbz = decode_gbz(cmd.content, cra=cmd.cra, message_code=cmd.message_code)
    (comp,) = gbz.components
    assert comp.cluster_id == Cluster.METERING and comp.last and not comp.encrypted
    assert comp.payload == ReadAttributes((0x0302, 0x0301, 0x0300, 0x0000))
    resp = _row("GCS13a_4.1.1_SUCCESS_RELIABLE_GSME_RESPONSE")["message"]
    decrypt, _ = _decrypt_for(resp, rtds_keystore)
    gbz = decode_gbz(resp.content, cra=resp.cra, message_code=resp.message_code, decrypt=decrypt)
    (comp,) = gbz.components
    assert comp.encrypted and comp.decrypted
    assert comp.header.frame_control == 0x18 and comp.header.command_id == 0x01
    records = comp.payload.records
    assert [(r.attribute_id, r.type_id, r.value) for r in records] == [
        (0x0302, ZclType.UINT24, 1000),
        (0x0301, ZclType.UINT24, 1),
        (0x0300, ZclType.ENUM8, 1),
        (0x0000, ZclType.UINT48, 12345),
    ]
    assert comp.payload.get(0x0000) == 12345
    # A wrong key leaves the component undecrypted (SecurityError is swallowed) and exact.
    wrong = decryptor(b"\x00" * 16, resp.originator)
    gbz = decode_gbz(resp.content, cra=resp.cra, message_code=resp.message_code, decrypt=wrong)
    assert gbz.encryption_status == "not_decrypted" and gbz.encode() == resp.content


def test_future_dated_alert():
    msg = _row("GCS01a_1.1.1_8F66_FUTURE_DATED_BLOCK_SUCCESS_ALERT_PUBLISH_BLOCK_THRESHOLDS")["message"]
    alert = decode_gbz(msg.content, cra=msg.cra, message_code=msg.message_code)
    assert isinstance(alert, GbzAlert)
    assert alert.alert_code == 0x8F66 and alert.component_count == 1
    assert alert.timestamp == 0x38818890
    assert alert.body == FutureDatedAlertData(0x006B, 1005, Cluster.PRICE, 0x09, 0x06)
    assert alert.body.command_name == "PublishBlockThresholds"
    # Without the message code the body is kept as raw use-case-specific bytes.
    generic = decode_gbz(msg.content, cra=CRA.ALERT)
    assert generic.body == msg.content[9:] and generic.encode() == msg.content


def test_firmware_distribution_receipt_alert():
    msg = _row("FDRA-ZigBee")["message"]
    alert = decode_gbz(msg.content, cra=msg.cra, message_code=msg.message_code)
    assert alert.alert_code == 0x8F72
    assert alert.body == FirmwareDistributionReceipt(b"\xa1" * 32)


def test_gcs53_alert_publish_snapshot(rtds_keystore):
    msg = _row("GCS53_NA_8F0A_ALERT")["message"]
    decrypt, _ = _decrypt_for(msg, rtds_keystore)
    alert = decode_gbz(msg.content, cra=msg.cra, message_code=msg.message_code, decrypt=decrypt)
    assert alert.alert_code == 0x8F0A and alert.timestamp == 0x1C374A80
    (comp,) = alert.components
    snap = comp.payload
    assert snap.name == "PublishSnapshot" and snap["snapshot_payload_type"] == 6
    assert len(snap["tier_summations"]) == snap["number_of_tiers_in_use"]


def test_cluster_command_fields_from_vectors():
    def first(fragment, name):
        msg = _row(fragment)["message"]
        gbz = decode_gbz(msg.content, cra=msg.cra, message_code=msg.message_code)
        return next(c.payload for c in gbz.components if isinstance(c.payload, ClusterCommand) and c.payload.name == name)

    thresholds = first("GCS01a_1.1.1_FUTURE_DATED_BLOCK_SUCCESS_COMMAND", "PublishBlockThresholds")
    (tier,) = thresholds["tiers"]
    assert dict(tier)["tier_number_of_block_thresholds"] == 3
    assert [dict(g)["threshold"] for g in dict(tier)["block_thresholds"]] == [1000000, 2000000, 3000000]
    tariff = first("GCS01a_1.1.1_FUTURE_DATED_BLOCK_SUCCESS_COMMAND", "PublishTariffInformation")
    assert tariff["currency"] == 826 and tariff["block_threshold_divisor"] == 1000
    msg = first("GCS07_3.1_SUCCESS_COMMAND", "DisplayMessage")
    assert msg["message"] == "Reset" and msg["duration_in_minutes"] == 0xFFFF
    cos = first("GCS44_3.4_SUCCESS_COMMAND", "PublishChangeOfSupplier")
    assert cos["proposed_provider_name"] == b"E-ON"
    top_up = first("CS01b_2.2_SUCCESS_COMMAND", "ConsumerTopUp")
    assert len(top_up["top_up_code"]) == 20 and top_up["top_up_code"].isdigit()
    debt = first("GCS04_2.3_SUCCESS_COMMAND", "ChangeDebt")
    assert debt["debt_amount"] == 1000000 and debt["debt_recovery_frequency"] == 1
    events = first("CS10a_6.13_SUCCESS_RESPONSE", "PublishEventLog")
    assert events["total_number_of_events"] == len(events["events"])
    dd = _row("GCS40a_1.5_SUCCESS_RESPONSE")["message"]
    (comp,) = decode_gbz(dd.content, cra=dd.cra).components
    assert comp.payload == DefaultResponse(0x05, Status.SUCCESS)


# --------------------------------------------------------------------------------------------
# ZCL codec units
# --------------------------------------------------------------------------------------------


def test_attribute_table_and_read_attributes_service():
    assert attribute_type(Cluster.METERING, 0x0000) == ZclType.UINT48
    assert attribute_type(Cluster.METERING, 0x0302) == ZclType.UINT24
    assert attribute_type(Cluster.METERING, 0x0400) == ZclType.INT24
    assert attribute_type(Cluster.PREPAYMENT, 0x0001) == ZclType.INT32
    assert attribute_type(Cluster.TIME, 0x0000) == ZclType.UTC_TIME
    assert attribute_type(Cluster.METERING, 0x0106) == ZclType.UINT48  # CurrentTier4SummationDelivered
    assert attribute_type(Cluster.METERING, 0xFFFE) is None
    assert zcl.attribute_id(Cluster.BASIC, "ManufacturerName") == 0x0004
    request = decode_zcl(ZclFrame.build(ReadAttributes((0x0000, 0x0300, 0x1234)), sequence=7).encode(), Cluster.METERING)
    response = read_attributes_response(Cluster.METERING, request.payload.attribute_ids, {0x0000: 12345, 0x0300: 0, 0x1234: 5})
    frame = ZclFrame.build(response, sequence=request.header.sequence, disable_default_response=True)
    assert frame.header.frame_control == 0x18
    raw = frame.encode()
    assert raw == bytes.fromhex("18 07 01 0000 00 25 393000000000 0003 00 30 00 3412 86".replace(" ", ""))
    assert decode_zcl(raw, Cluster.METERING) == frame
    explicit = read_attributes_response(Cluster.BASIC, [0x4000], {0x4000: (ZclType.CHAR_STRING, "1.0")})
    assert explicit.records[0] == ReadAttributeRecord(0x4000, Status.SUCCESS, ZclType.CHAR_STRING, "1.0")


def test_header_manufacturer_specific_and_reserved_bits():
    raw = bytes.fromhex("E5 3412 09 00 AABB".replace(" ", ""))
    frame = decode_zcl(raw, Cluster.METERING)
    assert frame.header.manufacturer_code == 0x1234 and frame.header.reserved == 7
    assert frame.header.frame_type == FrameType.CLUSTER and frame.header.sequence == 9
    assert isinstance(frame.payload, RawPayload) and frame.encode() == raw
    with pytest.raises(DecodeError):
        decode_zcl(b"\x02\x00\x00", 0)  # reserved frame type
    with pytest.raises(DecodeError) as err:
        decode_zcl(b"\x04\x00", 0)
    assert err.value.offset == 0


def test_strict_and_lenient_payloads():
    truncated = bytes.fromhex("01 00 05 804a371c 00000000 00".replace(" ", ""))  # CreditAdjustment cut short
    lenient = decode_zcl(truncated, Cluster.PREPAYMENT)
    assert isinstance(lenient.payload, RawPayload) and "undecodable" in lenient.payload.problem
    assert lenient.encode() == truncated
    with pytest.raises(DecodeError) as err:
        decode_zcl(truncated, Cluster.PREPAYMENT, strict=True)
    assert err.value.field == "credit_adjustment_value" and err.value.offset == 12
    extra = decode_zcl(bytes.fromhex("010009" "00000001" "FF"), Cluster.PREPAYMENT, strict=True)
    assert extra.payload["low_credit_warning_level"] == 0x01000000 and extra.payload.extra == b"\xff"


def test_general_commands_round_trip():
    payloads = [
        ReadAttributes((1, 2, 0xFFFF)),
        ReadAttributesResponse((ReadAttributeRecord(0, 0, ZclType.UINT48, 5), ReadAttributeRecord(1, 0x86))),
        WriteAttributes((AttributeValue(0x0031, ZclType.UINT32, 500),), zcl.GeneralCommand.WRITE_ATTRIBUTES_UNDIVIDED),
        WriteAttributesResponse(),
        WriteAttributesResponse((AttributeStatus(0x88, 0x0031),)),
        ConfigureReporting((ReportingConfiguration(0, 0x0400, ZclType.INT24, 1, 60, 10), ReportingConfiguration(0, 0x0014, ZclType.ENUM8, 0, 30),
                            ReportingConfiguration(1, 0x0000, timeout=100))),
        ConfigureReportingResponse(),
        ConfigureReportingResponse((ReportingStatus(0x8C, 0, 0x0400),)),
        ReportAttributes((AttributeValue(0x0000, ZclType.UINT48, 99),)),
        DefaultResponse(0x06, Status.NOT_FOUND),
        DiscoverAttributes(0, 20),
        DiscoverAttributesResponse(1, (AttributeInfo(0, ZclType.UINT48),)),
    ]
    for p in payloads:
        frame = ZclFrame.build(p, sequence=3)
        assert decode_zcl(frame.encode(), Cluster.METERING, strict=True) == frame, p
        frame.tree(Cluster.METERING)
        json.dumps(jsonable(frame))


def test_value_types():
    cases = [
        (ZclType.BOOL, True, b"\x01"),
        (ZclType.INT24, -2, b"\xfe\xff\xff"),
        (ZclType.UINT40, 2**40 - 1, b"\xff" * 5),
        (ZclType.CHAR_STRING, "héllo", b"\x06h\xc3\xa9llo"),
        (ZclType.CHAR_STRING, None, b"\xff"),
        (ZclType.LONG_OCTET_STRING, b"ab", b"\x02\x00ab"),
        (ZclType.UTC_TIME, 0x1C374A80, bytes.fromhex("804a371c")),
        (ZclType.DATE, ZclDate(115, 1, 1, 4), bytes.fromhex("73010104")),
        (ZclType.TIME_OF_DAY, TimeOfDay(23, 59, 0xFF, 0xFF), bytes.fromhex("173bffff")),
        (ZclType.IEEE_ADDRESS, bytes.fromhex("00DB1234567890A0"), bytes.fromhex("A09078563412DB00".replace(" ", ""))),
        (ZclType.SINGLE_FLOAT, 1.5, bytes.fromhex("0000c03f")),
        (ZclType.ARRAY, ZclArray(ZclType.UINT16, (1, 2)), bytes.fromhex("2102000100 0200".replace(" ", ""))),
        (ZclType.STRUCT, ZclStruct(((ZclType.UINT8, 1), (ZclType.CHAR_STRING, "x"))), bytes.fromhex("0200200142 0178".replace(" ", ""))),
    ]
    for type_id, value, raw in cases:
        assert encode_attribute_value(type_id, value) == raw, type_id
        assert decode_attribute_value(type_id, raw) == (value, len(raw)), type_id
    assert zcl.utc_datetime(0x1C374A80).year == 2015
    assert zcl.utc_seconds(zcl.utc_datetime(12345)) == 12345
    for type_id, bad in ((ZclType.UINT8, 256), (ZclType.INT8, -129), (ZclType.OCTET_STRING, "text"), (ZclType.DATE, 5), (0x05, 1)):
        with pytest.raises(EncodeError):
            encode_attribute_value(type_id, bad)
    with pytest.raises(DecodeError):
        decode_attribute_value(ZclType.ARRAY, bytes.fromhex("00ffee"))  # array of no-data elements


def test_cluster_command_builder():
    cmd = ClusterCommand.build(
        Cluster.PRICE, "PublishBlockThresholds", provider_id=1, issuer_event_id=2, start_time=3, issuer_tariff_id=4,
        command_index=0, number_of_commands=1, sub_payload_control=1,
        tiers=[{"tier_number_of_block_thresholds": 2, "block_thresholds": [{"threshold": 10}, {"threshold": 20}]}],
    )
    assert cmd.server_to_client and cmd.command_id == 0x06
    frame = ZclFrame.build(cmd, sequence=5)
    assert frame.header.frame_control == 0x09
    assert decode_zcl(frame.encode(), Cluster.PRICE, strict=True) == frame
    counted = ClusterCommand.build(Cluster.METERING, "GetSampledDataResponse", sample_id=1, sample_start_time=0, sample_type=0,
                                   sample_request_interval=1800, samples=[{"value": 5}, {"value": 6}])
    assert counted["number_of_samples"] == 2
    assert counted.as_dict()["samples"] == [{"value": 5}, {"value": 6}]
    with pytest.raises(EncodeError):
        ClusterCommand.build(Cluster.PREPAYMENT, "SetLowCreditWarningLevel")
    with pytest.raises(EncodeError):
        ClusterCommand.build(Cluster.PREPAYMENT, "SetLowCreditWarningLevel", low_credit_warning_level=1, bogus=2)
    with pytest.raises(EncodeError):
        ClusterCommand.build(Cluster.PREPAYMENT, "SetLowCreditWarningLevel", low_credit_warning_level=2**32)
    with pytest.raises(EncodeError):
        ClusterCommand.build(Cluster.PREPAYMENT, "NoSuchCommand")
    optional = ClusterCommand.build(Cluster.MESSAGING, "DisplayMessage", message_id=1, message_control=0, start_time=0,
                                    duration_in_minutes=10, message="Hi")
    assert decode_zcl(ZclFrame.build(optional).encode(), Cluster.MESSAGING).payload == optional
    json.dumps(jsonable(optional))


# --------------------------------------------------------------------------------------------
# GBZ builders
# --------------------------------------------------------------------------------------------

KEY = bytes(range(16))
ORIGINATOR = bytes.fromhex("00DB1234567890A3")


def _sample_payloads() -> list[bytes]:
    """Built samples (independent of the vectors) that seed the mutation tests."""
    read = GbzComponent.build(Cluster.METERING, ReadAttributes((0x0302, 0x0301, 0x0300, 0x0000)))
    response = read_attributes_response(Cluster.METERING, (0x0302, 0x0000), {0x0302: 1000, 0x0000: 12345})
    enc = GbzComponent.build_encrypted(Cluster.METERING, response, encryptor(KEY, ORIGINATOR), disable_default_response=True)
    lcw = GbzComponent.build(
        Cluster.PREPAYMENT, ClusterCommand.build(Cluster.PREPAYMENT, "SetLowCreditWarningLevel", low_credit_warning_level=5),
        from_date_time=0x1C374A80,
    )
    dflt = GbzComponent.build(Cluster.PREPAYMENT, DefaultResponse(0x09, 0), direction=Direction.SERVER_TO_CLIENT)
    return [
        GbzPayload.build([read]).encode(),
        GbzPayload.build([enc, lcw, dflt], renumber=True).encode(),
        GbzAlert.build(0x8F30, 0x1C374A80).encode(),
        GbzAlert.build(0x8F66, 1, FutureDatedAlertData(0x006B, 1005, 0x0700, 0x09, 0x06)).encode(),
        GbzAlert.build(0x8F0A, 2, [enc]).encode(),
    ]


def test_gbz_build_decode_round_trip():
    read = GbzComponent.build(Cluster.METERING, ReadAttributes((0x0302, 0x0301, 0x0300, 0x0000)))
    payload = GbzPayload.build([read])
    # FACTS C.1: the GCS13a command payload
    assert payload.encode() == bytes.fromhex("0109 01 01 0702 000B 000000 0203 0103 0003 0000".replace(" ", ""))
    response = read_attributes_response(Cluster.METERING, (0x0302, 0x0000), {0x0302: 1000, 0x0000: 12345})
    enc = GbzComponent.build_encrypted(Cluster.METERING, response, encryptor(KEY, ORIGINATOR), disable_default_response=True,
                                       additional_header_frame_counter=3)
    lcw = GbzComponent.build(
        Cluster.PREPAYMENT, ClusterCommand.build(Cluster.PREPAYMENT, "SetLowCreditWarningLevel", low_credit_warning_level=5),
        from_date_time=0x1C374A80,
    )
    built = GbzPayload.build([enc, lcw], renumber=True)
    assert [c.last for c in built.components] == [False, True]
    assert [c.header.sequence for c in built.components] == [0, 1]
    raw = built.encode()
    assert raw[3] == 0x02 and enc.header.frame_control == 0x18
    decoded = decode_gbz(raw, cra=CRA.RESPONSE, decrypt=decryptor(KEY, ORIGINATOR))
    assert decoded == built
    assert jsonable(decoded) == jsonable(built)
    assert decoded.components[0].plaintext == response.encode()
    undecrypted = decode_gbz(raw, cra=CRA.RESPONSE)
    assert undecrypted.components[0].payload is None and undecrypted.encode() == raw
    assert undecrypted.components[0].frame is None and decoded.components[1].frame.payload == lcw.payload


def test_gbz_alert_builders():
    for code, body in (
        (FUTURE_DATED_ALERT_GBZ, FutureDatedAlertData(0x006F, 1001, 0x0705, 0x01, 0x03)),
        (FIRMWARE_DISTRIBUTION_RECEIPT_ALERT_GBZ, FirmwareDistributionReceipt(bytes(32))),
        (METER_INTEGRITY_ALERT_GBZ, MeterIntegrityIssue(0x0004)),
        (0x1000, b""),
    ):
        alert = GbzAlert.build(0x8F66, 0x1C374A80, body)
        assert decode_gbz(alert.encode(), cra=CRA.ALERT, message_code=code) == alert
        alert.tree()
    comp = GbzComponent.build(Cluster.METERING, DefaultResponse(0, 0))
    alert = GbzAlert.build(0x8F0A, 5, [comp])
    assert alert.components[0].last and alert.component_count == 1
    assert decode_gbz(alert.encode(), cra=CRA.ALERT, message_code=GCS53_ALERT) == alert
    assert decode_gbz(alert.encode(), cra=CRA.ALERT) == alert  # generic: components parse cleanly
    assert GbzAlert.build(0x8F30, 0x1C374A80).encode() == bytes.fromhex("0109008F301C374A80")  # FACTS C.4
    with pytest.raises(DecodeError):
        decode_gbz(bytes.fromhex("0109018F6600000000 0F"), cra=CRA.ALERT, message_code=FUTURE_DATED_ALERT_GBZ)


def test_gbz_decode_errors_name_offsets():
    with pytest.raises(DecodeError) as err:
        decode_gbz(b"\x01\x08\x00", cra=CRA.COMMAND)
    assert err.value.offset == 0
    with pytest.raises(DecodeError) as err:
        decode_gbz(bytes.fromhex("0109010107020020000000"), cra=CRA.COMMAND)
    assert err.value.offset == 6 and err.value.field == "component.length"
    with pytest.raises(DecodeError) as err:
        decode_gbz(bytes.fromhex("01090101070200030000000000"), cra=CRA.COMMAND)
    assert err.value.field == "trailer"


# --------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------

SEEDS = [r["message"].content for r in ROWS] + _sample_payloads()
MESSAGE_CODES = st.sampled_from([None, FUTURE_DATED_ALERT_GBZ, FIRMWARE_DISTRIBUTION_RECEIPT_ALERT_GBZ, METER_INTEGRITY_ALERT_GBZ, GCS53_ALERT, 0x0074])
CRAS = st.sampled_from([1, 2, 3])
ALWAYS = lambda block: bytes(block[5:-12])  # noqa: E731 - a "decryption" that always succeeds


def _check_gbz(data: bytes, cra: int, code, decrypt, strict: bool) -> None:
    try:
        decoded = decode_gbz(data, cra=cra, message_code=code, decrypt=decrypt, strict=strict)
    except DecodeError:
        return
    assert decoded.encode() == data
    decoded.tree()
    json.dumps(jsonable(decoded))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), CRAS, MESSAGE_CODES, st.booleans(), st.booleans())
def test_random_bytes_only_decode_error(data, cra, code, use_decrypt, strict):
    _check_gbz(b"\x01\x09" + data, cra, code, ALWAYS if use_decrypt else None, strict)
    _check_gbz(data, cra, code, None, strict)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([0x0000, 0x0702, 0x0705, 0x0700, 0x0707, 0x0709, 0x0019, 0x0800, 0x1234]), st.booleans())
def test_random_zcl_only_decode_error(data, cluster, strict):
    try:
        frame = decode_zcl(data, cluster, strict=strict)
    except DecodeError:
        return
    assert frame.encode() == data
    frame.tree(cluster)
    json.dumps(jsonable(frame))


@st.composite
def _mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[i : i + draw(st.integers(1, 4))]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated(), CRAS, MESSAGE_CODES, st.booleans(), st.booleans())
def test_mutated_payloads_only_decode_error(data, cra, code, use_decrypt, strict):
    _check_gbz(data, cra, code, decryptor(KEY, ORIGINATOR) if use_decrypt else None, strict)
    _check_gbz(data, cra, code, ALWAYS if use_decrypt else None, strict)


# Build -> decode for every cluster-specific layout, with values drawn from the layout itself.

def _value(type_id):
    if type_id == REST:
        return st.binary(max_size=12)
    kind, size = zcl.DATA_TYPES[type_id]
    if kind == "uint":
        return st.integers(0, 2 ** (8 * size) - 1)
    if kind == "int":
        return st.integers(-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1)
    if kind == "bool":
        return st.booleans()
    if kind == "octets":
        return st.one_of(st.none(), st.binary(max_size=20))
    if kind == "string":
        return st.one_of(st.none(), st.text(max_size=10))
    if kind == "date":
        return st.builds(ZclDate, *[st.integers(0, 255)] * 4)
    if kind == "ieee":
        return st.binary(min_size=8, max_size=8)
    raise AssertionError(type_id)


def _spec_values(draw, spec):
    """Random field values for a layout (builder input form); returns (values, stopped)."""
    out = {}
    selectors = {i.selector: i for i in spec if isinstance(i, Switch)}
    optional = False
    for item in spec:
        if item is OPTIONAL:
            optional = True
            continue
        if optional and draw(st.booleans()):
            return out, True
        if isinstance(item, Switch):
            sub, stopped = _spec_values(draw, item.cases.get(out[item.selector], item.default))
            out.update(sub)
            if stopped:
                return out, True
        elif isinstance(item, Rep):
            n = draw(st.integers(0, 3))
            out[item.name] = [_spec_values(draw, item.fields)[0] for _ in range(n)]
            if item.count is not None:
                out[item.count] = n if item.mask is None else (out[item.count] & ~item.mask) | n
        else:
            name, type_id = item
            if name in selectors:
                keys = sorted(selectors[name].cases)
                out[name] = draw(st.sampled_from(keys + [max(keys) + 1]))
            else:
                out[name] = draw(_value(type_id))
    return out, False


@st.composite
def _cluster_commands(draw):
    key = draw(st.sampled_from(sorted(COMMANDS)))
    cluster, s2c, command_id = key
    values, _ = _spec_values(draw, COMMANDS[key][1])
    return ClusterCommand.build(cluster, command_id, server_to_client=s2c, **values)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cluster_commands(), st.integers(0, 255), st.booleans())
def test_cluster_command_build_decode_round_trip(cmd, sequence, ddr):
    frame = ZclFrame.build(cmd, sequence=sequence, disable_default_response=ddr)
    raw = frame.encode()
    decoded = decode_zcl(raw, cmd.cluster_id, strict=True)
    assert decoded == frame
    assert decode_zcl(raw, cmd.cluster_id) == frame
    assert jsonable(decoded) == jsonable(frame)
    frame.tree(cmd.cluster_id)
    json.dumps(jsonable(frame))
    comp = GbzComponent.build(cmd.cluster_id, cmd, sequence=sequence)
    payload = GbzPayload.build([comp])
    assert decode_gbz(payload.encode(), cra=CRA.COMMAND, strict=True) == payload


_ATTRS = sorted(ATTRIBUTES)


@st.composite
def _read_responses(draw):
    records = []
    for _ in range(draw(st.integers(0, 6))):
        cluster, attr = draw(st.sampled_from(_ATTRS))
        type_id = ATTRIBUTES[(cluster, attr)][1]
        if draw(st.booleans()):
            records.append(ReadAttributeRecord.success(attr, type_id, draw(_value(type_id) if type_id != ZclType.IEEE_ADDRESS else st.binary(min_size=8, max_size=8))))
        else:
            records.append(ReadAttributeRecord.failure(attr, draw(st.integers(1, 255))))
    return ReadAttributesResponse(tuple(records))


@settings(max_examples=200, deadline=None)
@given(_read_responses(), st.booleans())
def test_read_attributes_response_round_trip(resp, encrypted):
    if encrypted:
        comp = GbzComponent.build_encrypted(Cluster.METERING, resp, encryptor(KEY, ORIGINATOR), disable_default_response=True)
    else:
        comp = GbzComponent.build(Cluster.METERING, resp, disable_default_response=True)
    payload = GbzPayload.build([comp])
    decoded = decode_gbz(payload.encode(), cra=CRA.RESPONSE, decrypt=decryptor(KEY, ORIGINATOR), strict=True)
    assert decoded == payload
    assert jsonable(decoded) == jsonable(payload)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(t for t, (k, s) in zcl.DATA_TYPES.items() if s)), st.data())
def test_fixed_size_values_reencode_exactly(type_id, data):
    raw = data.draw(st.binary(min_size=zcl.type_size(type_id), max_size=zcl.type_size(type_id)))
    value, end = decode_attribute_value(type_id, raw)
    assert end == len(raw) and encode_attribute_value(type_id, value) == raw


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([ZclType.ARRAY, ZclType.STRUCT, ZclType.SET, ZclType.CHAR_STRING, ZclType.LONG_CHAR_STRING, ZclType.OCTET_STRING]), st.binary(max_size=40))
def test_variable_values_reencode_exactly(type_id, raw):
    try:
        value, end = decode_attribute_value(type_id, raw)
    except DecodeError:
        return
    assert encode_attribute_value(type_id, value) == raw[:end]
