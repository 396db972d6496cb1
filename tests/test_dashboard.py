"""The dashboard's HTTP side (tools/dashboard.py) on a real premises (the `premises` fixture) with a
real aiohttp server and client: the token rule, sends and control requests, the bounded live feed,
and bad input (400 with one line, never a traceback; hypothesis for the request parsers)."""
from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request

import pytest
from hypothesis import given, settings, strategies as st

aiohttp = pytest.importorskip("aiohttp", reason="gbhub[web] not installed (pip install aiohttp)")

from gbhub.tools.control import ControlServer  # noqa: E402
from gbhub.tools.dashboard import (  # noqa: E402
    BadRequest, Dashboard, Subscriber, control_request, describe, needs_token, send_request, tunnelled_message)
from gbhub.tools.rig import parse_listen  # noqa: E402

JSON = "application/json"


@pytest.fixture
async def web(premises, tmp_path):
    """The dashboard of the fixture premises on a free loopback port; yields (dashboard, session)."""
    control = ControlServer(tmp_path, premises, asyncio.Event())
    dashboard = Dashboard(premises, control, "127.0.0.1", 0)
    await dashboard.start()
    async with aiohttp.ClientSession(base_url=dashboard.url.rstrip("/")) as session:
        yield dashboard, session
    await dashboard.close()


async def _post(session, path, body, **kw):
    async with session.post(path, data=body if isinstance(body, (str, bytes)) else json.dumps(body),
                            headers={"Content-Type": JSON, **kw.pop("headers", {})}, **kw) as r:
        return r.status, await r.json(content_type=None)


