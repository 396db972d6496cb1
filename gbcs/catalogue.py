"""GBCS spec tables as data: message codes (use cases), alert codes, DUIS service requests, remote-party
roles, device types and the well-known test EUIs.

Written once from the project's spec notes (FRAMING.md appendices A/B, FACTS.md §2 and appendix A,
USE_CASES.md, ALERTS.md, the DUIS request matrix and the GBCS mapping table, and the RTDS folder names
`<SRV>_<UseCase>`). Nothing is read at run time: gbcs does no I/O and the spec folder is not shipped.
Confidence tags as in FACTS.md: [S] stated in a source, [O] observed in RTDS, [I] inferred by us,
[U] not found in any source (confirm before relying on it).
"""
from __future__ import annotations

import re
from enum import IntEnum

from .codec import frozen_dataclass

# -- vocabulary ------------------------------------------------------------------------------------

# GBCS message types (DT gbcs-mapping-table "Message Type") [S]
SME_C_C = "SME.C.C"  # critical command: KRP signature + ACB MAC
SME_C_NC = "SME.C.NC"  # non-critical command: ACB MAC only
SME_A_C = "SME.A.C"  # critical alert: device signature, no MAC
SME_A_NC = "SME.A.NC"  # non-critical alert: device MAC
SME_C_PPMID_GSME = "SME.C.PPMID-GSME"  # HAN-only PPMID→GSME command (PCS01/PCS02)
ZSE_SPECIFIED = "ZSE specified"  # PECS/HECS: ZSE commands that only borrow a message code for event logs
VARIANT = "Variant Command & Response"  # CS02a/CS02e(/CS02f): sent MAC-only or signature-only
MESSAGE_TYPES = (SME_C_C, SME_C_NC, SME_A_C, SME_A_NC, SME_C_PPMID_GSME, ZSE_SPECIFIED, VARIANT)

DUIS_ROLES = ("IS", "ES", "GS", "ED", "GT", "RSA", "OU")  # [S DP srv.ts]
DEVICES = ("esme", "gsme", "gpf", "chf", "ppmid", "hcalcs")
PAYLOADS = ("dlms", "gbz", "asn1")


class RemotePartyRole(IntEnum):
    """Remote-party role: organisation-certificate OU and ASN.1 RemotePartyRole [S DK, GP asn1.ts]."""

    ROOT = 0
    RECOVERY = 1
    SUPPLIER = 2
    NETWORK_OPERATOR = 3
    ACCESS_CONTROL_BROKER = 4
    TRANSITIONAL_COS = 5
    WAN_PROVIDER = 6
    ISSUING_AUTHORITY = 7
    LOAD_CONTROLLER = 8
    OTHER = 127


class DeviceType(IntEnum):
    """Device type in device logs and join commands [S GP asn1.ts, SL gbcs-device-log.h, GB081 p.195]."""

    GSME = 0
    ESME = 1
    CHF = 2
    GPF = 3
    HCALCS = 4
    PPMID = 5
    TYPE_2 = 6  # e.g. IHD


DEVICE_TYPE_BY_NAME: dict[str, DeviceType] = {
    "gsme": DeviceType.GSME, "esme": DeviceType.ESME, "chf": DeviceType.CHF, "gpf": DeviceType.GPF,
    "hcalcs": DeviceType.HCALCS, "ppmid": DeviceType.PPMID, "type2": DeviceType.TYPE_2,
}

# The role a DUIS user's command carries when it reaches a device: the grouping-header originator
# is either the user itself (when the device holds a trust anchor for its role) or the DCC's ACB
# acting for it (supplementary remote party fields carry the user) [S FACTS 1.3; O RTDS].
DUIS_ROLE_TO_REMOTE_PARTY: dict[str, RemotePartyRole] = {
    # Import / gas supplier: the device's registered supplier; RTDS IS/GS commands originate from
    # supplier 90B3D51F30010000 (OU 02) [S FRAMING §8; O RTDS].
    "IS": RemotePartyRole.SUPPLIER,
    "GS": RemotePartyRole.SUPPLIER,
    # Export supplier: not the meter's registered supplier, so no trust anchor on the ESME; the only
    # ES-only SRV in RTDS (6.20.2 ECS39b) is originated by the ACB 90B3D51F30000002 [O RTDS].
    "ES": RemotePartyRole.ACCESS_CONTROL_BROKER,
    # Electricity distributor / gas transporter: network operator 90B3D51F30020000 (OU 03) sends
    # ED reads and voltage settings in RTDS (ECS17c, ECS22a, ECS29a, ECS37 ...) [O]; GT by analogy [I].
    "ED": RemotePartyRole.NETWORK_OPERATOR,
    "GT": RemotePartyRole.NETWORK_OPERATOR,
    # Registered Supplier Agent: has no trust-anchor cell on devices, so its commands can only reach
    # a device through the ACB [I]; no RSA-only SRV in RTDS to confirm it.
    "RSA": RemotePartyRole.ACCESS_CONTROL_BROKER,
    # Other User: its certificates carry role 127 (90B3D51F30010009) [S FRAMING §8], but devices hold
    # no "other" cell; the OU-only SRV 9.1 (ECS50) is originated by the ACB in RTDS [O].
    "OU": RemotePartyRole.ACCESS_CONTROL_BROKER,
}

# -- well-known test EUIs (FRAMING §8, FACTS appendix C) -------------------------------------------
RTDS_RECOVERY = bytes.fromhex("90B3D51F30000001")
RTDS_ACB = bytes.fromhex("90B3D51F30000002")
RTDS_TRANSITIONAL_COS = bytes.fromhex("90B3D51F30000004")
RTDS_WAN_PROVIDER = bytes.fromhex("90B3D51F30000007")
RTDS_SUPPLIER = bytes.fromhex("90B3D51F30010000")  # also holds the "-pp" prepayment KA key (UTRNs)
RTDS_LOAD_CONTROLLER = bytes.fromhex("90B3D51F30010008")
RTDS_OTHER_USER = bytes.fromhex("90B3D51F30010009")
RTDS_NETWORK_OPERATOR = bytes.fromhex("90B3D51F30020000")
RTDS_SUPPLIER_2 = bytes.fromhex("90B3D51F30030000")
RTDS_ESME = bytes.fromhex("00DB1234567890A0")
RTDS_GSME = bytes.fromhex("00DB1234567890A1")
RTDS_CHF = bytes.fromhex("00DB1234567890A2")
RTDS_GPF = bytes.fromhex("00DB1234567890A3")
RTDS_PPMID = bytes.fromhex("00DB1234567890A4")
RTDS_HCALCS = bytes.fromhex("00DB1234567890A5")  # [I] recipient of the supplier's CS03A2 in RTDS
GBCS_EXAMPLE_SUPPLIER = bytes.fromhex("123456789ABCDEF0")  # GBCS §18.4 Supplier A
GBCS_EXAMPLE_DEVICE = bytes.fromhex("FFFFFFFFFFFFFFFE")  # GBCS §18.4 Device A
GBCS_EXAMPLE_ACB = bytes.fromhex("ABABABABABABABAB")  # GBCS §18.4 ACB

RTDS_REMOTE_PARTIES: dict[bytes, RemotePartyRole] = {
    RTDS_RECOVERY: RemotePartyRole.RECOVERY,
    RTDS_ACB: RemotePartyRole.ACCESS_CONTROL_BROKER,
    RTDS_TRANSITIONAL_COS: RemotePartyRole.TRANSITIONAL_COS,
    RTDS_WAN_PROVIDER: RemotePartyRole.WAN_PROVIDER,
    RTDS_SUPPLIER: RemotePartyRole.SUPPLIER,
    RTDS_LOAD_CONTROLLER: RemotePartyRole.LOAD_CONTROLLER,
    RTDS_OTHER_USER: RemotePartyRole.OTHER,
    RTDS_NETWORK_OPERATOR: RemotePartyRole.NETWORK_OPERATOR,
    RTDS_SUPPLIER_2: RemotePartyRole.SUPPLIER,
}
RTDS_DEVICES: dict[bytes, str] = {
    RTDS_ESME: "esme", RTDS_GSME: "gsme", RTDS_CHF: "chf", RTDS_GPF: "gpf", RTDS_PPMID: "ppmid",
    RTDS_HCALCS: "hcalcs",
}

