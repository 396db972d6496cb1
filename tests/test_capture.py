"""HAN capture (gbcs/capture.py, han/capture.py): pcap records Wireshark dissects to the ZCL."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gbcs.capture import (
    LINKTYPE_IEEE802_15_4_WITHFCS,
    CaptureError,
    CapturedFrame,
    crc16_kermit,
    frame_bytes,
    parse_frame,
    pcap_header,
    pcap_record,
    read_pcap,
)

_eui = st.binary(min_size=8, max_size=8)
_frames = st.builds(CapturedFrame, _eui, _eui, st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF),
                    st.integers(0, 0xFFFF), st.binary(max_size=120), st.integers(0, 255), st.integers(0, 0xFFFF),
                    st.integers(0, 0xFFFF))


def test_fcs_is_crc16_kermit():
    assert crc16_kermit(b"123456789") == 0x2189  # the catalogue check value of CRC-16/KERMIT


@given(_frames)
def test_a_frame_round_trips(frame):
    assert parse_frame(frame_bytes(frame)) == frame


@given(st.lists(st.tuples(st.integers(0, 2**31), _frames), max_size=5))
def test_a_pcap_round_trips(records):
    data = pcap_header() + b"".join(pcap_record(t, frame_bytes(f)) for t, f in records)
    linktype, read = read_pcap(data)
    assert linktype == LINKTYPE_IEEE802_15_4_WITHFCS
    assert [(int(t), parse_frame(b)) for t, b in read] == [(t, f) for t, f in records]


@given(st.binary(max_size=200))
def test_outside_input_raises_only_capture_error(data):
    for parse in (read_pcap, parse_frame, lambda d: read_pcap(pcap_header() + d)):
        try:
            parse(data)
        except CaptureError:
            pass


def _premises_with_capture(tmp_path, **han):
    from gbhub.tools.premises import Premises
    from gbhub.tools.rig import default_rig

    rig = default_rig(None)
    rig.clock = "sim"
    rig.han_pcap = tmp_path / "han.pcap"
    for k, v in han.items():
        setattr(rig, k, v)
    return rig


@pytest.mark.parametrize("transport", ["virtual", "zigbee"])
async def test_run_captures_the_han(tmp_path, gbhub_identity, transport):
    if transport == "zigbee":
        pytest.importorskip("zigpy")
    from gbhub.tools.premises import Premises

    rig = _premises_with_capture(tmp_path, han=transport, han_radio="virtual")
    p = Premises(rig, tcp=False, sim=True, identity=gbhub_identity)
    await p.start()
    try:
        await p.ihd.poll_now()
        assert (await p.send("ECS17b")).ok
    finally:
        await p.stop()
    _, records = read_pcap(rig.han_pcap.read_bytes())
    frames = [parse_frame(r) for _, r in records]
    assert len(frames) == p.capture.frames > 0
    assert any(f.cluster == 0x0702 and f.src == p.esme.eui and f.dst == p.ihd.eui for f in frames)
    assert any(f.cluster == 0x0704 for f in frames)
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(rig.han_pcap), "-V"], capture_output=True, text=True, timeout=120).stdout
        assert "Cluster: Simple Metering (0x0702)" in out
        assert "Attribute: Current Summation Delivered (0x0000)" in out
        assert "Cluster: Tunneling (0x0704)" in out and "GBCS Message" in out
        assert "ECS17b" in out


def test_gbhub_run_pcap_of_the_demo_premises(tmp_path):
    import sys

    pcap = tmp_path / "han.pcap"
    out = subprocess.run([sys.executable, "-P", "-m", "gbhub", "run", "--pcap", str(pcap), "--data", str(tmp_path / "d"),
                          "--for", "6"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    _, records = read_pcap(pcap.read_bytes())
    frames = [parse_frame(r) for _, r in records]
    assert any(f.cluster == 0x0702 for f in frames)
    if shutil.which("tshark"):
        text = subprocess.run(["tshark", "-r", str(pcap), "-V"], capture_output=True, text=True, timeout=120).stdout
        assert "Attribute: Current Summation Delivered (0x0000)" in text


def test_gbhub_run_pcap_into_a_missing_folder_fails_in_one_line(tmp_path):
    import sys

    out = subprocess.run([sys.executable, "-P", "-m", "gbhub", "run", "--pcap", str(tmp_path / "no" / "han.pcap"),
                          "--data", str(tmp_path / "d"), "--for", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("gbhub run: HAN capture: cannot write")
