"""Every hand-tuned path against its general reference, on valid and on mutated input.

The hot paths of the emulated devices bypass the general codecs (fixed offsets, templates, memos,
slot setters instead of dataclass __init__). Each one must give what the general path gives
wherever the general path accepts the input, and step aside (or fail the same way) elsewhere:

| fast path | reference |
|---|---|
| `gbcs.frame.peek_header` (routing by header) | `gbcs.frame.decode` |
| DLMS leaf and recurring-subtree memos (also taken inline by structures), protection-parameters template (`gbcs.dlms`) | the decoder with memos and template off |
| `gbcs.dlms.frozen` encodings, the protection-parameters template writer | fresh trees' general encoding |
| `gbcs.hgrp.transfer_data_frame` / `recognise_transfer_data` | `encode_tunnel_command` / `decode_tunnel_frame`, and `gbcs.zcl.decode_zcl` |
| `gbcs.hgrp`'s typed tunnel commands | `gbcs.zcl`'s command layout table |
| `Message.__init__` through slot setters, `_copy` (`signed`, `with_mac`, `with_apdu`) | the dataclass fields |
| `AccessResponse.answer` / decoded APDUs through slot setters | the dataclass constructors |
| `SecretCache` by key objects | a plain ECDH exchange |
| `decrypt_part` by AESGCM | `Cipher` GCM (tests/test_frame.py) |
| `gbcs.frame.check_message` (the CHF's structural check) | `gbcs.frame.decode_message` |
| `gbcs.usecases.common.protected_get` by template, `ProtectionParameters.gbcs_encoding` | the general encoder |
| `gbcs.zcl.decode_payload` without the re-encoding guard for round-trip layouts (`_round_trips`) | the re-encoding |

Other reference checks live beside their codecs: tests/test_dlms.py (protection parameters read by
template, also mutated), tests/test_han.py (TransferData on valid frames), tests/test_frame.py
(AESGCM part decryption, any flipped byte refused), tests/test_json_fast.py (JSON shortcuts and
`gbcs.dlms.json_fragments`), tests/test_frozen_dataclass.py (`frozen_dataclass`, its __init__
compiled on first construction).
"""
from __future__ import annotations

import dataclasses
import inspect
from contextlib import contextmanager

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbcs import dlms
from gbcs.codec import DecodeError
from gbcs.dlms import (
    AccessRequest,
    AccessResponse,
    Data,
    ProtectionParameters,
    RequestKind,
    RequestSpec,
    ResponseSpec,
    decode_apdu,
    decode_data,
    frozen,
)
from gbcs.frame import CRA, GbtBlock, Message, _copy, check_message, decode, decode_message, peek_header, segment
from gbcs.hgrp import (
    AckTransferData,
    CloseTunnel,
    GetSupportedTunnelProtocols,
    ReadyData,
    RequestTunnel,
    RequestTunnelResponse,
    SupportedTunnelProtocolsResponse,
    TransferData,
    TransferDataError,
    TunnelClosureNotification,
    decode_tunnel_frame,
    encode_tunnel_command,
    recognise_transfer_data,
    transfer_data_frame,
)
from gbcs.obis import OBIS
from gbcs.security import SecretCache
from gbcs.usecases.common import _protected_get, protected_get
from gbcs.zcl import Cluster, Direction, decode_zcl

_eui = st.binary(min_size=8, max_size=8)


def _mutate(raw: bytes, data) -> bytes:
    """One flipped bit, inserted byte, deleted byte or cut tail, drawn by hypothesis."""
    out = bytearray(raw)
    at = data.draw(st.integers(0, len(out)))
    op = data.draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
    if op == "flip" and at < len(out):
        out[at] ^= 1 << data.draw(st.integers(0, 7))
    elif op == "insert":
        out[at:at] = bytes((data.draw(st.integers(0, 255)),))
    elif op == "delete" and at < len(out):
        del out[at]
    elif op == "cut":
        del out[at:]
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# peek_header against decode
# ---------------------------------------------------------------------------------------------