# -- the tables ------------------------------------------------------------------------------------
# Use cases: FRAMING appendix A (240 codes: the parser's 224 + 16 named only by RTDS file names),
# message type from FACTS appendix A / DT, SRVs from RTDS folder names and the DT mapping. Names are
# the spec's, whitespace collapsed ("Futured Dated" typo corrected). Codes that carry no use-case id
# in GBCS get a gbhub id: FDA-<use case> / FDA-DLMS / FDA-ZigBee (future-dated execution alerts),
# FDRA-* (RTDS's own names), GCA / GNCA (generic alerts, as RTDS names them) and three descriptive ids.
# device: the device type that executes (commands) or raises (alerts) it; None if several or any.
# GSME reads may also be addressed to, and answered by, the GPF from its mirror [O RTDS GCS13a/16b].
# payload: 'dlms' (DLMS COSEM), 'gbz' (ZigBee GBZ), 'asn1' (DER) — FRAMING §7 and RTDS payloads [O].
_USE_CASE_ROWS: tuple[tuple, ...] = (
    # message code, use case, name, message type, SRVs, device, payload
    (0x0001, "CCS01", "Add Device to CHF device log", SME_C_NC, ("8.11",), "chf", "dlms"),
    (0x0002, "CCS02", "Remove device from CHF device log", SME_C_NC, ("8.11",), "chf", "dlms"),
    (0x0003, "CCS03", "Restore CHF Device Log", SME_C_NC, ("8.12.1",), "chf", "dlms"),
    (0x0004, "CCS05CCS04", "Read CHF Device Log", SME_C_NC, ("8.9",), "chf", "dlms"),  # [O] RTDS 8.9_CCS05CCS04: MACed GET of the CHF device list
    (0x0007, "CS01a", "Apply Prepayment Top Up to an ESME", SME_C_NC, ("2.2",), "esme", "dlms"),
    (0x0008, "CS02a", "Provide Security Credentials Details", VARIANT, ("6.24.1",), None, "asn1"),
    (0x000A, "CS02c", "Issue Security Credentials", SME_C_C, ("6.17",), None, "asn1"),
    (0x000B, "CS02d", "Update Device Certificates on Device", SME_C_C, ("6.15.2",), None, "asn1"),
    (0x000C, "CS02e", "Provide Device Certificates from Device", VARIANT, ("6.24.2",), None, "asn1"),
    (0x000D, "CS03A1", "Method A Join (Meter)", SME_C_C, ("8.7.1",), None, "asn1"),
    (0x000E, "CS03B", "Method B Join", SME_C_NC, ("8.7.2",), None, "asn1"),
    (0x000F, "CS04AC", "Method A or C Unjoin", SME_C_C, ("8.8.1", "8.8.2"), None, "asn1"),
    (0x0010, "CS04B", "Method B Unjoin", SME_C_NC, ("8.8.2",), None, "asn1"),
    (0x0012, "CS06", "Activate Firmware", SME_C_C, ("11.3",), None, "asn1"),
    (0x0013, "CS07", "Read Device Join Details", SME_C_NC, ("8.9",), None, "asn1"),
    (0x0014, "CS10a", "Read ZigBee Device Event Log", SME_C_NC, ("6.13",), None, "gbz"),
    (0x0015, "CS11", "Clear ZigBee Device Event Log", SME_C_NC, ("3.3",), None, "gbz"),
    (0x0018, "CS14", "Device Addition To / Removal From HAN Whitelist Alerts", SME_A_NC, (), "chf", "dlms"),
    (0x0019, "ECS01a", "Set Tariff and Price on ESME", SME_C_C, ("1.1.1",), "esme", "dlms"),
    (0x001A, "ECS02", "Set ESME Payment Mode to Credit", SME_C_C, ("1.6",), "esme", "dlms"),
    (0x001B, "ECS03", "Set ESME Payment Mode to Prepayment", SME_C_C, ("1.6",), "esme", "dlms"),
    (0x001C, "ECS04a", "Adjust Meter Balance on the ESME", SME_C_C, ("1.5",), "esme", "dlms"),
    (0x001D, "ECS05", "Reset Tariff Block Counter Matrix", SME_C_C, ("1.7",), "esme", "dlms"),
    (0x001E, "ECS07", "Manage Debt on the ESME", SME_C_C, ("2.3",), "esme", "dlms"),
    (0x001F, "ECS08", "Update Prepayment Configuration on ESME", SME_C_C, ("2.1",), "esme", "dlms"),  # type [I] from SRV criticality
    (0x0020, "ECS09", "Activate Emergency Credit Remotely on ESME", SME_C_C, ("2.5",), "esme", "dlms"),
    (0x0021, "ECS10", "Send Message to ESME", SME_C_NC, ("3.1",), "esme", "dlms"),
    (0x0022, "ECS12", "Set Change of Tenancy date on ESME", SME_C_NC, ("3.2",), "esme", "dlms"),
    (0x0023, "ECS14", "Disable Privacy PIN Protection on ESME", SME_C_NC, ("3.5",), "esme", "dlms"),
    (0x0024, "ECS15a", "Clear ESME Event Log", SME_C_NC, ("3.3",), "esme", "dlms"),
    (0x0025, "ECS16", "Write Supplier Contact Details on ESME", SME_C_NC, ("3.4",), "esme", "dlms"),
    (0x0026, "ECS17a", "Read ESME Energy Registers (Export Energy)", SME_C_NC, ("4.2",), "esme", "dlms"),
    (0x0027, "ECS17b", "Read ESME Energy Registers (Import Energy)", SME_C_NC, ("4.1.1",), "esme", "dlms"),
    (0x0028, "ECS17c", "Read ESME Energy Registers (Power)", SME_C_NC, ("4.16",), "esme", "dlms"),
    (0x0029, "ECS17d", "Read ESME Energy Register (TOU)", SME_C_NC, ("4.1.2",), "esme", "dlms"),
    (0x002A, "ECS17e", "Read ESME Energy Register (TOU with Blocks)", SME_C_NC, ("4.1.3",), "esme", "dlms"),
    (0x002B, "ECS18a", "Read Maximum Demand Registers (export)", SME_C_NC, ("4.12.2",), "esme", "dlms"),
    (0x002C, "ECS18b", "Read Maximum Demand Registers (import)", SME_C_NC, ("4.12.1",), "esme", "dlms"),
    (0x002D, "ECS19", "Read ESME Prepayment Registers", SME_C_NC, ("4.3",), "esme", "dlms"),
    (0x002E, "ECS20a", "Read ESME Billing Data Log (payment based debt payments)", SME_C_NC, ("4.4.4",), "esme", "dlms"),
    (0x002F, "ECS20b", "Read ESME Billing Data Log (change of mode / tariff triggered exc export)", SME_C_NC, ("4.4.2",), "esme", "dlms"),
    (0x0030, "ECS20c", "Read ESME Billing Data Log (billing calendar triggered exc export)", SME_C_NC, ("4.4.3",), "esme", "dlms"),
    (0x0033, "ECS21a", "Read Electricity Daily Read Log (exc export)", SME_C_NC, ("4.6.1",), "esme", "dlms"),
    (0x0034, "ECS21b", "Read Electricity (Prepayment) Daily Read Log", SME_C_NC, ("4.14",), "esme", "dlms"),
    (0x0035, "ECS21c", "Read Electricity Daily Read Log (export only)", SME_C_NC, ("4.6.2",), "esme", "dlms"),
    (0x0036, "ECS22a", "Read Electricity Half Hour Profile Data (export)", SME_C_NC, ("4.8.3",), "esme", "dlms"),
    (0x0037, "ECS22b", "Read Electricity Half Hour Profile Data (active import)", SME_C_NC, ("4.8.1",), "esme", "dlms"),
    (0x0038, "ECS22c", "Read Electricity Half Hour Profile Data (reactive import)", SME_C_NC, ("4.8.2",), "esme", "dlms"),
    (0x0039, "ECS23", "Read Voltage Operational Data", SME_C_NC, ("4.10",), "esme", "dlms"),
    (0x003A, "ECS24", "Read ESME Tariff Data", SME_C_NC, ("4.11.1",), "esme", "dlms"),
    (0x003B, "ECS26a", "Read ESME Configuration Data Prepayment", SME_C_NC, ("4.13",), "esme", "dlms"),
    (0x003C, "ECS26b", "Read ESME Configuration Voltage Data", SME_C_NC, ("6.2.1",), "esme", "dlms"),
    (0x003D, "ECS26c", "Read ESME Configuration Data Device Information (randomisation)", SME_C_NC, ("6.2.2",), "esme", "dlms"),
    (0x003E, "ECS26d", "Read ESME Configuration Data Device Information (Billing Calendar)", SME_C_NC, ("6.2.3",), "esme", "dlms"),  # type [I] from SRV criticality
    (0x003F, "ECS26e", "Read ESME Configuration Data Device Information (device identity exc MPAN)", SME_C_NC, ("6.2.4",), "esme", "dlms"),  # type [I] from SRV criticality
    (0x0040, "ECS26f", "Read ESME Configuration Data Device Information (instantaneous power thresholds)", SME_C_NC, ("6.2.5",), "esme", "dlms"),
    (0x0042, "ECS27", "Read ESME Load Limit Data", SME_C_NC, ("4.15",), "esme", "dlms"),
    (0x0043, "ECS28a", "Set Load Limit Configurations - General Settings", SME_C_C, ("6.4.1",), "esme", "dlms"),
    (0x0044, "ECS28b", "Set Load Limit Configuration Counter Reset", SME_C_NC, ("6.4.2",), "esme", "dlms"),
    (0x0045, "ECS29a", "Set Voltage Configurations on ESME", SME_C_NC, ("6.5",), "esme", "dlms"),
    (0x0046, "ECS30", "Set Billing Calendar on the ESME", SME_C_C, ("6.8",), "esme", "dlms"),  # type [I] from SRV criticality
    (0x0047, "ECS34", "Set Instantaneous Power Threshold Configuration", SME_C_NC, ("6.12",), "esme", "dlms"),
    (0x0048, "ECS35a", "Read ESME Event Log", SME_C_NC, ("6.13",), "esme", "dlms"),
    (0x0049, "ECS35b", "Read ESME Security Log", SME_C_NC, ("6.13",), "esme", "dlms"),
    (0x004A, "ECS37", "Set Maximum Demand Configurable Time Period", SME_C_NC, ("6.18.1",), "esme", "dlms"),
    (0x004B, "ECS38", "Update Randomised Offset Limit", SME_C_C, ("7.12",), "esme", "dlms"),
    (0x004C, "ECS39a", "Set MPAN Value on the ESME", SME_C_NC, ("6.20.1",), "esme", "dlms"),
    (0x004D, "ECS39b", "Set Export MPAN Value on the ESME", SME_C_NC, ("6.20.2",), "esme", "dlms"),
    (0x004E, "ECS40", "Read MPAN Value on the ESME", SME_C_NC, ("6.2.7",), "esme", "dlms"),
    (0x004F, "ECS42", "Remotely Close the Load Switch on the ESME", SME_C_C, ("7.1",), "esme", "dlms"),
    (0x0050, "ECS43", "Remotely Open the Load Switch on the ESME", SME_C_C, ("7.2",), "esme", "dlms"),
    (0x0051, "ECS44", "Arm Load Switch in ESME", SME_C_C, ("7.3",), "esme", "dlms"),
    (0x0052, "ECS45", "Read Status of Load Switch in the ESME", SME_C_NC, ("7.4",), "esme", "dlms"),
    (0x0053, "ECS46a", "Set HC ALCS or ALCS Labels in ESME", SME_C_C, ("6.14.1",), "esme", "dlms"),
    (0x0054, "ECS46c", "Set HC ALCS and ALCS configuration in ESME (excluding labels)", SME_C_C, ("6.14.2",), "esme", "dlms"),  # type [I] from SRV criticality
    (0x0055, "ECS47", "Set or Reset HC ALCS or ALCS State", SME_C_C, ("7.5", "7.6", "7.8"), "esme", "dlms"),  # type [I] from SRV criticality
    (0x0058, "ECS50", "Send CIN to ESME", SME_C_NC, ("9.1",), "esme", "dlms"),
    (0x0059, "ECS52", "Read ESME/Comms Hub Firmware Version", SME_C_NC, ("11.2",), None, "dlms"),
    (0x005A, "ECS57", "Reset ESME Maximum Demand Registers", SME_C_NC, ("6.18.2",), "esme", "dlms"),
    (0x005E, "ECS61c", "Read Boost Button Data from ESME", SME_C_NC, ("7.11",), "esme", "dlms"),
    (0x005F, "ECS62", "Set ALCS and Boost Button Association", SME_C_NC, ("7.9", "7.10"), "esme", "dlms"),
    (0x0060, "ECS66", "Read ESME Daily Consumption Log", SME_C_NC, ("4.17",), "esme", "dlms"),
    (0x0061, "ECS68", "ESME Critical Sensitive Alert (Billing Data Log)", SME_A_C, (), "esme", "dlms"),
    (0x0062, "ECS70", "Set Clock on ESME", SME_C_C, ("6.11", "8.1.1"), "esme", "dlms"),
    (0x0067, "ECS80", "Supply Outage Restore Alert from ESME", SME_A_C, (), "esme", "dlms"),
    (0x0068, "ECS81", "Set Supply Tamper State on ESME", SME_C_C, ("6.25",), "esme", "dlms"),
    (0x0069, "ECS82", "Read Meter Balance for ESME", SME_C_NC, ("4.18",), "esme", "dlms"),
    (0x006B, "GCS01a", "Set Tariff and Price on GSME", SME_C_C, ("1.1.1",), "gsme", "gbz"),
    (0x006C, "GCS02", "Set GSME Payment Mode to Credit", SME_C_C, ("1.6",), "gsme", "gbz"),
    (0x006D, "GCS03", "Set GSME Payment Mode to Prepayment", SME_C_C, ("1.6",), "gsme", "gbz"),
    (0x006E, "GCS04", "Manage Debt on the GSME", SME_C_C, ("2.3",), "gsme", "gbz"),
    (0x006F, "GCS05", "Update Prepayment Configurations on GSME", SME_C_C, ("2.1",), "gsme", "gbz"),
    (0x0070, "GCS06", "Activate Emergency Credit Remotely on GSME", SME_C_C, ("2.5",), "gsme", "gbz"),
    (0x0071, "GCS07", "Send Message to GSME", SME_C_NC, ("3.1",), "gsme", "gbz"),
    (0x0072, "GCS09", "Set Change of Tenancy date on GPF", SME_C_NC, ("3.2",), "gpf", "gbz"),
    (0x0073, "GCS11", "Disable Privacy PIN Protection on GSME", SME_C_NC, ("3.5",), "gsme", "gbz"),
    (0x0074, "GCS13a", "Read GSME Consumption Register", SME_C_NC, ("4.1.1",), "gsme", "gbz"),
    (0x0075, "GCS14", "Read GSME Prepayment Registers", SME_C_NC, ("4.3",), "gsme", "gbz"),
    (0x0076, "GCS15c", "Read GSME Billing Data Log (billing calendar triggered)", SME_C_NC, ("4.4.3",), "gsme", "gbz"),
    (0x0077, "GCS16a", "Read GSME Daily Read Log", SME_C_NC, ("4.6.1",), "gsme", "gbz"),
    (0x0078, "GCS17", "Read GSME Profile Data Log", SME_C_NC, ("4.8.1",), "gsme", "gbz"),
    (0x0079, "GCS18", "Read Gas Network Data Log", SME_C_NC, ("4.10",), "gsme", "gbz"),
    (0x007B, "GCS21a", "Read Gas Configuration Data Device Information", SME_C_NC, ("6.2.8",), "gsme", "gbz"),
    (0x007C, "GCS23", "Set CV and Conversion Factor Value(s) on the GSME", SME_C_C, ("6.6",), "gsme", "gbz"),
    (0x007D, "GCS24", "Set Uncontrolled Gas Flow Rate and Supply Tamper State on the GSME", SME_C_C, ("6.7",), "gsme", "gbz"),  # type [I] from SRV criticality
    (0x007E, "GCS25", "Set Billing Calendar on the GSME", SME_C_C, ("6.8",), "gsme", "gbz"),
    (0x007F, "GCS28", "Set Clock on GSME", SME_C_C, ("6.11", "8.1.1"), "gsme", "asn1"),
    (0x0080, "GCS31", "Start Network Data Log on GSME", SME_C_NC, ("14.1",), "gsme", "gbz"),
    (0x0081, "GCS32", "Remotely close the valve in the GSME", SME_C_C, ("7.2",), "gsme", "gbz"),
    (0x0082, "GCS33", "Read GSME Valve Status", SME_C_NC, ("7.4",), "gsme", "gbz"),
    (0x0083, "GCS36", "Send CIN to GSME", SME_C_NC, ("9.1",), "gsme", "gbz"),
    (0x0084, "GCS38", "Read GSME Firmware Version", SME_C_NC, ("11.2",), "gsme", "gbz"),
    (0x0085, "GCS39", "Arm Valve in GSME", SME_C_C, ("7.3",), "gsme", "gbz"),
    (0x0086, "GCS40a", "Adjust Prepayment Mode Meter Balance on the GSME", SME_C_C, ("1.5",), "gsme", "gbz"),
    (0x0087, "GCS41", "Set MPRN Value on the GSME", SME_C_NC, ("6.20.1",), "gsme", "gbz"),
    (0x0088, "GCS44", "Write Contact Details on GSME", SME_C_NC, ("3.4",), "gsme", "gbz"),
    (0x0089, "GCS46", "Read MPRN on the GSME", SME_C_NC, ("6.2.7",), "gsme", "gbz"),
    (0x008B, "GCS53", "Push Billing Data Log as an Alert", SME_A_C, (), "gsme", "gbz"),
    (0x008C, "GCS59", "Restore GPF Device Log", SME_C_NC, ("8.12.2",), "gpf", "asn1"),
    (0x008D, "GCS60", "Read Meter Balance for GSME", SME_C_NC, ("4.18",), "gsme", "gbz"),
    (0x0090, "PCS02", "Activate Emergency Credit on GSME from PPMID", SME_C_PPMID_GSME, (), "gsme", "gbz"),
    (0x0092, "ECS26i", "Read Configuration Data Device Information (CHF identity)", SME_C_NC, ("6.2.4",), "chf", "dlms"),  # type [I] from SRV criticality
    (0x0093, "ECS35c", "Read CHF Event Log", SME_C_NC, ("6.13",), "chf", "dlms"),
    (0x0094, "ECS35d", "Read CHF Security Log", SME_C_NC, ("6.13",), "chf", "dlms"),
    (0x0096, "GCS16b", "Read GSME Daily Read log(s) (prepayment)", SME_C_NC, ("4.14",), "gsme", "gbz"),
    (0x0097, "CS01b", "Apply Prepayment Top Up to a GSME", SME_C_NC, ("2.2",), "gsme", "gbz"),
    (0x009B, "PCS01", "Apply Prepayment Top Up to a GSME using PPMID", SME_C_PPMID_GSME, (), "gsme", "gbz"),
    (0x009D, "GCS21d", "Read GSME Configuration Data Device Information (BillingCalendar)", SME_C_NC, ("6.2.3",), "gsme", "gbz"),  # type [I] from SRV criticality
    (0x009E, "GCS21e", "Read GSME/GPF Configuration Data Device Information (device identity)", SME_C_NC, ("6.2.4",), None, "gbz"),  # type [I] from SRV criticality
    (0x009F, "GCS21f", "Read GSME Tariff Data", SME_C_NC, ("4.11.1",), "gsme", "gbz"),
    (0x00A0, "GCS61", "Read Gas Daily Consumption Log", SME_C_NC, ("4.17",), "gsme", "gbz"),
    (0x00A1, "CS10b", "Read ZigBee Device Security Log", SME_C_NC, ("6.13",), None, "gbz"),
    (0x00A2, "ECS01b", "Set Price on ESME", SME_C_C, ("1.2.1",), "esme", "dlms"),
    (0x00A3, "GCS01b", "Set Price on GSME", SME_C_C, ("1.2.1",), "gsme", "gbz"),
    (0x00AB, "CS03A2", "Method A Join (non Meter)", SME_C_C, ("8.7.1", "8.7.2"), None, "asn1"),
    (0x00AC, "ECS25a", "Set Alert Behaviours - ESME - Supplier", SME_C_NC, ("6.22",), "esme", "dlms"),
    (0x00AD, "GCS20", "Set Alert Behaviours - GSME", SME_C_NC, ("6.22",), "gsme", "gbz"),
    (0x00AE, "ECS29b", "Set Voltage Configurations on ESME - 3ph", SME_C_NC, ("6.5",), "esme", "dlms"),
    (0x00AF, "CS03C", "Method C Join", SME_C_C, ("8.7.1", "8.7.2"), None, "asn1"),
    (0x00B0, "ECS25b", "Set Alert Behaviours - ESME - Network Operator", SME_C_NC, ("6.22",), "esme", "dlms"),
    (0x00B2, "GCS62", "Backup GPF Device Log", SME_A_NC, (), "gpf", "asn1"),
    (0x00B3, "ECS04b", "Reset Meter Balance on the ESME", SME_C_C, ("1.5",), "esme", "dlms"),
    (0x00B4, "GCS40b", "Reset Prepayment Mode Meter Balance on the GSME", SME_C_C, ("1.5",), "gsme", "gbz"),
    (0x00B5, "GCS21b", "Read GSME Configuration Data Prepayment", SME_C_NC, ("4.13",), "gsme", "gbz"),
    (0x00B6, "GCS13c", "Read GSME Register (TOU)", SME_C_NC, ("4.1.2",), "gsme", "gbz"),
    (0x00B7, "ECS01c", "Set Tariff and Price on ESME secondary", SME_C_C, ("1.1.2",), "esme", "dlms"),
    (0x00B8, "GCS13b", "Read GSME Block Counters", SME_C_NC, ("4.1.4",), "gsme", "gbz"),
    (0x00B9, "ECS35e", "Read ESME Power Event Log", SME_C_NC, ("6.13",), "esme", "dlms"),
    (0x00BA, "ECS35f", "Read ALCS Event Log", SME_C_NC, ("6.13",), "esme", "dlms"),  # type [I] from SRV criticality
    (0x00BB, "ECS61a", "Read HC ALCS and ALCS Data from ESME", SME_C_NC, ("7.7",), "esme", "dlms"),  # type [I] from SRV criticality
    (0x00BC, "ECS23b", "Read Voltage Operational Data - 3 Phase", SME_C_NC, ("4.10",), "esme", "dlms"),
    (0x00BD, "ECS24b", "Read ESME Tariff Data - second element", SME_C_NC, ("4.11.2",), "esme", "dlms"),
    (0x00BE, "ECS26j", "Read ESME Configuration Data Device Information (Payment Mode)", SME_C_NC, ("6.2.9",), "esme", "dlms"),
    (0x00BF, "GCS21j", "Read GSME Configuration Data Device Information (Payment Mode)", SME_C_NC, ("6.2.9",), "gsme", "gbz"),
    (0x00C0, "GCS40c", "Adjust Credit Mode Meter Balance on the GSME", SME_C_C, ("1.5",), "gsme", "gbz"),
    (0x00C1, "ECS15c", "Clear ALCS Event Log", SME_C_NC, ("3.3",), "esme", "dlms"),
    (0x00C2, "GCS40d", "Reset Credit Mode Meter Balance on the GSME", SME_C_C, ("1.5",), "gsme", "gbz"),
    (0x00C3, "GCS15b", "Read GSME Billing Data Log (change of mode / tariff triggered)", SME_C_NC, ("4.4.2",), "gsme", "gbz"),
    (0x00C4, "GCS15d", "Read GSME Billing Data Log (payment-based debt payments)", SME_C_NC, ("4.4.4",), "gsme", "gbz"),
    (0x00C5, "GCS15e", "Read GSME Billing Data Log (prepayment credits)", SME_C_NC, ("4.4.5",), "gsme", "gbz"),
    (0x00C6, "ECS26k", "Read ESME Configuration Voltage Data - 3 phase", SME_C_NC, ("6.2.1",), "esme", "dlms"),
    (0x00C7, "ECS01d", "Set Price on ESME secondary", SME_C_C, ("1.2.2",), "esme", "dlms"),
    (0x00C9, "ECS20d", "Read ESME Billing Data Log (prepayment credits)", SME_C_NC, ("4.4.5",), "esme", "dlms"),
    (0x00CA, "FDA-CS06", "Future Dated Firmware Activation Alert", SME_A_C, (), None, "asn1"),  # type [O] RTDS framing
    (0x00CB, "FDA-CS02b", "Future Dated Update Security Credentials Alert", SME_A_C, (), None, "asn1"),  # type [O] RTDS framing
    (0x00CC, "FDA-DLMS", "Future Dated Execution Of Instruction Alert (DLMS COSEM)", SME_A_C, (), "esme", "dlms"),  # type [O] RTDS framing
    (0x00CD, "FDA-ZigBee", "Future Dated Execution Of Instruction Alert (GBZ)", SME_A_C, (), "gsme", "gbz"),  # type [O] RTDS framing
    (0x00CE, "FDRA-DLMS", "Firmware Distribution Receipt Alert (ESME)", SME_A_C, (), "esme", "dlms"),  # type [O] RTDS framing
    (0x00CF, "FDRA-ZigBee", "Firmware Distribution Receipt Alert (GSME)", SME_A_C, (), "gsme", "gbz"),  # type [O] RTDS framing
    (0x00D1, "ECS29c", "Set Voltage Configurations on ESME without counter reset", SME_C_NC, ("6.5",), "esme", "dlms"),
    (0x00D2, "ECS29d", "Set Voltage Configurations on polyphase ESME without counter reset", SME_C_NC, ("6.5",), "esme", "dlms"),
    (0x00D3, "ECS29e", "Reset RMS Voltage Counters on ESME", SME_C_NC, ("6.27",), "esme", "dlms"),
    (0x00D4, "ECS29f", "Reset RMS Voltage Counters on polyphase ESME", SME_C_NC, ("6.27",), "esme", "dlms"),
    (0x00D5, "MessageDeliveryFailure", "Failure to Deliver Remote Party Message to ESME Alert", None, (), "chf", None),
    (0x00D7, "ECS30a", "Set Billing Calendar on the ESME - all periodicities", SME_C_C, ("6.8",), "esme", "dlms"),
    (0x00D8, "GCS25a", "Set Billing Calendar on the GSME - all periodicities", SME_C_C, ("6.8",), "gsme", "gbz"),
    (0x00D9, "ECS26l", "Read ESME Configuration Data Device Information (Billing Calendar - all periodicities)", SME_C_NC, ("6.2.3",), "esme", "dlms"),
    (0x00DA, "GCS21k", "Read GSME Configuration Data Device Information (BillingCalendar - all periodicities)", SME_C_NC, ("6.2.3",), "gsme", "gbz"),
    (0x00DB, "ECS48", "Configure daily resetting of Tariff Block Counter Matrix", SME_C_C, ("6.26",), "esme", "dlms"),
    (0x00DE, "ECS08a", "Update Prepayment Configuration on ESME", SME_C_C, ("2.1",), "esme", "dlms"),
    (0x00EA, "ECS25a1", "Set Event Behaviours - ESME to HAN Device - Supplier", SME_C_NC, ("6.22",), "esme", "dlms"),
    (0x00EB, "ECS25a2", "Set Event Behaviours - ESME audible alarm - Supplier", SME_C_NC, ("6.22",), "esme", "dlms"),
    (0x00EC, "ECS25a3", "Set Event Behaviours - ESME logging - Supplier", SME_C_NC, ("6.22",), "esme", "dlms"),
    (0x00ED, "ECS25b3", "Set Event Behaviours - ESME logging - Network Operator", SME_C_NC, ("6.22",), "esme", "dlms"),
    (0x00EE, "ECS25r1", "Read non-critical event and alert behaviours - ESME - Supplier", SME_C_NC, ("6.2.10",), "esme", "dlms"),
    (0x00EF, "ECS25r2", "Read non-critical event and alert behaviours - ESME - Network Operator", SME_C_NC, ("6.2.10",), "esme", "dlms"),
    (0x00F0, "MeterIntegrityWarning-ESME", "Meter Integrity Issue Warning Alert - ESME", None, (), "esme", None),
    (0x00F1, "GCS20r", "Read non-critical event and alert behaviours - GSME - Supplier", SME_C_NC, ("6.2.10",), "gsme", "gbz"),
    (0x00F2, "MeterIntegrityWarning-GSME", "Meter Integrity Issue Warning Alert - GSME", None, (), "gsme", None),
    (0x00F9, "ECS26m", "Read ESME Configuration Data Device Information (identity, type and supply tamper state)", SME_C_NC, ("6.2.4",), "esme", "dlms"),
    (0x00FA, "ECS26n", "Read CHF Configuration Data Device Information (CH identity and type)", SME_C_NC, ("6.2.4",), "chf", "dlms"),
    (0x00FB, "GCS21m", "Read GSME Configuration Data Device Information (identity, type and supply tamper / depletion state)", SME_C_NC, ("6.2.4",), "gsme", "gbz"),
    (0x00FC, "GCS24a", "Set Uncontrolled Gas Flow Rate and Supply Tamper State on the GSME (SMETS4)", SME_C_C, ("6.7",), "gsme", "gbz"),
    (0x00FD, "ECS35g", "Read ALCS Event Log", SME_C_NC, ("6.13",), "esme", "dlms"),
    (0x00FE, "CCS07", "Read CHF Device Logs", SME_C_NC, ("8.9",), "chf", "dlms"),
    (0x0100, "CS02b", "Update Security Credentials (rootBySupplier)", None, ("6.15.1",), None, "asn1"),  # SRV [I] (not in RTDS)
    (0x0101, "CS02b", "Update Security Credentials (rootByWanProvider)", None, (), None, "asn1"),
    (0x0102, "CS02b", "Update Security Credentials (supplierBySupplier)", None, ("6.15.1", "6.21"), None, "asn1"),
    (0x0103, "CS02b", "Update Security Credentials (networkOperatorByNetworkOperator)", None, ("6.15.1", "6.21"), None, "asn1"),
    (0x0104, "CS02b", "Update Security Credentials (accessControlBrokerByACB)", None, ("8.5",), None, "asn1"),
    (0x0105, "CS02b", "Update Security Credentials (wanProviderByWanProvider)", None, (), None, "asn1"),
    (0x0106, "CS02b", "Update Security Credentials (transCoSByTransCoS)", None, (), None, "asn1"),
    (0x0107, "CS02b", "Update Security Credentials (supplierByTransCoS)", None, ("6.23",), None, "asn1"),
    (0x0108, "CS02b", "Update Security Credentials (anyExceptAbnormalRootByRecovery)", None, (), None, "asn1"),
    (0x0109, "CS02b", "Update Security Credentials (anyByContingency)", None, (), None, "asn1"),
    (0x010A, "DBCH01", "Read CHF Sub GHz Channel", SME_C_NC, ("6.31",), "chf", "dlms"),
    (0x010B, "DBCH02", "Read CHF Sub GHz Channel Log", SME_C_NC, ("6.32",), "chf", "dlms"),
    (0x010C, "DBCH03", "Read CHF Sub GHz Configuration", SME_C_NC, ("6.30",), "chf", "dlms"),
    (0x010D, "DBCH04", "Set CHF Sub GHz Configuration", SME_C_NC, ("6.28",), "chf", "dlms"),
    (0x010E, "DBCH05", "Request CHF Sub GHz Channel Scan", SME_C_NC, ("6.29",), "chf", "dlms"),
    (0x010F, "CCS06", "Read CHF device log and check HAN communications", SME_C_NC, ("8.9",), "chf", "dlms"),
    (0x0110, "DBCH06", "Limited Duty Cycle Action Taken Sub GHz Alert", SME_A_NC, (), "chf", "dlms"),
    (0x0111, "DBCH07", "Sub GHz Sub GHz Channel Changed Sub GHz Alert", SME_A_NC, (), "chf", "dlms"),
    (0x0112, "DBCH08", "Sub GHz Channel Scan Request Assessment Outcome Sub GHz Alert", SME_A_NC, (), "chf", "dlms"),
    (0x0113, "DBCH09", "Sub GHz Configuration Changed Sub GHz Alert", SME_A_NC, (), "chf", "dlms"),
    (0x0114, "DBCH10", "Message Discarded Due to Duty Cycle Management Sub GHz Alert", SME_A_NC, (), "chf", "dlms"),
    (0x0115, "DBCH11", "No More Sub GHz Device Capacity Sub GHz Alert", SME_A_NC, (), "chf", "dlms"),
    (0x0116, "PECS01", "Apply Prepayment Top Up to an ESME using PPMID", ZSE_SPECIFIED, (), "esme", None),
    (0x0117, "PECS02", "Activate Emergency Credit on ESME from PPMID", ZSE_SPECIFIED, (), "esme", None),
    (0x0118, "PECS03", "Request to Enable ESME Supply from PPMID", ZSE_SPECIFIED, (), "esme", None),
    (0x0119, "HECS01", "Request Control of a HAN Connected Auxiliary Load Control Switch from HCALCS", ZSE_SPECIFIED, (), "esme", None),
    (0x011A, "ECS46d", "Set Auxiliary Controller Calendar", SME_C_C, ("6.14.3",), "esme", "dlms"),
    (0x011B, "CS02f", "Provide Security Credential Details", VARIANT, ("6.24.1",), None, "asn1"),  # type [I] RTDS CS02fMAC/CS02fSignature
    (0x011C, "ECS61d", "Read Auxiliary Controller Configuration Data", SME_C_NC, ("7.14",), "esme", "dlms"),
    (0x011D, "ECS61e", "Read Auxiliary Controller Operational Data", SME_C_NC, ("7.15",), "esme", "dlms"),
    (0x011E, "ECS47a", "Set Auxiliary Controller [n] State", SME_C_C, ("7.13",), "esme", "dlms"),
    (0x011F, "ECS47e", "Limit APC [n] Level", SME_C_C, ("7.16",), "esme", "dlms"),
    (0x0120, "ECS100", "Command not supported by Device", SME_A_C, (), "esme", "dlms"),  # type [O] RTDS framing
    (0x0121, "ECS101", "Limit APC [n] Level Command processed", SME_A_C, (), "esme", "dlms"),
    (0x0122, "ECS102", "Limit APC [n] Level ended or cancelled", SME_A_C, (), "esme", "dlms"),
    (0x0123, "ECS200", "Operational Update", SME_A_C, (), "esme", "dlms"),
    (0x0124, "FDA-CS02g", "Future Dated Update Load Controller Security Credentials Alert", SME_A_C, (), None, "asn1"),  # type [O] RTDS framing
    (0x0125, "CS02g", "Update Load Controller Security Credentials (loadControllerByLoadController)", None, (), None, "asn1"),
    (0x0126, "CS02g", "Update Load Controller Security Credentials (loadControllerBySupplier)", None, ("6.15.1",), None, "asn1"),
    (0x0128, "CCS08", "Firmware Transfer Alert", SME_A_C, (), "chf", "asn1"),  # type [O] RTDS framing
    (0x0129, "CS08", "Read PPMID/HCALCS Firmware Version", None, ("11.2",), None, "asn1"),
    (0x012A, "GCS60a", "(title not in our sources; seen only in RTDS file names)", None, (), "gsme", "gbz"),  # payload [I] GCS family
    (0x012B, "CS09", "PPMID Firmware Activation Alert", SME_A_C, (), "ppmid", "asn1"),  # kind [I]: gbcs.asn1.FirmwareVersionAlert
    (0x1000, "GCA", "Generic Critical Alert", SME_A_C, (), None, None),  # type [S] name
    (0x1001, "GNCA", "Generic Non Critical Alert", SME_A_NC, (), None, None),  # type [S] name
)

