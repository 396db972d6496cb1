"""gbcs.utrn: 20-digit prepayment top-up tokens, vended and checked with the RTDS test keys."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbcs import catalogue as cat
from gbcs.codec import DecodeError, EncodeError
from gbcs.frame import decode_message
from gbcs.utrn import (
    UTRN_BASE,
    Utrn,
    UtrnCounterCache,
    UtrnError,
    UtrnStatus,
    ValueClass,
    check_digit,
    decode_utrn,
    generate_utrn,
    originator_counter,
    validate_utrn,
    verify_utrn,
)

SUPPLIER, ESME, GSME = cat.RTDS_SUPPLIER, cat.RTDS_ESME, cat.RTDS_GSME


@pytest.fixture(scope="module")
def keys(rtds_keystore):
    ks = rtds_keystore
    out = {
        "supplier_pp": ks.private_key(SUPPLIER, "pp-ka"),
        "supplier_pp_pub": ks.public_key(SUPPLIER, "pp-ka"),
        "esme": ks.private_key(ESME, "ka"),
        "esme_pub": ks.public_key(ESME, "ka"),
        "gsme_pub": ks.public_key(GSME, "ka"),
    }
    if any(v is None for v in out.values()):
        pytest.skip("RTDS keystore lacks the supplier pp-ka or ESME KA keys")
    return out


def vend(keys, counter, value, value_class=ValueClass.PENNIES, device=ESME, device_pub="esme_pub"):
    return generate_utrn(value=value, value_class=value_class, utrn_counter=counter, supplier=SUPPLIER,
                         device=device, private_key=keys["supplier_pp"], public_key=keys[device_pub])


def at_esme(keys, utrn, cache, **kw):
    return validate_utrn(utrn, supplier=SUPPLIER, device=ESME, private_key=keys["esme"],
                         public_key=keys["supplier_pp_pub"], cache=cache, **kw)


# -- known answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "counter, value, value_class, pptd, utrn",
    [
        # answers published in SmartDCCInnovation/gbcs-parser test/utrn.test.ts (same RTDS keys)
        (1, 100, ValueClass.POUNDS, 7394333345718904331, "73943333457189043313"),
        (4, 1234, ValueClass.PENNIES, 7394725241674520163, "73947252416745201637"),
        (1, 8191, ValueClass.POUNDS, 7394368095646343255, None),
    ],
)
def test_known_answers(keys, counter, value, value_class, pptd, utrn):
    token = vend(keys, counter, value, value_class)
    assert token.pptd == pptd
    assert token.pptd - UTRN_BASE == token.ptut
    if utrn:
        assert token.encode() == utrn == str(token)
        assert decode_utrn(utrn) == token


@pytest.mark.parametrize(
    "digits", ["73943333457189043313", "74301825837596672005", "73946144332040217315", "73947252416745201637"]
)
def test_check_digit(digits):
    assert check_digit(digits[:-1]) == digits[-1]


@pytest.mark.parametrize("bad", ["", "12a4", "１２３", "²"])
def test_check_digit_rejects_non_digits(bad):
    with pytest.raises(ValueError):
        check_digit(bad)


def _rtds_top_ups(rtds, code):
    for row in rtds:
        if int(row["messageCode"], 16) == code and row["cra"] == "Command":
            message = decode_message(row["bytes"])
            found = re.search(rb"[0-9]{20}", message.content)
            assert found, row["file"]
            yield row, message, found.group()


def test_rtds_cs01a_top_ups_validate_at_the_esme(rtds, keys):
    seen = 0
    for row, message, utrn in _rtds_top_ups(rtds, 0x0007):
        assert message.originator == SUPPLIER and message.recipient == ESME
        assert message.originator_counter & 0xFFFFFFFF == 0  # low word zero for top-ups
        token = decode_utrn(utrn)
        assert token.truncated_counter == (message.originator_counter >> 32) & 0x3FF
        assert token.amount_pennies == 1000  # £10
        check = at_esme(keys, utrn, UtrnCounterCache(), target=message.recipient,
                        originator_counter=message.originator_counter)
        assert check.status is UtrnStatus.ACCEPTED, row["file"]
        assert originator_counter(check.utrn_counter) == message.originator_counter
        # the same token typed on the keypad: counter deduced from the cache window
        assert at_esme(keys, utrn, UtrnCounterCache()).accepted
        seen += 1
    assert seen == 2


def test_rtds_cs01b_top_up_verifies_with_the_supplier_side_keys(rtds, keys):
    outcomes = {}
    for row, message, utrn in _rtds_top_ups(rtds, 0x0097):
        assert message.recipient == GSME
        try:
            token = decode_utrn(utrn)
        except UtrnError:
            outcomes[row["file"]] = "malformed"  # the ERROR vector carries "12345678910121314156"
            continue
        ok = verify_utrn(token, utrn_counter=message.originator_counter >> 32, supplier=SUPPLIER, device=GSME,
                         private_key=keys["supplier_pp"], public_key=keys["gsme_pub"])
        outcomes[row["file"]] = ok
        assert token.amount_pennies == 1250
    assert sorted(outcomes.values(), key=str) == [True, "malformed"]


# -- round trips and rejections --------------------------------------------------------------------


def test_generate_validate_round_trip(keys):
    cache = UtrnCounterCache()
    for counter, value in [(7, 500), (8, 1), (12, 8191)]:
        token = vend(keys, counter, value)
        check = at_esme(keys, token.encode(), cache)
        assert check.accepted and check.utrn == token and check.utrn_counter == counter
        assert check.alert_code is None and check.amount_pennies == value
    assert cache.counters() == [7, 8, 12]
    # bytes (as carried in CS01a) and Utrn objects are accepted too
    token = vend(keys, 13, 42, ValueClass.POUNDS)
    assert at_esme(keys, token.encode().encode(), cache).amount_pennies == 4200
    assert at_esme(keys, vend(keys, 14, 1), cache).accepted


def test_tampered_digits_fail(keys):
    utrn = vend(keys, 20, 2000).encode()
    for i in range(len(utrn)):
        for d in "0123456789":
            if d == utrn[i]:
                continue
            bad = utrn[:i] + d + utrn[i + 1 :]
            status = at_esme(keys, bad, UtrnCounterCache([20 - 3]), record=False).status
            assert status is UtrnStatus.MALFORMED, (i, d)  # every single-digit change breaks the check digit
            if i == 19:
                continue
            body = bad[:-1]
            refixed = body + check_digit(body)  # a forger who recomputes the check digit
            status = at_esme(keys, refixed, UtrnCounterCache([20 - 3]), record=False).status
            assert status in (UtrnStatus.NOT_AUTHENTIC, UtrnStatus.MALFORMED), (i, d)


def test_wrong_device(keys):
    for_gsme = vend(keys, 30, 100, device=GSME, device_pub="gsme_pub")
    assert at_esme(keys, for_gsme, UtrnCounterCache()).status is UtrnStatus.NOT_AUTHENTIC
    for_esme = vend(keys, 30, 100)
    check = at_esme(keys, for_esme, UtrnCounterCache(), target=GSME)
    assert check.status is UtrnStatus.NOT_FOR_DEVICE and check.alert_code == 0x8F64


def test_duplicates(keys):
    cache = UtrnCounterCache(size=3)
    token = vend(keys, 40, 100)
    assert at_esme(keys, token, cache).accepted
    again = at_esme(keys, token, cache)
    assert again.status is UtrnStatus.DUPLICATE and again.alert_code == 0x8F51
    assert at_esme(keys, vend(keys, 38, 100), cache).accepted  # older but unused: fine
    assert at_esme(keys, vend(keys, 41, 100), cache).accepted
    assert cache.counters() == [38, 40, 41]
    assert at_esme(keys, vend(keys, 37, 100), cache).status is UtrnStatus.DUPLICATE  # older than a full cache
    assert at_esme(keys, vend(keys, 45, 100), cache, record=False).accepted
    assert cache.counters() == [38, 40, 41]


def test_counter_window(keys):
    # V ± 512 share their low 10 bits, so only one end of the ±512 window exists: V + 512 when the
    # low bits p of V are < 512, V - 512 otherwise (GBCS table 27: "if r < p - 512", "if r > p + 512")
    low = UtrnCounterCache([4 * 1024 + 100])
    assert at_esme(keys, vend(keys, 4 * 1024 + 100 + 512, 1), low, record=False).accepted
    assert at_esme(keys, vend(keys, 4 * 1024 + 100 - 511, 1), low, record=False).accepted
    assert at_esme(keys, vend(keys, 4 * 1024 + 100 - 512, 1), low, record=False).status is UtrnStatus.NOT_AUTHENTIC
    base = 5000  # p = 904
    cache = UtrnCounterCache([base])
    assert at_esme(keys, vend(keys, base - 512, 1), cache, record=False).accepted
    assert at_esme(keys, vend(keys, base + 511, 1), cache, record=False).accepted
    assert at_esme(keys, vend(keys, base + 512, 1), cache, record=False).status is UtrnStatus.NOT_AUTHENTIC
    too_far = at_esme(keys, vend(keys, base + 513, 1), cache, record=False)
    assert too_far.status is UtrnStatus.NOT_AUTHENTIC and too_far.alert_code == 0x8F63
    assert too_far.utrn_counter == base + 513 - 1024
    assert at_esme(keys, vend(keys, base + 2000, 1), cache).status is UtrnStatus.NOT_AUTHENTIC
    # a remote top-up names its counter, so the window does not apply
    far = vend(keys, base + 2000, 1)
    assert at_esme(keys, far, cache, originator_counter=originator_counter(base + 2000)).accepted
    assert at_esme(keys, vend(keys, 9, 1), cache, originator_counter=(9 << 32) | 1).status is UtrnStatus.NOT_AUTHENTIC
    assert at_esme(keys, vend(keys, 9, 1), cache, originator_counter=10 << 32).status is UtrnStatus.NOT_AUTHENTIC


def test_deduce_follows_gbcs_table_27():
    # V = 2,458,896,167 cached, truncated counter 812 → UTRN counter 2,458,896,172
    assert UtrnCounterCache([2_458_896_167]).deduce(812) == 2_458_896_172
    cache = UtrnCounterCache([1024 * 10 + 1000])  # p = 1000
    assert cache.deduce(487) == 1024 * 11 + 487  # r < p - 512 → next block
    assert cache.deduce(488) == 1024 * 10 + 488  # r = p - 512 → same block
    cache = UtrnCounterCache([1024 * 10 + 5])  # p = 5
    assert cache.deduce(518) == 1024 * 9 + 518  # r > p + 512 → previous block
    assert cache.deduce(517) == 1024 * 10 + 517
    assert UtrnCounterCache().deduce(900) == 900  # empty cache: no negative counters
    assert UtrnCounterCache([0xFFFFFFFF]).deduce(0) is None  # would pass 2^32 - 1
    assert UtrnCounterCache().deduce(1024) is None


def test_cache_persistence_and_limits():
    cache = UtrnCounterCache([5, 1, 9, 3], size=3)
    assert cache.counters() == [3, 5, 9] and cache.highest == 9 and len(cache) == 3 and 5 in cache
    assert UtrnCounterCache(cache.counters(), size=3).counters() == cache.counters()
    cache.record(9)
    assert cache.counters() == [3, 5, 9]
    with pytest.raises(ValueError):
        cache.record(-1)
    with pytest.raises(ValueError):
        UtrnCounterCache(size=0)
    assert UtrnCounterCache().highest is None


def test_build_limits(keys):
    with pytest.raises(EncodeError):
        vend(keys, 1, 8192)
    with pytest.raises(EncodeError):
        vend(keys, 1, -1)
    with pytest.raises(EncodeError):
        vend(keys, 1 << 32, 1)
    with pytest.raises(EncodeError):
        Utrn(1024, ValueClass.PENNIES, 1, bytes(4))
    with pytest.raises(EncodeError):
        Utrn(1, 2, 1, bytes(4))
    with pytest.raises(EncodeError):
        Utrn(1, ValueClass.PENNIES, 1, bytes(3))
    assert Utrn(1, 1, 1, bytes(4)).value_class is ValueClass.POUNDS
    assert originator_counter(3) == 0x0000000300000000
    with pytest.raises(EncodeError):
        originator_counter(-1)


def test_decode_errors_name_the_place():
    good = "73943333457189043313"
    cases = {
        "": 0, good[:19]: 19, good + "0": 20, good[:5] + "x" + good[6:]: 5, " " + good[1:]: 0,
        good[:-1] + str((int(good[-1]) + 1) % 10): 19,
        "00000000000000000000": None,  # below the class-5 offset (check digit fixed up below)
    }
    for text, offset in cases.items():
        if offset is None:
            text = text[:-1] + check_digit(text[:-1])
        with pytest.raises(UtrnError) as err:
            decode_utrn(text)
        assert isinstance(err.value, DecodeError) and isinstance(err.value, ValueError)
        if offset is not None:
            assert err.value.offset == offset, text
    with pytest.raises(UtrnError):
        decode_utrn(b"7394333345718904331\xff")
    with pytest.raises(UtrnError):
        decode_utrn(12345)  # type: ignore[arg-type]
    # reserved value class 2: build the digits by hand
    ptut = ((1 << 15) | (2 << 13) | 5) << 32
    body = str(UTRN_BASE + ptut)
    with pytest.raises(UtrnError) as err:
        decode_utrn(body + check_digit(body))
    assert err.value.field == "value_class"
    assert decode_utrn(good).grouped() == "7394 3333 4571 8904 3313"


# -- hypothesis: the parser of outside input ------------------------------------------------------

_GOOD = "73943333457189043313"


def _only_utrn_error(value):
    try:
        token = decode_utrn(value)
    except UtrnError:
        return None
    return token


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=30), st.text(alphabet="0123456789", min_size=18, max_size=22)))
def test_decode_text_only_raises_utrn_error(text):
    token = _only_utrn_error(text)
    if token is not None:
        assert token.encode() == text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=30))
def test_decode_bytes_only_raises_utrn_error(data):
    token = _only_utrn_error(data)
    if token is not None:
        assert token.encode().encode() == data


@settings(max_examples=400, deadline=None)
@given(st.from_regex(r"\A[0-9]{19}\Z"))
def test_any_19_digits_with_their_check_digit(body):
    text = body + check_digit(body)
    token = _only_utrn_error(text)
    if token is not None:
        assert token.encode() == text and decode_utrn(token.encode()) == token
    else:
        ptut = int(body) - UTRN_BASE
        assert not 0 <= ptut < 1 << 57 or (ptut >> 45) & 3 > 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 19), st.characters()), min_size=1, max_size=4))
def test_mutated_utrn(edits):
    chars = list(_GOOD)
    for pos, ch in edits:
        chars[pos] = ch
    text = "".join(chars)
    token = _only_utrn_error(text)
    assert token is None or token.encode() == text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counter=st.integers(0, 0xFFFFFFFF), value=st.integers(0, 8191), pounds=st.booleans())
def test_generated_tokens_round_trip(keys, counter, value, pounds):
    token = vend(keys, counter, value, ValueClass.POUNDS if pounds else ValueClass.PENNIES)
    text = token.encode()
    assert len(text) == 20 and decode_utrn(text) == token
    assert verify_utrn(token, utrn_counter=counter, supplier=SUPPLIER, device=ESME, private_key=keys["esme"],
                       public_key=keys["supplier_pp_pub"])
    check = at_esme(keys, text, UtrnCounterCache([counter]), record=False)
    assert check.status is UtrnStatus.DUPLICATE and check.utrn_counter == counter