@st.composite
def messages(draw) -> Message:
    signature = draw(st.one_of(st.none(), st.just(b""), st.binary(min_size=64, max_size=64)))
    mac = draw(st.one_of(st.none(), st.binary(min_size=12, max_size=12)))
    if mac is not None and signature is None:
        signature = b""  # a MACed message always has its signature field
    rp_id = draw(st.one_of(st.none(), _eui))
    rp_counter = None if rp_id is None else draw(st.integers(0, 2**64 - 1))
    return Message(
        draw(st.sampled_from(list(CRA))), draw(st.integers(0, 2**64 - 1)), draw(_eui), draw(_eui),
        draw(st.integers(0, 0xFFFF)), draw(st.binary(max_size=400)),
        draw(st.one_of(st.none(), st.binary(min_size=12, max_size=12))), rp_id, rp_counter,
        signature=signature, mac=mac,
    )


def _header_of(decoded: "Message | GbtBlock") -> tuple:
    final = decoded.last if isinstance(decoded, GbtBlock) else True
    return decoded.cra, decoded.originator_counter, decoded.originator, decoded.recipient, final


def _check_peek(raw: bytes) -> None:
    """peek_header never raises, and agrees with the general decoder wherever that accepts."""
    peeked = peek_header(raw)
    try:
        decoded = decode(raw)
    except DecodeError:
        return
    assert peeked == _header_of(decoded)


@settings(max_examples=300, deadline=None)
@given(messages(), st.integers(1, 300))
def test_peek_header_reads_what_decode_reads(message, block_size):
    raw = message.encode()
    assert peek_header(raw) == _header_of(decode(raw))
    for block in segment(raw, block_size):
        assert peek_header(block.encode()) == _header_of(block)


@settings(max_examples=500, deadline=None)
@given(messages(), st.integers(1, 300), st.data())
def test_peek_header_on_mutated_frames(message, block_size, data):
    raw = message.encode()
    blocks = segment(raw, block_size)
    target = data.draw(st.sampled_from([raw] + [b.encode() for b in blocks]))
    _check_peek(_mutate(target, data))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([b"", b"\xdd", b"\xdd\x00", b"\xdd\x09", b"\xdf"]), st.binary(max_size=80))
def test_peek_header_on_random_bytes(head, tail):
    _check_peek(head + tail)


def test_peek_header_on_every_rtds_vector(rtds):
    for row in rtds:
        assert peek_header(row["bytes"]) == _header_of(decode(row["bytes"])), row["file"]


# ---------------------------------------------------------------------------------------------
# DLMS: leaf and subtree memos, protection-parameters template, frozen encodings
# ---------------------------------------------------------------------------------------------


class _Forgetful(dict):
    """A memo that never remembers: every node is then built by the plain decoder."""

    def __setitem__(self, key, value) -> None:
        pass


@contextmanager
def plain_dlms_decoder():
    """gbcs.dlms without its decode memos and without the protection-parameters template."""
    saved = dlms._LEAVES, dlms._SUBTREES, dlms._GBCS_PARAMETERS_HEAD
    dlms._LEAVES, dlms._SUBTREES = _Forgetful(), _Forgetful()
    dlms._GBCS_PARAMETERS_HEAD = b"\xff" * len(saved[2])  # never matches
    try:
        yield
    finally:
        dlms._LEAVES, dlms._SUBTREES, dlms._GBCS_PARAMETERS_HEAD = saved


def _decode_or_error(decoder, raw):
    try:
        return decoder(raw)
    except DecodeError as exc:
        return ("error", str(exc))


def _plain(decoder, raw):
    with plain_dlms_decoder():
        return _decode_or_error(decoder, raw)