# alert code: meaning (FRAMING appendix B = FACTS appendix B = ALERTS.md)
ALERT_CODES: dict[int, str] = {
    0x8002: "Average RMS Voltage above Average RMS Over Voltage Threshold (current value above threshold; previous value below threshold)",
    0x8003: "Average RMS Voltage above Average RMS Over Voltage Threshold on Phase 1 (current value above threshold; previous value below threshold)",
    0x8004: "Average RMS Voltage above Average RMS Over Voltage Threshold on Phase 2 (current value above threshold; previous value below threshold)",
    0x8005: "Average RMS Voltage above Average RMS Over Voltage Threshold on Phase 3 (current value above threshold; previous value below threshold)",
    0x8006: "Average RMS Voltage below Average RMS Under Voltage Threshold (current value below threshold; previous value above threshold)",
    0x8007: "Average RMS Voltage below Average RMS Under Voltage Threshold on Phase 1 (current value below threshold; previous value above threshold)",
    0x8008: "Average RMS Voltage below Average RMS Under Voltage Threshold on Phase 2 (current value below threshold; previous value above threshold)",
    0x8009: "Average RMS Voltage below Average RMS Under Voltage Threshold on Phase 3 (current value below threshold; previous value above threshold)",
    0x8010: "Over Current",
    0x8011: "Over Current L1",
    0x8013: "Over Current L3",
    0x8014: "Power Factor Threshold Below",
    0x8015: "Power Factor Threshold Ok",
    0x8016: "Over Current L2",
    0x8020: "RMS Voltage above Extreme Over Voltage Threshold (voltage rises above for longer than the configurable period)",
    0x8021: "RMS Voltage above Extreme Over Voltage Threshold on Phase 1 (voltage rises above for longer than the configurable period)",
    0x8022: "RMS Voltage above Extreme Over Voltage Threshold on Phase 2 (voltage rises above for longer than the configurable period)",
    0x8023: "RMS Voltage above Extreme Over Voltage Threshold on Phase 3 (voltage rises above for longer than the configurable period)",
    0x8024: "RMS Voltage above Voltage Swell Threshold (voltage rises above for longer than the configurable period)",
    0x8025: "RMS Voltage above Voltage Swell Threshold on Phase 1 (voltage rises above for longer than the configurable period)",
    0x8026: "RMS Voltage above Voltage Swell Threshold on Phase 2 (voltage rises above for longer than the configurable period)",
    0x8027: "RMS Voltage above Voltage Swell Threshold on Phase 3 (voltage rises above for longer than the configurable period)",
    0x8028: "RMS Voltage below Extreme Under Voltage Threshold (voltage falls below for longer than the configurable period)",
    0x8029: "RMS Voltage below Extreme Under Voltage Threshold on Phase 1 (voltage falls below for longer than the configurable period)",
    0x802A: "RMS Voltage below Extreme Under Voltage Threshold on Phase 2 (voltage falls below for longer than the configurable period)",
    0x802B: "RMS Voltage below Extreme Under Voltage Threshold on Phase 3 (voltage falls below for longer than the configurable period)",
    0x802C: "RMS Voltage below Voltage Sag Threshold (voltage falls below for longer than the configurable period)",
    0x802D: "RMS Voltage below Voltage Sag Threshold on Phase 1 (voltage falls below for longer than the configurable period)",
    0x802E: "RMS Voltage below Voltage Sag Threshold on Phase 2 (voltage falls below for longer than the configurable period)",
    0x802F: "RMS Voltage below Voltage Sag Threshold on Phase 3 (voltage falls below for longer than the configurable period)",
    0x8071: "GPF Device Log Changed",
    0x8085: "Average RMS Voltage below Average RMS Over Voltage Threshold (current value below threshold; previous value above threshold)",
    0x8086: "Average RMS Voltage below Average RMS Over Voltage Threshold on Phase 1 (current value below threshold; previous value above threshold)",
    0x8087: "Average RMS Voltage below Average RMS Over Voltage Threshold on Phase 2 (current value below threshold; previous value above threshold)",
    0x8088: "Average RMS Voltage below Average RMS Over Voltage Threshold on Phase 3 (current value below threshold; previous value above threshold)",
    0x8089: "Average RMS Voltage above Average RMS Under Voltage Threshold (current value above threshold; previous value below threshold)",
    0x808A: "Average RMS Voltage above Average RMS Under Voltage Threshold on Phase 1 (current value above threshold; previous value below threshold)",
    0x808B: "Average RMS Voltage above Average RMS Under Voltage Threshold on Phase 2 (current value above threshold; previous value below threshold)",
    0x808C: "Average RMS Voltage above Average RMS Under Voltage Threshold on Phase 3 (current value above threshold; previous value below threshold)",
    0x808D: "RMS Voltage above Extreme Over Voltage Threshold (voltage returns below for longer than the configurable period)",
    0x808E: "RMS Voltage above Extreme Over Voltage Threshold on Phase 1 (voltage returns below for longer than the configurable period)",
    0x808F: "RMS Voltage above Extreme Over Voltage Threshold on Phase 2 (voltage returns below for longer than the configurable period)",
    0x8090: "RMS Voltage above Extreme Over Voltage Threshold on Phase 3 (voltage returns below for longer than the configurable period)",
    0x8091: "RMS Voltage above Voltage Swell Threshold (voltage returns below for longer than the configurable period)",
    0x8092: "RMS Voltage above Voltage Swell Threshold on Phase 1 (voltage returns below for longer than the configurable period)",
    0x8093: "RMS Voltage above Voltage Swell Threshold on Phase 2 (voltage returns below for longer than the configurable period)",
    0x8094: "RMS Voltage above Voltage Swell Threshold on Phase 3 (voltage returns below for longer than the configurable period)",
    0x8095: "RMS Voltage below Extreme Under Voltage Threshold (voltage returns above for longer than the configurable period)",
    0x8096: "RMS Voltage below Extreme Under Voltage Threshold on Phase 1 (voltage returns above for longer than the configurable period)",
    0x8097: "RMS Voltage below Extreme Under Voltage Threshold on Phase 2 (voltage returns above for longer than the configurable period)",
    0x8098: "RMS Voltage below Extreme Under Voltage Threshold on Phase 3 (voltage returns above for longer than the configurable period)",
    0x8099: "RMS Voltage below Voltage Sag Threshold (voltage returns above for longer than the configurable period)",
    0x809A: "RMS Voltage below Voltage Sag Threshold on Phase 1 (voltage returns above for longer than the configurable period)",
    0x809B: "RMS Voltage below Voltage Sag Threshold on Phase 2 (voltage returns above for longer than the configurable period)",
    0x809C: "RMS Voltage below Voltage Sag Threshold on Phase 3 (voltage returns above for longer than the configurable period)",
    0x810D: "Combined Credit Below Low Credit Threshold (prepayment mode)",
    0x810E: "Credit Added Locally",
    0x8119: "Emergency Credit Has Become Available (prepayment mode)",
    0x8145: "Clock adjusted (within tolerance)",
    0x8154: "Immediate HAN Interface Command Received and Successfully Actioned",
    0x8155: "Immediate HAN Interface Command Received but not Successfully Actioned",
    0x8161: "User Interface Command Input and Successfully Actioned",
    0x8162: "User Interface Command Input but not Successfully Actioned",
    0x8168: "Supply Disabled then Armed - Activate Emergency Credit triggered",
    0x8183: "Device joined SMHAN",
    0x8184: "Valve tested",
    0x819D: "GSME Command Not Retrieved",
    0x819E: "Tap Off Message Response or Alert Failure",
    0x81A0: "Smart Meter Integrity Issue - Warning",
    0x81A1: "Battery Cover Closed",
    0x81A2: "CH Connected to ESME",
    0x81A3: "CH Disconnected from ESME",
    0x81A4: "Close Tunnel Command Rejected",
    0x81A5: "Communication From Local Port (e.g. Optical)",
    0x81A6: "Customer Acknowledged Message on HAN Device",
    0x81A7: "Debt Collection Completed - Time Debt 1",
    0x81A8: "Debt Collection Completed - Time Debt 2",
    0x81A9: "Debt Collection Completed - Payment Debt",
    0x81AA: "Emergency Credit Exhausted",
    0x81AB: "Emergency Credit Activated",
    0x81AC: "Error Measurement Fault",
    0x81AD: "Error Metrology Firmware Verification Failure",
    0x81AE: "Error Non Volatile Memory",
    0x81AF: "Error Program Execution",
    0x81B0: "Error Program Storage",
    0x81B1: "Error RAM",
    0x81B2: "Error Unexpected Hardware Reset",
    0x81B3: "Error Watchdog",
    0x81B4: "Excess Gas Flow Beyond Meter Capacity",
    0x81B5: "Flow Sensor Detects Air in Gas Flow",
    0x81B6: "Flow Sensor Detects Reverse Flow of Gas",
    0x81B7: "Incorrect phase sequencing",
    0x81B8: "Incorrect Polarity",
    0x81B9: "Meter Cover Closed",
    0x81BA: "Request Tunnel Command Rejected",
    0x81BB: "Reverse Current",
    0x81BC: "Strong Magnetic Field Removed",
    0x81BD: "Supply Connect Failure (Valve or Load Switch)",
    0x81BE: "Supply Disabled Then Locked - Supply Tamper State Cause",
    0x81BF: "Supply Disabled Then Armed - Uncontrolled Gas Flow Rate",
    0x81C0: "Supply Disconnect Failure (Valve or Load Switch)",
    0x81C1: "Terminal Cover Closed",
    0x81C2: "Tilt Tamper Ended",
    0x81C3: "Tilt Tamper",
    0x81C4: "UTRN Manual Entry Suspended",
    0x81C5: "UTRN rejected as locked out",
    0x81C6: "Clock not adjusted (outside tolerance)",
    0x8F01: "Active Power Import above Load Limit Threshold",
    0x8F0A: "Billing Data Log Updated",
    0x8F0C: "Clock not adjusted (adjustment greater than 10 seconds)",
    0x8F0F: "Credit Below Disablement Threshold (prepayment mode)",
    0x8F12: "CHF Device Log Changed",
    0x8F1B: "Firmware Verification Failed At Power On",
    0x8F1C: "Firmware Verification Failed",
    0x8F1D: "GSME Power Supply Loss",
    0x8F1E: "Integrity check of content or format of command failed",
    0x8F1F: "Low Battery Capacity",
    0x8F20: "Limited Duty Cycle Action Taken",
    0x8F21: "Duty Cycle fallen below Normal-Limited Duty Cycle Threshold",
    0x8F22: "Critical Duty Cycle Action Taken",
    0x8F23: "Duty Cycle fallen below Limited-Critical Duty Cycle Threshold",
    0x8F24: "Regulated Duty Cycle Action Taken",
    0x8F25: "Duty Cycle fallen below Critical-Regulated Duty Cycle Threshold",
    0x8F26: "Sub GHz Channel Changed",
    0x8F27: "Sub GHz Channel Scan initiated",
    0x8F28: "Sub GHz Channel Scan Request Assessment Outcome",
    0x8F29: "Three Lost GSME Searches Failed",
    0x8F2A: "Sub GHz Configuration Changed",
    0x8F2B: "Sub GHz Channel not changed due to Frequency Agility Parameters",
    0x8F2C: "Message Discarded Due to Duty Cycle Management",
    0x8F2D: "No More Sub GHz Device Capacity",
    0x8F30: "Source Does not have Authority for Command",
    0x8F32: "Supply Armed",
    0x8F33: "Supply Disabled then Armed - Load Limit triggered",
    0x8F34: "Supply Enabled after Load Limit Restoration Period (Load Limit triggered)",
    0x8F35: "Supply Outage Restored",
    0x8F36: "Supply Outage Restored - Outage >= 3 minutes",
    0x8F37: "Supply Outage Restored on Phase 1",
    0x8F38: "Supply Outage Restored on Phase 1 Restored - Outage >= 3 minutes",
    0x8F39: "Supply Outage Restored on Phase 2 Restored",
    0x8F3A: "Supply Outage Restored on Phase 2 Restored - Outage >= 3 minutes",
    0x8F3B: "Supply Outage Restored on Phase 3 Restored",
    0x8F3C: "Supply Outage Restored on Phase 3 Restored - Outage >= 3 minutes",
    0x8F3D: "Trusted Source Authentication Failure",
    0x8F3E: "Unauthorised Communication Access attempted",
    0x8F3F: "Unauthorised Physical Access - Tamper Detect",
    0x8F43: "Change in the executing Firmware version",
    0x8F47: "Credit would cause Meter Balance to exceed Maximum Meter Balance Threshold",
    0x8F48: "Device joining failed",
    0x8F49: "Device joining succeeded",
    0x8F4A: "Device Unjoining failed",
    0x8F4B: "Device Unjoining succeeded",
    0x8F4C: "Device's own Digital Signing Certificate replacement failed",
    0x8F4D: "Device's own Digital Signing Certificate replacement succeeded",
    0x8F4E: "Device's own Key Agreement Certificate replacement failed",
    0x8F4F: "Device's own Key Agreement Certificate replacement succeeded",
    0x8F51: "Duplicate UTRN entered",
    0x8F52: "Event Log Cleared",
    0x8F53: "Failed Authentication or Authorisation not covered by other codes",
    0x8F57: "Supply interrupted",
    0x8F58: "Supply interrupted on Phase 1",
    0x8F59: "Supply interrupted on Phase 2",
    0x8F5A: "Supply interrupted on Phase 3",
    0x8F5B: "UTRN exceeds Maximum Credit Threshold",
    0x8F60: "Unusual numbers of malformed, out-of-order or unexpected Commands received",
    0x8F63: "UTRN not Authentic",
    0x8F64: "UTRN not for this Device",
    0x8F66: "Future-date HAN Interface Command Successfully Actioned",
    0x8F67: "Future-date HAN Interface Command not Successfully Actioned",
    0x8F69: "Device commissioned",
    0x8F70: "Update Security Credentials",
    0x8F72: "Firmware Verification Successful",
    0x8F73: "Unauthorised Physical Access - Battery Cover Removed",
    0x8F74: "Unauthorised Physical Access - Meter Cover Removed",
    0x8F75: "Unauthorised Physical Access - Strong Magnetic field",
    0x8F76: "Unauthorised Physical Access - Terminal Cover Removed",
    0x8F77: "Unauthorised Physical Access - Second Terminal Cover Removed",
    0x8F78: "Unauthorised Physical Access - Other",
    0x8F82: "Remaining Battery Capacity reset",
    0x8F83: "Disablement of Supply due to insufficient credit has been suspended",
    0x8F84: "Failure to Deliver Remote Party Message to ESME",
    0x8F85: "Command not supported by Device",  # [O RTDS NA_ECS100: the alert ECS100 carries; name from the use case]
    0x8F89: "Firmware transfer alert FAIL",
    0x8F8A: "Firmware transfer alert SUCCESS",
    0x8F8B: "Read Firmware version alert",
}