def test_parse_listen():
    assert parse_listen("8080") == ("127.0.0.1", 8080)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert parse_listen("localhost:0") == ("localhost", 0)
    for bad in ("", "x", "65536", "host:", "::1:80", "1.2.3.4:-1", "h:8o"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_rig_key_and_flag(tmp_path):
    import subprocess
    import sys

    from gbhub.tools.rig import RigError, parse_rig

    assert parse_rig({"web": {"listen": "0.0.0.0:8080"}}, tmp_path).web_listen == "0.0.0.0:8080"
    assert parse_rig({"web": {"listen": 8080}}, tmp_path).web_listen == "8080"
    assert parse_rig({}, tmp_path).web_listen is None  # off by default
    for bad in ({"listen": "nope"}, {"listen": True}, {"listen": 70000}, {"port": "8080"}):
        with pytest.raises(RigError, match=r"\[web\]"):
            parse_rig({"web": bad}, tmp_path)
    out = subprocess.run([sys.executable, "-m", "gbhub", "run", "--data", str(tmp_path / "d"), "--web", "host:port"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--web" in out.stderr
    assert not (tmp_path / "d").exists()


def test_token_needed_beyond_loopback(premises, tmp_path):
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert not needs_token(host)
    for host in ("0.0.0.0", "::", "192.0.2.10", "gbhub.example"):
        assert needs_token(host)
    control = ControlServer(tmp_path, premises, asyncio.Event())
    assert Dashboard(premises, control, "127.0.0.1", 0).token is None
    token = Dashboard(premises, control, "0.0.0.0", 0).token
    assert token and len(token) >= 24 and token != Dashboard(premises, control, "0.0.0.0", 0).token


async def test_token_rule(premises, tmp_path):
    """With a token every request without it is 401; `?token=` once sets a cookie that then
    suffices; a bearer header works too; a wrong token is 401."""
    control = ControlServer(tmp_path, premises, asyncio.Event())
    dashboard = Dashboard(premises, control, "127.0.0.1", 0, token="s3cret-token")
    await dashboard.start()
    base = dashboard.url.rstrip("/")
    try:
        # unsafe: the jar keeps cookies of an IP address, as a browser does
        async with aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            for path in ("/", "/static/app.js", "/api/status", "/api/usecases", "/api/feed", "/?token=wrong"):
                async with s.get(path) as r:
                    assert r.status == 401, path
                    assert "token" in (await r.json())["error"]
            status, doc = await _post(s, "/api/ctl", {"op": "wan", "up": False})
            assert status == 401 and premises.bridge.link_enabled
            async with s.get("/api/status", headers={"Authorization": "Bearer s3cret-token"}) as r:
                assert r.status == 200 and (await r.json())["web"] == {"token_required": True}
            async with s.get("/?token=s3cret-token") as r:
                assert r.status == 200 and "gbhub premises" in await r.text()
                assert r.cookies["gbhub_token"]["httponly"]
            async with s.get("/api/status") as r:  # the cookie now
                assert r.status == 200
            status, doc = await _post(s, "/api/ctl", {"op": "wan", "up": False})
            assert status == 200 and not premises.bridge.link_enabled
        assert control.web == {"url": dashboard.url, "token": "s3cret-token"}  # what `gbhub status` shows
    finally:
        await dashboard.close()


async def test_status_send_and_control(web, premises):
    dashboard, s = web
    async with s.get("/api/status") as r:
        doc = await r.json()
    assert {d["name"] for d in doc["devices"]} == {"chf", "gpf", "esme", "ihd", "gsme", "ppmid"}
    esme = next(d for d in doc["devices"] if d["name"] == "esme")
    assert esme["supply"] == "enabled" and esme["joined"] and "import_wh" in esme["registers"]
    assert doc["controls"]["ppmid"]["utrn"] and "tamper" in doc["controls"]["esme"]["faults"]
    assert len(doc["chf_device_log"]) == 4
    assert doc["displays"]["ihd"]["type"] == "Display"

    async with s.get("/api/usecases") as r:
        names = {u["use_case"]: u for u in await r.json()}
    assert "ECS43" in names and "GCS32" in names and not names["ECS43"]["params"]
    assert "PCS01" not in names  # a PPMID's own, not a head-end's

    status, out = await _post(s, "/api/send", {"use_case": "ECS43"})
    assert status == 200 and out["ok"] and out["valid"] and out["to"] == "esme"
    assert out["response"]["signature"] == "valid" and premises.esme.supply_state == "disabled"
    status, out = await _post(s, "/api/send", {"use_case": "ECS17b", "to": "esme", "params": {}})
    assert status == 200 and out["ok"] and out["response"]["mac"] == "valid"

    status, out = await _post(s, "/api/ctl", {"op": "wan", "up": False})
    assert status == 200 and out["result"] == {"wan": "down"} and not premises.bridge.link_enabled
    status, out = await _post(s, "/api/ctl", {"op": "wan", "up": True})
    assert status == 200 and premises.bridge.link_enabled
    status, out = await _post(s, "/api/ctl", {"op": "han", "eui": "ihd", "up": False})
    assert status == 200 and out["result"]["han"] == "down"
    await _post(s, "/api/ctl", {"op": "han", "eui": "ihd", "up": True})
    status, out = await _post(s, "/api/ctl", {"op": "fault", "eui": "esme", "kind": "voltage", "args": ["250"]})
    assert status == 200, out
    async with s.get("/api/status") as r:
        assert next(d for d in (await r.json())["devices"] if d["name"] == "esme")["voltage"] == 250


BAD = [
    ("/api/ctl", "not json"),
    ("/api/ctl", "[1, 2]"),
    ("/api/ctl", {"op": "stop"}),
    ("/api/ctl", {"op": "status"}),
    ("/api/ctl", {"op": "wan", "up": "yes"}),
    ("/api/ctl", {"op": "han", "eui": "nosuchdevice", "up": True}),
    ("/api/ctl", {"op": "press", "eui": 12}),
    ("/api/ctl", {"op": "press", "eui": "chf"}),
    ("/api/ctl", {"op": "utrn", "eui": "ppmid", "utrn": "12ab"}),
    ("/api/ctl", {"op": "alert", "eui": "esme", "code": "NOT_AN_ALERT"}),
    ("/api/ctl", {"op": "alert", "eui": "esme", "code": "0x8F3F", "count": 10**9}),
    ("/api/ctl", {"op": "fault", "eui": "esme", "kind": "nosuchfault"}),
    ("/api/ctl", {"op": "fault", "eui": "esme", "kind": "voltage", "args": ["lots"]}),
    ("/api/ctl", {"op": "fault", "eui": "esme", "kind": "voltage", "args": [{"a": 1}]}),
    ("/api/ctl", {"op": "fault", "eui": "esme", "kind": "voltage", "args": ["250"], "phase": 7}),
    ("/api/ctl", {"op": "emergency-credit", "eui": "ihd", "fuel": "coal"}),
    ("/api/send", {}),
    ("/api/send", {"use_case": "NOPE"}),
    ("/api/send", {"use_case": "ECS43", "to": "nosuchdevice"}),
    ("/api/send", {"use_case": "ECS17b", "params": ["start"]}),
    ("/api/send", {"use_case": "ECS22b", "params": {"start": "yesterday-ish"}}),
    ("/api/send", {"use_case": "CS06", "params": ["image=@/etc/passwd"]}),
    ("/api/send", {"use_case": "ECS43", "params": {"x": [1]}}),
    ("/api/send", {"use_case": "ECS43", "params": 5}),
    ("/api/send", {"use_case": "GCS53"}),  # an alert: nothing to send
]


async def test_bad_input_is_400_with_one_line(web, premises):
    dashboard, s = web
    for path, body in BAD:
        status, doc = await _post(s, path, body)
        assert status == 400, (path, body, doc)
        assert isinstance(doc["error"], str) and "\n" not in doc["error"] and "Traceback" not in doc["error"]
    async with s.post("/api/ctl", data=json.dumps({"op": "wan", "up": False}), headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 415  # a form another site could post without a preflight
    status, doc = await _post(s, "/api/ctl", {"op": "wan", "up": False}, headers={"Origin": "http://evil.example"})
    assert status == 403
    async with s.get("/api/status", headers={"Host": "rebound.example:80"}) as r:  # DNS rebinding
        assert r.status == 403
    async with s.get("/api/status", headers={"Host": f"localhost:{dashboard.port}"}) as r:
        assert r.status == 200
    async with s.post("/api/send", data=b"x" * (200 * 1024), headers={"Content-Type": JSON}) as r:
        assert r.status == 413
    assert premises.bridge.link_enabled and premises.esme.supply_state == "enabled"  # nothing changed


async def test_feed_bounded_per_browser(premises, tmp_path):
    """A browser that does not read loses the oldest events, never memory, and is told how many."""
    control = ControlServer(tmp_path, premises, asyncio.Event())
    dashboard = Dashboard(premises, control, "127.0.0.1", 0, queue=5)
    await dashboard.start()
    try:
        async with aiohttp.ClientSession(base_url=dashboard.url.rstrip("/")) as s:
            async with s.get("/api/feed") as r:
                assert r.headers["Content-Type"].startswith("text/event-stream")
                assert (await r.content.readuntil(b"\n\n")).startswith(b"retry:")
                assert len(dashboard.feed.subscribers) == 1
                for i in range(50):  # all before the server's handler runs again
                    dashboard.feed.publish({"kind": "test", "n": i})
                (sub,) = dashboard.feed.subscribers
                assert len(sub.events) == 5 and sub.dropped == 45
                first = json.loads((await r.content.readuntil(b"\n\n"))[6:])
                assert first == {"kind": "dropped", "count": 45}
                got = [json.loads((await r.content.readuntil(b"\n\n"))[6:])["n"] for _ in range(5)]
                assert got == [45, 46, 47, 48, 49]
                # a real exchange shows up decoded, with verdicts
                await premises.send("ECS17b")
                seen = []
                while not any(e.get("kind") == "wan" and e.get("cra") == "response" for e in seen):
                    seen.append(json.loads((await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10))[6:]))
                wan = [e for e in seen if e["kind"] == "wan"]
                assert wan[0]["dir"] == "down" and wan[0]["use_case"] == "ECS17b" and wan[0]["mac"] == "valid"
                assert wan[0]["originator"] == "supplier" and wan[0]["recipient"] == "esme"
                assert any(e["kind"] == "han" and e.get("use_case") == "ECS17b" for e in seen)
        for _ in range(100):  # the browser left: the taps are off again
            if not dashboard.feed.subscribers:
                break
            await asyncio.sleep(0.02)
        assert not dashboard.feed.subscribers and not premises.bridge._observers
    finally:
        await dashboard.close()


def test_subscriber_queue_is_bounded():
    sub = Subscriber(3)
    for i in range(10):
        sub.put({"n": i})
    assert [e["n"] for e in sub.events] == [7, 8, 9] and sub.dropped == 7


# ---------------------------------------------------------------------------- property tests

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                     max_leaves=12)
_ops = st.sampled_from(["wan", "han", "press", "utrn", "emergency-credit", "alert", "fault", "stop", None, 3])
_keys = st.sampled_from(["op", "eui", "up", "utrn", "fuel", "code", "count", "rate", "kind", "args", "phase", "seconds"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(_json, st.dictionaries(_keys, _json, max_size=8).flatmap(
    lambda d: _ops.map(lambda op: {**d, "op": op}))))
def test_control_request_parser_never_crashes(body):
    try:
        req = control_request(body)
    except BadRequest as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert req["op"] in ("wan", "han", "press", "utrn", "emergency-credit", "alert", "fault")
    json.dumps(req)  # what the control channel takes: plain JSON


_uc = st.sampled_from(["ECS43", "ECS17b", "ECS22b", "CS06", "GCS32", "NOPE", "", "x" * 40])


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, st.fixed_dictionaries({"use_case": _uc | _json}, optional={"to": _json, "params": _json})))
def test_send_request_parser_never_crashes(body):
    from gbhub.tools.client import _definition, _params
    from gbhub.tools.inputs import UsageError

    try:
        use_case, to, items = send_request(body)
    except BadRequest as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert all(isinstance(i, str) and "=" in i and not i.partition("=")[2].strip().startswith("@") for i in items)
    try:  # then what `gbhub send` does with the same words: a usage error at worst
        _params(_definition(use_case), items)
    except UsageError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_feed_decoders_never_crash(payload, cluster):
    """What the feed decodes comes off the air or the WAN: any bytes give a description or None."""
    from gbhub.han.aps import TUNNELING_CLUSTER, ApsFrame

    for c in (cluster, TUNNELING_CLUSTER):
        message = tunnelled_message(ApsFrame(bytes(8), bytes(8), 1, 1, c, payload))
        assert message is None or isinstance(message, bytes)
    out = describe(payload, None, None, {})
    assert "error" in out or out["message_code"]
    json.dumps(out)


def test_feed_describes_a_real_exchange(premises):
    """tunnelled_message + describe on frames built as the HAN carries them."""
    from gbcs.hgrp import Direction, Raw, transfer_data_frame
    from gbhub.han.aps import TUNNELING_CLUSTER, ApsFrame

    _, _, frame = premises.headend.build_use_case("ECS17b", recipient=premises.esme.eui, params={})
    aps = ApsFrame(premises.chf.eui, premises.esme.eui, 1, 1, TUNNELING_CLUSTER,
                   transfer_data_frame(Direction.CLIENT_TO_SERVER, 1, 0, Raw(frame).encode()))
    assert tunnelled_message(aps) == frame
    identity = premises.identity
    out = describe(frame, identity.keystore, identity.acb, {premises.esme.eui: "esme"})
    assert out["use_case"] == "ECS17b" and out["recipient"] == "esme" and out["mac"] == "valid"


# ---------------------------------------------------------------------------- HTTP fuzz


@pytest.fixture(scope="module")
def served(tmp_path_factory, gbhub_identity):
    """A dashboard on a premises running in its own thread's event loop, for synchronous
    hypothesis tests over real HTTP; yields its URL."""
    from gbhub.tools.premises import Premises
    from gbhub.tools.rig import default_rig

    box: dict = {}
    ready = threading.Event()

    async def main():
        rig = default_rig(None)
        rig.clock = "sim"
        p = Premises(rig, tcp=False, sim=True, identity=gbhub_identity)
        await p.start()
        box["stop"] = asyncio.Event()
        dashboard = Dashboard(p, ControlServer(tmp_path_factory.mktemp("ctl"), p, asyncio.Event()), "127.0.0.1", 0)
        box["url"] = await dashboard.start()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        try:
            await box["stop"].wait()
        finally:
            await dashboard.close()
            await p.stop()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(120), "premises did not start"
    yield box["url"]
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(60)


def _http_post(url: str, body: bytes, content_type: str = JSON) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


_ctl_bodies = st.one_of(
    _json.map(json.dumps),
    st.dictionaries(_keys, _json, max_size=8).flatmap(lambda d: _ops.map(lambda op: json.dumps({**d, "op": op}))),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)
_send_bodies = st.one_of(
    _json.map(json.dumps),
    st.fixed_dictionaries({"use_case": st.text(max_size=20) | _json}, optional={"to": _json, "params": _json}).map(json.dumps),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.tuples(st.just("api/ctl"), _ctl_bodies), st.tuples(st.just("api/send"), _send_bodies)))
def test_http_bad_input_is_400_never_a_traceback(served, case):
    """Any body to the action endpoints: a JSON answer, 400 with one line for what is wrong, never
    a 500 (a traceback would be one)."""
    path, body = case
    status, doc = _http_post(served + path, body.encode("utf-8", "surrogatepass"))
    assert status in (200, 400, 502), (status, doc)
    if status != 200:
        assert isinstance(doc.get("error"), str) and "\n" not in doc["error"]