# Few distinct small values, so that many trees share the memo's 6-byte probe prefixes.
_small_leaf = st.one_of(
    st.integers(0, 2).map(Data.unsigned),
    st.integers(0, 2).map(Data.enum),
    st.integers(0, 2).map(Data.long_unsigned),
    st.binary(max_size=3).map(Data.octet_string),
    st.binary(min_size=8, max_size=8).map(Data.octet_string),
    st.just(Data.null()),
    st.booleans().map(Data.boolean),
    st.text(alphabet="01", max_size=10).map(Data.bit_string),
)
_small_trees = st.recursive(
    _small_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda xs: Data.structure(*xs)),
        st.lists(children, max_size=4).map(lambda xs: Data.array(*xs)),
    ),
    max_leaves=12,
)
_parameters = st.builds(
    lambda c, o, r: ProtectionParameters.build(c, o, r).to_data(), st.integers(0, 2**64 - 1), _eui, _eui
)
_trees = st.one_of(_small_trees, _parameters, st.builds(lambda p, t: Data.structure(p, t), _parameters, _small_trees))


@settings(max_examples=300, deadline=None)
@given(st.lists(_trees, min_size=1, max_size=8))
def test_dlms_memos_decode_like_the_plain_decoder(trees):
    """Decoded one after the other (memos warm with look-alike subtrees), every tree comes back
    equal to itself and to the plain decoder's tree, and re-encodes to the same bytes."""
    for tree in trees:
        raw = tree.encode()
        fast = decode_data(raw)
        assert fast == tree == _plain(decode_data, raw)
        assert fast.encode() == raw


@settings(max_examples=500, deadline=None)
@given(st.lists(_trees, min_size=1, max_size=4), st.data())
def test_dlms_memos_on_mutated_input(trees, data):
    for tree in trees:  # warm the memos with the unmutated trees
        decode_data(tree.encode())
    raw = _mutate(data.draw(st.sampled_from(trees)).encode(), data)
    fast = _decode_or_error(decode_data, raw)
    assert fast == _plain(decode_data, raw)
    if not isinstance(fast, tuple):
        assert fast.encode() == raw


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1), st.lists(st.tuples(_small_trees, _small_trees), max_size=3), st.data())
def test_dlms_apdus_decode_like_the_plain_decoder(counter, pairs, data):
    """The same through whole APDUs (request and response), mutated or not."""
    specs = [RequestSpec.set(1, bytes(6), 2) for _ in pairs]
    request = AccessRequest.build(counter, specs, [p[0] for p in pairs])
    response = AccessResponse.build(counter, [p[1] for p in pairs], [ResponseSpec.set() for _ in pairs])
    for apdu in (request, response):
        raw = apdu.encode()
        assert decode_apdu(raw) == apdu == _plain(decode_apdu, raw)
        mutated = _mutate(raw, data)
        assert _decode_or_error(decode_apdu, mutated) == _plain(decode_apdu, mutated)


@settings(max_examples=300, deadline=None)
@given(_small_trees, _small_trees)
def test_frozen_encodes_like_the_fresh_tree(tree, other):
    before = tree._raw
    kept = frozen(tree)
    assert tree._raw is before  # the argument is left as it was
    assert kept == tree and kept.encode() == tree.encode()
    assert Data.structure(kept, other).encode() == Data.structure(tree, other).encode()
    assert Data.array(other, kept).encode() == Data.array(other, tree).encode()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), _eui, _eui)
def test_protection_parameters_template_writes_the_general_encoding(counter, originator, recipient):
    written = ProtectionParameters.build(counter, originator, recipient).to_data()
    fresh = Data.structure(Data.enum(2), Data.structure(
        Data.octet_string(b"\x04" + counter.to_bytes(8, "big")), Data.octet_string(originator),
        Data.octet_string(recipient), Data.octet_string(b""),
        Data.structure(Data.enum(2), Data.structure(Data.octet_string(b"\x02"), Data.octet_string(b"")))))
    assert written == fresh and written.encode() == fresh.encode()


# ---------------------------------------------------------------------------------------------
# GB-HGRP TransferData against the general ZCL tunnel codec
# ---------------------------------------------------------------------------------------------