_SERVICE_REQUEST_ROWS: tuple[tuple, ...] = (
    # SRV, name, critical, on demand, future-dated response pattern, DCC scheduled, non-device, roles
    ("1.1.1", "Update Import Tariff (Primary Element)", True, True, "Device", False, False, "IS GS"),
    ("1.1.2", "Update Import Tariff (Secondary Element)", True, True, "Device", False, False, "IS"),
    ("1.2.1", "Update Price (Primary Element)", True, True, "Device", False, False, "IS GS"),
    ("1.2.2", "Update Price (Secondary Element)", True, True, "Device", False, False, "IS"),
    ("1.5", "Update Meter Balance", True, True, None, False, False, "IS GS"),
    ("1.6", "Update Payment Mode", True, True, "Device", False, False, "IS GS"),
    ("1.7", "Reset Tariff Block Counter Matrix", True, True, None, False, False, "IS"),
    ("2.1", "Update Prepay Configuration", True, True, "Device", False, False, "IS GS"),
    ("2.2", "Top Up Device", False, True, None, False, False, "IS GS"),
    ("2.3", "Update Debt", True, True, None, False, False, "IS GS"),
    ("2.5", "Activate Emergency Credit", True, True, None, False, False, "IS GS"),
    ("3.1", "Display Message", False, True, "DSP", False, False, "IS GS"),
    ("3.2", "Restrict Access For Change Of Tenancy", False, True, "DSP", False, False, "IS GS"),
    ("3.3", "Clear Event Log", False, True, None, False, False, "IS GS"),
    ("3.4", "Update Supplier Name", False, True, "DSP", False, False, "IS GS"),
    ("3.5", "Disable Privacy PIN", False, True, None, False, False, "IS GS"),
    ("4.1.1", "Read Instantaneous Import Registers", False, True, "DSP", False, False, "IS GS ED GT"),
    ("4.1.2", "Read Instantaneous Import TOU Matrices", False, True, "DSP", False, False, "IS GS ED GT"),
    ("4.1.3", "Read Instantaneous Import TOU With Blocks Matrices", False, True, "DSP", False, False, "IS ED"),
    ("4.1.4", "Read Instantaneous Import Block Counters", False, True, "DSP", False, False, "GS"),
    ("4.2", "Read Instantaneous Export Registers", False, True, "DSP", False, False, "ES ED"),
    ("4.3", "Read Instantaneous Prepay Values", False, True, "DSP", False, False, "IS GS"),
    ("4.4.2", "Retrieve Change Of Mode / Tariff Triggered Billing Data Log", False, True, "DSP", False, False, "IS GS"),
    ("4.4.3", "Retrieve Billing Calendar Triggered Billing Data Log", False, True, "DSP", False, False, "IS GS"),
    ("4.4.4", "Retrieve Billing Data Log (Payment Based Debt Payments)", False, True, "DSP", False, False, "GS IS"),
    ("4.4.5", "Retrieve Billing Data Log (Prepayment Credits)", False, True, "DSP", False, False, "GS IS"),
    ("4.6.1", "Retrieve Import Daily Read Log", False, True, "DSP", True, False, "IS GS"),
    ("4.6.2", "Retrieve Export Daily Read Log", False, True, "DSP", True, False, "ES"),
    ("4.8.1", "Read Active Import Profile Data", False, True, "DSP", True, False, "IS GS ED GT OU"),
    ("4.8.2", "Read Reactive Import Profile Data", False, True, "DSP", True, False, "IS ED OU"),
    ("4.8.3", "Read Export Profile Data", False, True, "DSP", True, False, "ES ED OU"),
    ("4.10", "Read Network Data", False, True, "DSP", True, False, "IS GS ED GT"),
    ("4.11.1", "Read Tariff (Primary Element)", False, True, None, False, False, "IS GS OU"),
    ("4.11.2", "Read Tariff (Secondary Element)", False, True, None, False, False, "IS OU"),
    ("4.12.1", "Read Maximum Demand Import Registers", False, True, "DSP", True, False, "IS ED"),
    ("4.12.2", "Read Maximum Demand Export Registers", False, True, "DSP", True, False, "ES ED"),
    ("4.13", "Read Prepayment Configuration", False, True, "DSP", False, False, "IS GS"),
    ("4.14", "Read Prepayment Daily Read Log", False, True, "DSP", True, False, "IS GS"),
    ("4.15", "Read Load Limit Data", False, True, "DSP", True, False, "IS ED"),
    ("4.16", "Read Active Power Import", False, True, None, True, False, "IS ED"),
    ("4.17", "Retrieve Daily Consumption Log", False, True, "DSP", True, False, "IS GS ED GT OU"),
    ("4.18", "Read Meter Balance", False, True, "DSP", False, False, "IS GS"),
    ("5.1", "Create Schedule", False, False, None, False, True, "IS ES GS ED GT OU"),
    ("5.2", "Read Schedule", False, False, None, False, True, "IS ES GS ED GT OU"),
    ("5.3", "Delete Schedule", False, False, None, False, True, "IS ES GS ED GT OU"),
    ("6.2.1", "Read Device Configuration (Voltage)", False, True, None, False, False, "IS RSA ED"),
    ("6.2.2", "Read Device Configuration (Randomisation)", False, True, None, False, False, "IS RSA ED"),
    ("6.2.3", "Read Device Configuration (Billing Calendar)", False, True, None, False, False, "IS RSA GS"),
    ("6.2.4", "Read Device Configuration (Identity Exc MPxN)", False, True, None, False, False, "IS ES GS RSA ED GT OU"),
    ("6.2.5", "Read Device Configuration (Instantaneous Power Thresholds)", False, True, None, False, False, "IS RSA"),
    ("6.2.7", "Read Device Configuration (MPxN)", False, True, None, False, False, "IS ES GS RSA ED GT OU"),
    ("6.2.8", "Read Device Configuration (Gas)", False, True, None, False, False, "GS RSA GT"),
    ("6.2.9", "Read Device Configuration (Payment Mode)", False, True, None, False, False, "IS GS RSA"),
    ("6.2.10", "Read Device Configuration (Event and Alert Behaviours)", False, True, None, False, False, "IS GS ED"),
    ("6.4.1", "Update Device Configuration (Load Limiting General Settings)", True, True, "Device", False, False, "IS"),
    ("6.4.2", "Update Device Configuration (Load Limiting Counter Reset)", False, True, "DSP", False, False, "IS"),
    ("6.5", "Update Device Configuration (Voltage)", False, True, "DSP", False, False, "ED"),
    ("6.6", "Update Device Configuration (Gas Conversion)", True, True, None, False, False, "GS"),
    ("6.7", "Update Device Configuration (Gas Flow)", True, True, None, False, False, "GS"),
    ("6.8", "Update Device Configuration (Billing Calendar)", True, True, None, False, False, "IS GS"),
    ("6.11", "Synchronise Clock", True, True, None, False, False, "IS GS"),
    ("6.12", "Update Device Configuration (Instantaneous Power Threshold)", False, True, "DSP", False, False, "IS"),
    ("6.13", "Read Event Or Security Log", False, True, None, False, False, "IS GS ED GT RSA"),
    ("6.14.1", "Update Device Configuration (Auxiliary Load Control Description)", True, True, None, False, False, "IS"),
    ("6.14.2", "Update Device Configuration (Auxiliary Load Control Scheduler)", True, True, "Device", False, False, "IS"),
    ("6.14.3", "Update Device Configuration (Auxiliary Controller Scheduler)", True, True, "Device", False, False, "IS"),
    ("6.15.1", "Update Security Credentials (KRP)", True, True, "Device", False, False, "IS GS ED GT"),
    ("6.15.2", "Update Security Credentials (Device)", True, True, None, False, False, "IS GS"),
    ("6.17", "Issue Security Credentials", True, True, None, False, False, "IS GS"),
    ("6.18.1", "Set Maximum Demand Configurable Time Period", False, True, "DSP", False, False, "ED"),
    ("6.18.2", "Reset Maximum Demand Registers", False, True, "DSP", False, False, "ED"),
    ("6.20.1", "Set Device Configuration (Import MPxN)", False, True, "DSP", False, False, "IS GS"),
    ("6.20.2", "Set Device Configuration (Export MPAN)", False, True, "DSP", False, False, "ES"),
    ("6.21", "Request Handover Of DCC Controlled Device", False, True, "DSP", False, False, "IS GS"),
    ("6.22", "Configure Alert Behaviour", False, True, None, False, False, "IS GS ED"),
    ("6.23", "Update Security Credentials (CoS)", False, True, "DSP & Device", False, False, "IS GS"),
    ("6.24.1", "Retrieve Device Security Credentials (KRP)", False, True, None, False, False, "IS GS ED GT"),
    ("6.24.2", "Retrieve Device Security Credentials (Device)", True, True, None, False, False, "IS GS"),
    ("6.25", "Set Electricity Supply Tamper State", True, True, None, False, False, "IS"),
    ("6.26", "Update Device Configuration (daily resetting of Tariff Block Counter Matrix)", True, True, None, False, False, "IS"),
    ("6.27", "Update Device Configuration (RMS Voltage Counter Reset)", False, True, "DSP", False, False, "ED"),
    ("6.28", "Set CHF Sub GHz Configuration", False, True, None, False, False, "IS GS"),
    ("6.29", "Request CHF Sub GHz Channel Scan", False, True, None, False, False, "IS GS"),
    ("6.30", "Read CHF Sub GHz Configuration", False, True, None, False, False, "IS GS RSA"),
    ("6.31", "Read CHF Sub GHz Channel", False, True, None, False, False, "IS GS RSA"),
    ("6.32", "Read CHF Sub GHz Channel Log", False, True, None, False, False, "IS GS RSA"),
    ("7.1", "Enable Supply", True, True, None, False, False, "IS"),
    ("7.2", "Disable Supply", True, True, None, False, False, "IS GS"),
    ("7.3", "Arm Supply", True, True, None, False, False, "IS GS"),
    ("7.4", "Read Supply Status", False, True, None, False, False, "IS ES GS RSA ED GT"),
    ("7.5", "Activate Auxiliary Load", True, True, None, False, False, "IS"),
    ("7.6", "Deactivate Auxiliary Load", True, True, None, False, False, "IS"),
    ("7.7", "Read Auxiliary Load Switch Data", False, True, "DSP", False, False, "IS ED OU"),
    ("7.8", "Reset Auxiliary Load", True, True, None, False, False, "IS"),
    ("7.9", "Add Auxiliary Load To Boost Button", False, True, "DSP", False, False, "IS"),
    ("7.10", "Remove Auxiliary Load From Boost Button", False, True, "DSP", False, False, "IS"),
    ("7.11", "Read Boost Button Details", False, True, "DSP", False, False, "IS OU"),
    ("7.12", "Set Randomised Offset Limit", True, True, None, False, False, "IS"),
    ("7.13", "Set Auxiliary Controller State", True, True, None, False, False, "IS"),
    ("7.14", "Read Auxiliary Controller Configuration Data", False, True, "DSP", False, False, "IS ED OU"),
    ("7.15", "Read Auxiliary Controller Operational Data", False, True, "DSP", False, False, "IS ED OU"),
    ("7.16", "Limit APC Level", True, True, None, False, False, ""),
    ("8.1.1", "Commission Device", True, True, None, False, False, "IS GS"),
    ("8.2", "Read Inventory (Current and Future Suppliers may use this Service Request)", False, False, None, False, True, "IS ES GS RSA ED GT OU"),
    ("8.3", "Decommission Device", False, False, None, False, True, "IS GS"),
    ("8.4", "Update Inventory", False, False, None, False, True, "IS ES GS RSA ED GT OU"),
    ("8.5", "Service Opt Out", False, False, "DSP", False, False, ""),
    ("8.6", "Service Opt In", False, False, None, False, True, ""),
    ("8.7.1", "Join Service (Critical)", True, True, None, False, False, "IS GS"),
    ("8.7.2", "Join Service (Non-Critical)", False, True, None, False, False, "IS GS OU"),
    ("8.8.1", "Unjoin Service (Critical)", True, True, None, False, False, "IS GS"),
    ("8.8.2", "Unjoin Service (Non-Critical)", False, True, None, False, False, "IS GS OU"),
    ("8.9", "Read Device Log", False, True, "DSP", False, False, "IS GS OU"),
    ("8.11", "Update HAN Device Log", False, True, "DSP", False, False, "IS GS OU"),
    ("8.12.1", "Restore HAN Device Log", False, True, None, False, False, "IS GS"),
    ("8.12.2", "Restore Gas Proxy Function Device Log", False, True, None, False, False, "IS GS"),
    ("8.13", "Return Local Command Response", False, False, None, False, True, "IS GS"),
    ("8.14.1", "Communications Hub Status Update- Install Success", False, False, None, False, True, "IS GS"),
    ("8.14.2", "Communications Hub Status Update - Install No SM WAN", False, False, None, False, True, "IS GS"),
    ("8.14.3", "Communications Hub Status Update. – Fault Return", False, False, None, False, True, "IS GS"),
    ("8.14.4", "Communications Hub Status Update – No Fault Return", False, False, None, False, True, "IS GS"),
    ("9.1", "Request Customer Identification Number", False, True, None, False, False, "OU"),
    ("11.1", "Update Firmware", False, False, None, False, True, "IS GS"),
    ("11.2", "Read Firmware Version", False, True, "DSP", False, False, "IS ES GS RSA ED GT OU"),
    ("11.3", "Activate Firmware", True, True, "Device", False, False, "IS GS"),
    ("11.4", "Update PPMID Firmware", False, False, None, False, True, "IS GS"),
    ("12.1", "Request WAN Matrix", False, False, None, False, True, "IS ES GS RSA ED GT OU"),
    ("12.2", "Device Pre-notification", False, False, None, False, True, "IS ES GS RSA ED GT OU"),
    ("14.1", "Record Network Data (GAS)", False, True, None, True, False, "GT"),
)