def _check_transfer_data(raw: bytes, direction: Direction) -> None:
    """recognise_transfer_data takes exactly the usual-header TransferData frames the general
    codec decodes in `direction`, as the same command."""
    fast = recognise_transfer_data(raw, direction)
    try:
        general = decode_tunnel_frame(raw)
    except DecodeError:
        assert fast is None
        return
    header = general.header
    usual = (type(general.command) is TransferData and header.direction == direction
             and header.disable_default_response and header.manufacturer_code is None)
    assert fast == (general.command if usual else None)
    if fast is not None:  # and the ZCL layout table reads the same fields
        zcl = decode_zcl(raw, Cluster.TUNNELING, strict=True)
        assert zcl.header.direction == direction
        assert zcl.payload.fields == (("tunnel_id", fast.tunnel_id), ("data", fast.data))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(Direction)), st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=64),
       st.booleans(), st.data())
def test_transfer_data_fast_path_on_mutated_frames(direction, sequence, tunnel_id, data, ddr, draw):
    raw = encode_tunnel_command(TransferData(tunnel_id, data), direction, sequence, disable_default_response=ddr)
    if ddr:
        assert transfer_data_frame(direction, sequence, tunnel_id, data) == raw
    mutated = _mutate(raw, draw)
    for d in Direction:
        _check_transfer_data(mutated, d)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=12))
def test_transfer_data_fast_path_on_random_bytes(raw):
    for d in Direction:
        _check_transfer_data(raw, d)


def _wire_values(command) -> tuple:
    """A tunnel command's field values in wire order (the count of a repeated group included)."""
    if isinstance(command, SupportedTunnelProtocolsResponse):
        return command.protocol_list_complete, len(command.protocols), command.protocols
    return dataclasses.astuple(command)


def _zcl_values(fields) -> tuple:
    return tuple(tuple(tuple(v for _, v in group) for group in value) if isinstance(value, tuple) else value
                 for _, value in fields)


_u16 = st.integers(0, 0xFFFF)
_tunnel_commands = st.one_of(
    st.tuples(st.builds(RequestTunnel, st.integers(0, 255), _u16, st.booleans(), _u16), st.just(Direction.CLIENT_TO_SERVER)),
    st.tuples(st.builds(RequestTunnelResponse, _u16, st.integers(0, 255), _u16), st.just(Direction.SERVER_TO_CLIENT)),
    st.tuples(st.builds(CloseTunnel, _u16), st.just(Direction.CLIENT_TO_SERVER)),
    st.tuples(st.builds(TunnelClosureNotification, _u16), st.just(Direction.SERVER_TO_CLIENT)),
    st.tuples(st.builds(GetSupportedTunnelProtocols, st.integers(0, 255)), st.just(Direction.CLIENT_TO_SERVER)),
    st.tuples(st.builds(SupportedTunnelProtocolsResponse, st.booleans(),
                        st.lists(st.tuples(_u16, st.integers(0, 255)), max_size=4).map(tuple)),
              st.just(Direction.SERVER_TO_CLIENT)),
    st.tuples(st.one_of(st.builds(TransferData, _u16, st.binary(max_size=40)),
                        st.builds(TransferDataError, _u16, st.integers(0, 255)),
                        st.builds(AckTransferData, _u16, _u16), st.builds(ReadyData, _u16, _u16)),
              st.sampled_from(list(Direction))),
)


@settings(max_examples=300, deadline=None)
@given(_tunnel_commands, st.integers(0, 255))
def test_tunnel_commands_read_alike_by_the_zcl_layout_table(pair, sequence):
    """gbcs.hgrp's typed commands and gbcs.zcl's layout table describe the same wire format."""
    command, direction = pair
    raw = encode_tunnel_command(command, direction, sequence)
    zcl = decode_zcl(raw, Cluster.TUNNELING, strict=True)
    assert zcl.header == decode_tunnel_frame(raw).header and zcl.encode() == raw
    assert zcl.payload.name.removesuffix("Server") == type(command).__name__
    assert _zcl_values(zcl.payload.fields) == _wire_values(command)


# ---------------------------------------------------------------------------------------------
# Objects built through slot setters against their dataclass fields
# ---------------------------------------------------------------------------------------------


def _fields(obj) -> dict:
    """Every field's value, compare=False ones included (an unset slot raises here)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def test_message_init_has_the_dataclass_signature():
    init = [f for f in dataclasses.fields(Message) if f.init]
    params = list(inspect.signature(Message.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in init]
    empty = inspect.Parameter.empty
    assert [p.default for p in params] == [empty if f.default is dataclasses.MISSING else f.default for f in init]


# The dataclass Message would be without its hand-written __init__: the reference.
_ReferenceMessage = dataclasses.make_dataclass(
    "_ReferenceMessage",
    [(f.name, object) if f.default is dataclasses.MISSING else (f.name, object, dataclasses.field(default=f.default))
     for f in dataclasses.fields(Message) if f.init],
    frozen=True,
)


@settings(max_examples=300, deadline=None)
@given(messages(), st.binary(min_size=64, max_size=64), st.binary(min_size=12, max_size=12))
def test_message_slots_hold_what_the_dataclass_would(message, signature, mac):
    args = [getattr(message, f.name) for f in dataclasses.fields(_ReferenceMessage)]
    for built in (Message(*args), Message(**dict(zip(_fields(_ReferenceMessage(*args)), args)))):
        assert {k: v for k, v in _fields(built).items() if k != "_apdu"} == _fields(_ReferenceMessage(*args))
        assert built._apdu == b"" and built == message
    assert _copy(message) == message and _fields(_copy(message)) == {**_fields(message), "_apdu": b""}
    assert message.signed(signature) == dataclasses.replace(message, signature=signature)
    assert message.with_mac(mac) == dataclasses.replace(message, mac=mac)
    fresh = _copy(message)
    kept = fresh.with_apdu()  # memoises the encoding on the message itself: it stays equal
    assert kept is fresh and kept == message and kept._apdu == message.general_signing()
    assert kept.encode() == message.encode()
    assert _fields(decode(message.encode())) == {**_fields(message), "_apdu": message.general_signing()}


_specs = st.builds(RequestSpec, st.sampled_from([RequestKind.GET, RequestKind.SET, RequestKind.ACTION]),
                   st.integers(0, 0xFFFF), st.binary(min_size=6, max_size=6), st.integers(0, 255))
_datetimes = st.one_of(st.none(), st.binary(min_size=12, max_size=12))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1), st.lists(st.tuples(_specs, _small_trees, st.integers(0, 255)), max_size=4),
       _datetimes, st.booleans())
def test_apdus_built_by_slot_setters_hold_what_the_constructors_would(counter, rows, date_time, renumber):
    specs = [r[0] for r in rows]
    request = AccessRequest.build(counter, specs, [r[1] for r in rows])
    data = [r[1] for r in rows]
    codes = [r[2] for r in rows]
    answer = AccessResponse.answer(request, data, codes, counter=counter + 1 if renumber else None, date_time=date_time)
    kinds = {RequestKind.GET: ResponseSpec.get, RequestKind.SET: ResponseSpec.set, RequestKind.ACTION: ResponseSpec.action}
    reference = AccessResponse(dlms.invoke_id_for(counter + 1) if renumber else request.invoke_id, tuple(data),
                               tuple(kinds[s.kind](c) for s, c in zip(specs, codes)), date_time)
    assert _fields(answer) == _fields(reference)
    for spec, ref in zip(answer.results, reference.results):
        assert _fields(spec) == _fields(ref)
    decoded_request = decode_apdu(request.encode())
    assert {k: v for k, v in _fields(decoded_request).items() if k != "_raw"} == \
        {k: v for k, v in _fields(request).items() if k != "_raw"}
    decoded = decode_apdu(reference.encode())
    assert {k: v for k, v in _fields(decoded).items() if k != "_raw"} == \
        {k: v for k, v in _fields(reference).items() if k != "_raw"}


# ---------------------------------------------------------------------------------------------
# ECDH secrets cached by key objects against a plain exchange
# ---------------------------------------------------------------------------------------------

_KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]


def _fresh_public(key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePublicKey:
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.booleans()), min_size=1, max_size=12),
       st.integers(1, 4))
def test_secret_cache_gives_the_plain_exchange(calls, max_entries):
    cache = SecretCache(max_entries=max_entries)
    publics = [k.public_key() for k in _KEYS]
    for i, j, fresh in calls:
        public = _fresh_public(_KEYS[j]) if fresh else publics[j]
        assert cache.secret(_KEYS[i], public) == _KEYS[i].exchange(ec.ECDH(), publics[j])


# ---------------------------------------------------------------------------------------------
# The CHF's structural check against the decoder
# ---------------------------------------------------------------------------------------------


def _check_or_error(raw: bytes):
    try:
        check_message(raw)
    except DecodeError as exc:
        return ("error", str(exc), exc.offset, exc.field)
    return None


def _decode_message_or_error(raw: bytes):
    try:
        decode_message(raw)
    except DecodeError as exc:
        return ("error", str(exc), exc.offset, exc.field)
    return None


@settings(max_examples=500, deadline=None)
@given(messages(), st.data())
def test_check_message_fails_where_decode_message_fails(message, data):
    """check_message accepts exactly what decode_message decodes, and refuses the rest with the
    same error (message, offset, field)."""
    raw = message.encode()
    assert _check_or_error(raw) is None
    mutated = _mutate(raw, data)
    assert _check_or_error(mutated) == _decode_message_or_error(mutated)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"", b"\xdd", b"\xdd\x00\x00\x00\x00\x00\x00", b"\xdd\x09", b"\xdf", b"\xdf\x09\x01"]),
       st.binary(max_size=80))
def test_check_message_on_random_bytes(head, tail):
    assert _check_or_error(head + tail) == _decode_message_or_error(head + tail)


# ---------------------------------------------------------------------------------------------
# Get Protected Attributes written by template against the general encoder
# ---------------------------------------------------------------------------------------------

_object_refs = st.lists(st.tuples(st.sampled_from([OBIS.IMPORT_ENERGY_REGISTERS, OBIS.ACTIVE_IMPORT_REGISTER, OBIS.UTC_TIME]),
                                  st.integers(1, 20), st.integers(0, 2), _small_trees), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1), _object_refs, _eui, _eui)
def test_protected_get_template_writes_the_general_encoding(counter, objects, originator, recipient):
    objects = tuple(objects)
    protection = OBIS.ENERGY_REGISTERS_PROTECTION
    written = protected_get(counter, protection, objects, originator, recipient)
    assert written == _protected_get(counter, protection, objects, originator, recipient)
    request = decode_apdu(written)
    assert request.invoke_id == dlms.invoke_id_for(counter)
    assert ProtectionParameters.gbcs_encoding(counter, originator, recipient) == \
        ProtectionParameters.build(counter, originator, recipient).to_data().encode()


# --- ZCL cluster commands whose layout round-trips skip the re-encoding guard -----------------

from gbcs import zcl as _zcl  # noqa: E402

_ROUND_TRIP_LAYOUTS = sorted(k for k, (_, spec) in _zcl.COMMANDS.items() if _zcl._round_trips(spec))


def _layout_bytes(draw, spec: tuple, depth: int = 0, chosen: dict | None = None) -> bytes:
    """Bytes shaped like `spec` (so most of them decode), with any value in each field; a Switch
    selector often takes one of its case values, so every case gets read."""
    chosen = {} if chosen is None else chosen
    selectors = {item.selector: list(item.cases) for item in spec if type(item) is _zcl.Switch}
    out = b""
    for item in spec:
        if item is _zcl.OPTIONAL:
            if draw(st.booleans()):
                return out
            continue
        if type(item) is _zcl.Rep:
            groups = draw(st.integers(0, 3))
            out += b"".join(_layout_bytes(draw, item.fields, depth + 1) for _ in range(groups))
            continue
        if type(item) is _zcl.Switch:
            out += _layout_bytes(draw, item.cases.get(chosen.get(item.selector), item.default), depth, chosen)
            continue
        name, type_id = item
        kind, size = _zcl.DATA_TYPES.get(type_id, ("rest", None))
        if type_id == _zcl.REST:
            out += draw(st.binary(max_size=8))
        elif size is not None:
            if name in selectors and draw(st.booleans()):
                value = draw(st.sampled_from(selectors[name]))
                raw = value.to_bytes(size, "little")
            else:
                raw = draw(st.binary(min_size=size, max_size=size))
            chosen[name] = int.from_bytes(raw, "little")
            out += raw
        elif kind in ("octets", "string"):
            body = draw(st.one_of(st.binary(max_size=6), st.text(max_size=4).map(lambda t: t.encode()), st.just(None)))
            out += b"\xff" if body is None else bytes((len(body),)) + body
        else:
            body = draw(st.one_of(st.binary(max_size=6), st.just(None)))
            out += b"\xff\xff" if body is None else len(body).to_bytes(2, "little") + body
    return out


def test_round_trip_layouts_exclude_what_may_not_round_trip():
    assert len(_ROUND_TRIP_LAYOUTS) > 100  # nearly every layout: the guard is skipped for them
    names = {_zcl.COMMANDS[k][0] for k in _ROUND_TRIP_LAYOUTS}
    assert {"PublishSnapshot", "PublishPrepaySnapshot", "ImageBlockResponse"} <= names  # Switch layouts
    U8, Switch, OPTIONAL = _zcl.U8, _zcl.Switch, _zcl.OPTIONAL
    case = {1: (("b", U8),)}
    refused = {
        "optional Switch": (("s", U8), OPTIONAL, ("a", U8), Switch("s", case)),
        "selector read after the Switch": (Switch("s", case), ("s", U8)),
        "selector unknown": (("a", U8), Switch("s", case)),
        "two Switches": (("s", U8), Switch("s", case), Switch("s", {2: (("c", U8),)})),
        "a case name met at the level": (("s", U8), Switch("s", case), ("b", U8)),
        "a case name met earlier": (("s", U8), ("b", U8), Switch("s", case)),
        "default name met at the level": (("s", U8), ("b", U8), Switch("s", {}, default=(("b", U8),))),
        "nested selector read after": (("s", U8), Switch("s", {1: (Switch("t", case),)}), ("t", U8)),
        "duplicate names": (("a", U8), ("a", U8)),
        "unknown type": (("a", 0x07),),
        "array": (("a", 0x48),),
    }
    for why, spec in refused.items():
        assert not _zcl._layout_round_trips(spec), why
    accepted = {
        "Switch": (("s", U8), Switch("s", case)),
        "Switch then optional tail": (("s", U8), Switch("s", case), OPTIONAL, ("c", U8)),
        "nested Switch": (("s", U8), ("t", U8), Switch("s", {1: (Switch("t", case),)})),
        "date, time of day, float": (("d", _zcl.DATE), ("t", 0xE0), ("f", 0x39)),
    }
    for why, spec in accepted.items():
        assert _zcl._layout_round_trips(spec), why


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_ROUND_TRIP_LAYOUTS), st.data())
def test_round_trip_layouts_re_encode_what_they_decode(key, data):
    cluster_id, s2c, command_id = key
    spec = _zcl.COMMANDS[key][1]
    raw = data.draw(st.one_of(st.none(), st.binary(max_size=40)))
    if raw is None:
        raw = _layout_bytes(data.draw, spec)
        raw += data.draw(st.binary(max_size=3))  # trailing bytes beyond the layout, or none
        if data.draw(st.booleans()) and raw:
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]  # cut short anywhere
    direction = _zcl.Direction.SERVER_TO_CLIENT if s2c else _zcl.Direction.CLIENT_TO_SERVER
    header = _zcl.ZclHeader(_zcl.FrameType.CLUSTER, command_id, 0, direction)
    payload = _zcl.decode_payload(header, cluster_id, raw)
    if type(payload) is _zcl.ClusterCommand:  # the guard was skipped: it would have passed
        assert payload.encode() == raw
    else:  # not the layout: what the guarded path gives too
        assert type(payload) is _zcl.RawPayload and payload.data == raw