# -- data model ------------------------------------------------------------------------------------


@frozen_dataclass
class ServiceRequest:
    """One DUIS Service Request variant (DP duis-request-matrix.json) [S]."""

    srv: str  # Service Reference Variant, e.g. "4.1.1"
    name: str
    critical: bool
    on_demand: bool
    future_dated: str | None  # "Device", "DSP", "DSP & Device"; None = not future-datable
    dcc_scheduled: bool
    non_device: bool
    roles: frozenset[str]  # eligible DUIS user roles

    def to_json(self) -> dict:
        return {"type": "ServiceRequest", "srv": self.srv, "name": self.name, "critical": self.critical,
                "on_demand": self.on_demand, "future_dated": self.future_dated,
                "dcc_scheduled": self.dcc_scheduled, "non_device": self.non_device, "roles": sorted(self.roles)}


SERVICE_REQUESTS: dict[str, ServiceRequest] = {
    row[0]: ServiceRequest(*row[:7], frozenset(row[7].split())) for row in _SERVICE_REQUEST_ROWS
}


def by_srv(srv: str) -> ServiceRequest | None:
    return SERVICE_REQUESTS.get(srv)


def device_future_dated(message_code: int) -> bool:
    """Whether the device itself may hold this use case until an execution date-time: one of its
    SRVs has the DUIS future-dated response pattern "Device" or "DSP & Device" [S DP] (tariff,
    price, payment mode, prepayment configuration, load limiting, auxiliary load control, security
    credentials, firmware activation)."""
    uc = by_message_code(message_code)
    return uc is not None and any("Device" in (SERVICE_REQUESTS[s].future_dated or "") for s in uc.srvs)


@frozen_dataclass
class UseCase:
    """One GBCS message code. `critical` and `duis_roles` come from its DUIS SRVs: critical is None
    when it has no SRV or its SRVs disagree (e.g. CS04AC: 8.8.1 critical, 8.8.2 not)."""

    message_code: int
    use_case: str
    name: str
    message_type: str | None
    srvs: tuple[str, ...]
    critical: bool | None
    duis_roles: frozenset[str]
    device: str | None
    payload: str | None

    @property
    def is_alert(self) -> bool:
        return self.message_type in (SME_A_C, SME_A_NC) or self.message_code in _ALERTS_OF_UNKNOWN_TYPE

    @property
    def is_command(self) -> bool:
        return not self.is_alert

    @property
    def title(self) -> str:
        """"ECS17b Read ESME Energy Registers (Import Energy)", as the spec titles use cases."""
        return f"{self.use_case} {self.name}"

    def to_json(self) -> dict:
        return {"type": "UseCase", "message_code": f"{self.message_code:04X}", "use_case": self.use_case,
                "name": self.name, "message_type": self.message_type, "srvs": list(self.srvs),
                "critical": self.critical, "duis_roles": sorted(self.duis_roles), "device": self.device,
                "payload": self.payload}


# Alerts whose message type no source gives (so neither SME.A.C nor SME.A.NC is known) [U].
_ALERTS_OF_UNKNOWN_TYPE = frozenset({0x00D5, 0x00F0, 0x00F2})


# DUIS roles narrower than the SRV's: SRV 6.15.1 also lists ED/GT, but the supplier modes of CS02b
# are for suppliers only [S FACTS appendix A; 0x0100 I].
_DUIS_ROLES_REPLACED: dict[int, frozenset[str]] = {0x0100: frozenset({"IS", "GS"}), 0x0102: frozenset({"IS", "GS"})}


def _use_case(code: int, use_case: str, name: str, message_type: str | None, srvs: tuple[str, ...],
              device: str | None, payload: str | None) -> UseCase:
    requests = [SERVICE_REQUESTS[s] for s in srvs]
    flags = {r.critical for r in requests}
    critical = flags.pop() if len(flags) == 1 else None
    roles = _DUIS_ROLES_REPLACED.get(code) or frozenset(role for r in requests for role in r.roles)
    return UseCase(code, use_case, name, message_type, srvs, critical, roles, device, payload)


MESSAGE_CODES: dict[int, UseCase] = {row[0]: _use_case(*row) for row in _USE_CASE_ROWS}


def by_message_code(code: int) -> UseCase | None:
    return MESSAGE_CODES.get(code)


# Names that resolve to one message code besides the plain use-case id: RTDS folder names
# (`<SRV>_<name>`) and one name per CS02b/CS02g mode (the mode's ASN.1 name, capitalised).
_ALIASES: dict[str, int] = {
    "CS02aMAC": 0x0008, "CS02aSignature": 0x0008, "CS02fMAC": 0x011B, "CS02fSignature": 0x011B,
    "CS03A2Critical": 0x00AB, "CS03CCritical": 0x00AF, "CS04ACCritical": 0x000F,
    "ECS47Activate": 0x0055, "ECS62Add": 0x005F, "ECS70Commission": 0x0062, "GCS28Commission": 0x007F,
    "CS02bRootBySupplier": 0x0100, "CS02bRootByWanProvider": 0x0101,
    "CS02bSupplierBySupplier": 0x0102, "CS02bSupplierBySupplierHandover": 0x0102,
    "CS02bNetworkOperatorByNetworkOperator": 0x0103, "CS02bNOByNOHandover": 0x0103,
    "CS02bAccessControlBrokerByACB": 0x0104, "CS02bACBByACB": 0x0104,
    "CS02bWanProviderByWanProvider": 0x0105, "CS02bWPByWP": 0x0105,
    "CS02bTransCoSByTransCoS": 0x0106, "CS02bSupplierByTransCoS": 0x0107,
    "CS02bAnyExceptAbnormalRootByRecovery": 0x0108, "CS02bAnyByContingency": 0x0109,
    "CS02gLoadControllerByLoadController": 0x0125, "CS02gLoadControllerBySupplier": 0x0126,
    "GCA-DLMS": 0x1000, "GCA-ZigBee": 0x1000, "GNCA-DLMS": 0x1001, "GNCA-ZigBee": 0x1001,
}


def _build_index() -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    unique: dict[str, int] = {}
    shared: dict[str, list[int]] = {}
    for uc in MESSAGE_CODES.values():
        shared.setdefault(uc.use_case.lower(), []).append(uc.message_code)
    for key, codes in shared.items():
        if len(codes) == 1:
            unique[key] = codes[0]
    for alias, code in _ALIASES.items():
        unique[alias.lower()] = code
    return unique, {k: tuple(v) for k, v in shared.items() if len(v) > 1}


_BY_NAME, _SHARED_NAMES = _build_index()
_ALL_NAMES = sorted({uc.use_case for uc in MESSAGE_CODES.values()} | set(_ALIASES))


def by_use_case(name: str) -> UseCase:
    """Look a use case up by id ("ECS17b"), RTDS folder name ("CS02bSupplierBySupplier") or mode
    name, case-insensitively. CS02b/CS02g alone name several message codes, so they miss too."""
    key = name.strip().lower()
    code = _BY_NAME.get(key)
    if code is not None:
        return MESSAGE_CODES[code]
    if key in _SHARED_NAMES:
        choices = [a for a, c in _ALIASES.items() if c in _SHARED_NAMES[key]]
        raise KeyError(f"{name!r} names message codes "
                       f"{', '.join(f'0x{c:04X}' for c in _SHARED_NAMES[key])}; use one of {', '.join(choices)}")
    import difflib  # only on a miss

    by_lower = {n.lower(): n for n in _ALL_NAMES}
    close = [by_lower[m] for m in difflib.get_close_matches(key, list(by_lower), n=5, cutoff=0.6)]
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise KeyError(f"unknown use case {name!r}{hint}")


def use_cases(name: str) -> tuple[UseCase, ...]:
    """Every message code of a use-case id (CS02b → its ten modes); () when unknown."""
    key = name.strip().lower()
    if key in _SHARED_NAMES:
        return tuple(MESSAGE_CODES[c] for c in _SHARED_NAMES[key])
    code = _BY_NAME.get(key)
    return (MESSAGE_CODES[code],) if code is not None else ()


# -- criticality -----------------------------------------------------------------------------------
# Commands that the tables type "See GBCS" but that always carry a KRP signature: every CS02b mode
# except ACB-by-ACB (MAC only) [S FACTS §5 CS02b framing; O RTDS 0x0102/0x0103/0x0105-0x0108 signed],
# and both CS02g modes [O RTDS signed]. CS02a/CS02e/CS02f are "Variant": either form is valid.
_SIGNED_WITHOUT_TYPE = frozenset({0x0100, 0x0101, 0x0102, 0x0103, 0x0105, 0x0106, 0x0107, 0x0108, 0x0109,
                                  0x0125, 0x0126})


def is_critical_command(code: int) -> bool:
    """Must a command with this message code carry a (KRP or ACB) signature?"""
    uc = MESSAGE_CODES.get(code)
    if uc is None or uc.is_alert:
        return False
    return uc.message_type == SME_C_C or code in _SIGNED_WITHOUT_TYPE


def is_alert(code: int) -> bool:
    uc = MESSAGE_CODES.get(code)
    return uc is not None and uc.is_alert


# -- who may send a command ------------------------------------------------------------------------
_R = RemotePartyRole
# Replaces the DUIS-derived set where the use case names its sender, or RTDS shows who sends it.
_ROLES_REPLACED: dict[int, frozenset[RemotePartyRole]] = {
    # Supplier-only / network-operator-only variants of SRVs 6.22 and 6.2.10, whose DUIS roles
    # cover both [S use-case titles; O RTDS ECS25a2/a3 from the supplier, ECS25b3 from the NO].
    0x00AC: frozenset({_R.SUPPLIER}), 0x00EA: frozenset({_R.SUPPLIER}), 0x00EB: frozenset({_R.SUPPLIER}),
    0x00EC: frozenset({_R.SUPPLIER}), 0x00EE: frozenset({_R.SUPPLIER}), 0x00F1: frozenset({_R.SUPPLIER}),
    0x00B0: frozenset({_R.NETWORK_OPERATOR}), 0x00ED: frozenset({_R.NETWORK_OPERATOR}),
    0x00EF: frozenset({_R.NETWORK_OPERATOR}),
    # GPF device-log restore is DCC-originated [O RTDS GCS59 from the ACB].
    0x008C: frozenset({_R.ACCESS_CONTROL_BROKER}),
    # CS02b: the mode names the signer [S mode names; O RTDS originators]. Handover (SRV 6.21) of the
    # supplier / NO credentials is sent by the ACB [O RTDS CS02bSupplierBySupplierHandover, NOByNO].
    0x0100: frozenset({_R.SUPPLIER}),  # [I] not in RTDS
    0x0101: frozenset({_R.WAN_PROVIDER}),  # [I] not in RTDS
    0x0102: frozenset({_R.SUPPLIER, _R.ACCESS_CONTROL_BROKER}),
    0x0103: frozenset({_R.NETWORK_OPERATOR, _R.ACCESS_CONTROL_BROKER}),
    0x0104: frozenset({_R.ACCESS_CONTROL_BROKER}),
    0x0105: frozenset({_R.WAN_PROVIDER}),
    0x0106: frozenset({_R.TRANSITIONAL_COS}),
    0x0107: frozenset({_R.TRANSITIONAL_COS}),
    0x0108: frozenset({_R.RECOVERY}),
    0x0109: frozenset({_R.ROOT}),  # [U] "contingency" key assumed to sit with the root
    # CS02g [O RTDS originators].
    0x0125: frozenset({_R.LOAD_CONTROLLER}),
    0x0126: frozenset({_R.SUPPLIER}),
    # SRV 7.16 lists no DUIS roles; APC limiting is the load controller's business [I].
    0x011F: frozenset({_R.LOAD_CONTROLLER}),
}
# Added to the DUIS-derived set.
_ROLES_ADDED: dict[int, frozenset[RemotePartyRole]] = {
    # DCC-originated, ACB-signed PPMID variants of the join / unjoin use cases (SRVs 8.7.2 / 8.8.2)
    # [S FACTS 1.4 "ACB DS key for DCC-originated PPMID commands (CS03A2/CS03C/CS04AC)"].
    0x00AB: frozenset({_R.ACCESS_CONTROL_BROKER}),
    0x00AF: frozenset({_R.ACCESS_CONTROL_BROKER}),
    0x000F: frozenset({_R.ACCESS_CONTROL_BROKER}),
    # Security-credential reads: the ACB (MAC variant) and the transitional CoS party (signature
    # variant) [O RTDS CS02aMAC / CS02aSignature / CS02fSignature originators].
    0x0008: frozenset({_R.ACCESS_CONTROL_BROKER, _R.TRANSITIONAL_COS}),
    0x011B: frozenset({_R.ACCESS_CONTROL_BROKER, _R.TRANSITIONAL_COS}),
    # "Unknown remote party" reads: the ACB sends them for a user the device holds no anchor for,
    # with that user's KA certificate in other-information [O FRAMING §3: ECS21b/GCS16b/GCS61 URP
    # commands; O RTDS GCS16b and GCS15d from the ACB].
    0x0034: frozenset({_R.ACCESS_CONTROL_BROKER}),
    0x0096: frozenset({_R.ACCESS_CONTROL_BROKER}),
    0x00A0: frozenset({_R.ACCESS_CONTROL_BROKER}),
    0x00C4: frozenset({_R.ACCESS_CONTROL_BROKER}),
}
# CHF-executed use cases are DCC-originated: every CHF command in RTDS (CCS01, CCS02, CCS05CCS04,
# CCS06, ECS35c, DBCH05) comes from the ACB [O]; that the CHF accepts no supplier / NO command at all
# is our reading [I].
_CHF_ROLES = frozenset({_R.ACCESS_CONTROL_BROKER})


def _derive_roles(uc: UseCase) -> frozenset[RemotePartyRole]:
    code = uc.message_code
    if uc.is_alert or uc.message_type in (SME_C_PPMID_GSME, ZSE_SPECIFIED):
        return frozenset()  # not remote-party commands
    if code in _ROLES_REPLACED:
        return _ROLES_REPLACED[code]
    roles = _CHF_ROLES if uc.device == "chf" else frozenset(DUIS_ROLE_TO_REMOTE_PARTY[r] for r in uc.duis_roles)
    return roles | _ROLES_ADDED.get(code, frozenset())


_ALLOWED_ROLES: dict[int, frozenset[RemotePartyRole]] = {c: _derive_roles(uc) for c, uc in MESSAGE_CODES.items()}


def allowed_remote_party_roles(message_code: int) -> frozenset[RemotePartyRole]:
    """The remote-party roles a device accepts a command with this message code from (the grouping
    header originator's role); empty for alerts, HAN-only messages and unknown codes. Devices reject
    anything else (alert 0x8F30 "Source Does not have Authority for Command")."""
    return _ALLOWED_ROLES.get(message_code, frozenset())


def alert_name(code: int) -> str | None:
    return ALERT_CODES.get(code)


def alert_label(code: int) -> str:
    """An alert code as people read it: '0x8F1E Integrity check of content or format of command
    failed' (the hex code alone when Appendix B has no name for it)."""
    name = ALERT_CODES.get(code)
    return f"0x{code:04X} {name}" if name else f"0x{code:04X}"


# -- importable names ------------------------------------------------------------------------------
# The tables above as enums, so code above gbcs/ names what it means (`MessageCode.ECS17b`,
# `AlertCode.CLOCK_ADJUSTED`) instead of retyping numbers. Both are derived from the tables, never
# written a second time.

def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _message_code_names() -> dict[str, int]:
    """Use-case ids with the spec's spelling ("ECS17b", "CS03A1", "FDA_DLMS"); a use case with several
    message codes (CS02b, CS02g) contributes one name per mode (its first alias)."""
    names: dict[str, int] = {}
    for code, uc in MESSAGE_CODES.items():
        if uc.use_case.lower() in _SHARED_NAMES:
            alias = next(a for a, c in _ALIASES.items() if c == code)
            names[_identifier(alias)] = code
        else:
            names[_identifier(uc.use_case)] = code
    return names


def _alert_code_names() -> dict[str, int]:
    """Appendix B alert names as identifiers ("Clock adjusted" -> CLOCK_ADJUSTED). The bracketed
    qualifier is dropped unless two alerts would then share a name ("Clock not adjusted (outside
    tolerance)" -> CLOCK_NOT_ADJUSTED_OUTSIDE_TOLERANCE)."""
    short = {code: _identifier(re.sub(r"\(.*?\)", "", name)).upper() for code, name in ALERT_CODES.items()}
    seen: dict[str, int] = {}
    for name in short.values():
        seen[name] = seen.get(name, 0) + 1
    names: dict[str, int] = {}
    for code, name in short.items():
        if seen[name] > 1:
            name = _identifier(ALERT_CODES[code]).upper()
        if name in names:  # still ambiguous: the code tells them apart
            name = f"{name}_{code:04X}"
        names[name] = code
    return names


_ENUMS = {
    "MessageCode": (_message_code_names, "GBCS message codes by use case (`MessageCode.ECS17b == 0x0027`), from the use-case table."),
    "AlertCode": (_alert_code_names, "GBCS alert codes by their Appendix B names (`AlertCode.CLOCK_ADJUSTED == 0x8145`)."),
}


def __getattr__(name: str):
    """`MessageCode` and `AlertCode`, made when first imported: their ~450 members cost ~10 ms,
    which `gbhub decode` (the catalogue's tables only) does not pay."""
    made = _ENUMS.get(name)
    if made is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    enum = IntEnum(name, made[0](), module=__name__)
    enum.__doc__ = made[1]
    globals()[name] = enum
    return enum
