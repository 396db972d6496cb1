// gbhub dashboard: plain JavaScript, no libraries, no build step. Reads /api/status every second,
// follows /api/feed (Server-Sent Events), acts through POST /api/ctl and /api/send.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const FEED_MAX = 300;            // list items kept on the page
const SUPPLY = {                 // supply commands offered on a meter's card (use case, label)
  esme: [["ECS43", "Open load switch (supply off)"], ["ECS44", "Arm load switch"], ["ECS42", "Close load switch"],
         ["ECS45", "Read load switch"], ["ECS17b", "Read registers"]],
  gsme: [["GCS32", "Close valve (supply off)"], ["GCS39", "Arm valve"], ["GCS33", "Read valve"]],
};
const SKIP = new Set(["name", "type", "eui", "firmware", "registers"]);
let useCases = [];
let lastStatus = null;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function say(text, error = false) {
  const m = $("#message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body), credentials: "same-origin"});
  let doc = {};
  try { doc = await r.json(); } catch (e) { doc = {error: `HTTP ${r.status}`}; }
  if (!r.ok) throw new Error(doc.error || `HTTP ${r.status}`);
  return doc;
}

async function ctl(req) {
  try {
    const doc = await post("/api/ctl", req);
    say(`${req.op}: ${JSON.stringify(doc.result)}`);
    refresh();
  } catch (e) { say(`${req.op}: ${e.message}`, true); }
}

async function send(useCase, to, params = []) {
  say(`${useCase} → ${to || "its device"}: sent, waiting for the response…`);
  const out = $("#send-result");
  try {
    const doc = await post("/api/send", {use_case: useCase, to, params});
    out.textContent = JSON.stringify(doc, null, 2);
    say(`${useCase} → ${doc.to}: ${doc.ok ? "ok" : "failed"} ${JSON.stringify(doc.summary)}` +
        (doc.valid ? "" : " (response failed verification)"), !doc.ok || !doc.valid);
  } catch (e) {
    out.textContent = e.message;
    say(`${useCase}: ${e.message}`, true);
  }
  refresh();
}

// ---------------------------------------------------------------- devices
function fmt(key, v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if ((key === "credit" || key === "gas_credit") && typeof v === "number") return `£${v.toFixed(2)}`;
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function card(d, controls) {
  const name = d.name;
  const c = el("div", {class: "card", id: `dev-${name}`, "data-type": d.type});
  c.append(el("h3", {}, el("span", {text: name}), el("span", {class: "muted small", text: d.type})));
  c.append(el("table", {class: "fields"}, el("tbody")));
  const actions = el("div", {class: "actions"});
  for (const [uc, label] of SUPPLY[d.type] || []) {
    actions.append(el("button", {id: `${name}-${uc}`, "data-usecase": uc, title: `send ${uc} to ${name}`,
                                 class: uc === "ECS43" || uc === "GCS32" ? "danger" : "",
                                 onclick: () => send(uc, name), text: label}));
  }
  if (controls.han && d.type !== "chf") {
    actions.append(el("button", {id: `${name}-han-down`, onclick: () => ctl({op: "han", eui: name, up: false}), text: "HAN down"}));
    actions.append(el("button", {id: `${name}-han-up`, onclick: () => ctl({op: "han", eui: name, up: true}), text: "HAN up"}));
  }
  if (controls.press) actions.append(el("button", {id: `${name}-press`, onclick: () => ctl({op: "press", eui: name}), text: "Press button"}));
  if (controls.emergency_credit) {
    actions.append(el("button", {id: `${name}-ec`, onclick: () => ctl({op: "emergency-credit", eui: name}), text: "Emergency credit"}));
  }
  if (controls.utrn) {
    const digits = el("input", {id: `${name}-utrn`, placeholder: "UTRN (20 digits)", inputmode: "numeric"});
    actions.append(digits, el("button", {onclick: () => ctl({op: "utrn", eui: name, utrn: digits.value}), text: "Enter UTRN"}));
  }
  const kinds = Object.keys(controls.faults || {});
  if (kinds.length) {
    const kind = el("select", {id: `${name}-fault`}, ...kinds.map(k => el("option", {value: k, text: k,
      title: `${k} ${controls.faults[k].usage}: ${controls.faults[k].help}`})));
    const args = el("input", {id: `${name}-fault-args`, placeholder: "arguments"});
    const hint = () => { const f = controls.faults[kind.value]; args.placeholder = f.usage || "no arguments"; args.title = f.help; };
    kind.addEventListener("change", hint); hint();
    actions.append(kind, args, el("button", {onclick: () => ctl({op: "fault", eui: name, kind: kind.value,
      args: args.value.split(/\s+/).filter(Boolean)}), text: "Inject fault"}));
  }
  if (controls.alert) {
    const code = el("input", {id: `${name}-alert`, placeholder: "alert code 0x8F3F"});
    actions.append(code, el("button", {onclick: () => ctl({op: "alert", eui: name, code: code.value}), text: "Raise alert"}));
  }
  c.append(actions);
  return c;
}

function fill(c, d) {
  const rows = [["EUI", d.eui], ["joined", d.joined], ["state", d.state]];
  if (d.firmware) rows.push(["firmware", `${d.firmware.version} (slot ${d.firmware.slot})` +
                               (d.firmware.transfer ? " transferring" : "")]);
  for (const [k, v] of Object.entries(d)) if (!SKIP.has(k) && k !== "joined" && k !== "state") rows.push([k, v]);
  for (const [k, v] of Object.entries(d.registers || {})) rows.push([k, v]);
  const body = el("tbody");
  for (const [k, v] of rows) {
    const value = el("td", {class: `v-${k}`, text: fmt(k, v)});
    if (k === "supply") value.classList.add(v === "enabled" ? "ok" : "bad");
    if (k === "joined") value.classList.add(v ? "ok" : "bad");
    body.append(el("tr", {}, el("td", {text: k === "status" && d.type === "ihd" ? "display" : k}), value));
  }
  $("table.fields tbody", c).replaceWith(body);
}

function screen(c, disp) {
  // an IHD's screen: what its display model holds (money in pence, as the meter gives it)
  let box = $(".screen", c);
  if (!box) { box = el("div", {class: "screen"}); $("table.fields", c).after(box); }
  const pounds = (p) => (p === null || p === undefined) ? "—" : `£${(p / 100).toFixed(2)}`;
  const num = (v, unit, digits = 3) => (v === null || v === undefined) ? "—" : `${(+v).toFixed(digits).replace(/\.?0+$/, "")} ${unit}`;
  box.replaceChildren(
    el("div", {class: "big", text: num(disp.instantaneous_demand_w, "W", 0)}),
    el("div", {text: `today ${num(disp.today_import_kwh, "kWh")} · total ${num(disp.total_import_kwh, "kWh")}`}),
    el("div", {text: `price ${num(disp.current_price, "p/kWh", 2)} · credit ${pounds(disp.credit)}`}),
    ...(disp.gas ? [el("div", {class: "gas", text: `gas today ${num(disp.gas.today_m3, "m³")} · ${num(disp.gas.today_kwh, "kWh", 2)}` +
                              ` · ${pounds(disp.gas.today_cost)} · total ${num(disp.gas.total_m3, "m³")}` +
                              (disp.gas.credit === null || disp.gas.credit === undefined ? "" : ` · credit ${pounds(disp.gas.credit)}`) +
                              (disp.gas.error ? ` (${disp.gas.error})` : "")})] : []),
    el("div", {class: "small", text: `${disp.status}${disp.error ? ": " + disp.error : ""}` +
                                     (disp.updated_at ? ` · read ${disp.updated_at.slice(11, 19)}` : "")}));
}

function render(s) {
  lastStatus = s;
  $("#clock").textContent = `premises time ${s.time.replace("T", " ").slice(0, 19)} · up ${Math.round(s.uptime_s)} s`;
  const w = s.wan, wan = $("#wan");
  wan.textContent = `WAN ${w.link ? "link up" : "link cut"} · ${w.clients} client(s) · queue ${w.queue}`;
  wan.className = `pill ${w.link ? "ok" : "bad"}`;
  const box = $("#devices");
  for (const d of s.devices) {
    let c = document.getElementById(`dev-${d.name}`);
    if (!c) { c = card(d, s.controls[d.name] || {}); box.append(c); }
    fill(c, d);
    if (s.displays && s.displays[d.name]) screen(c, s.displays[d.name]);
  }
  const names = Object.fromEntries(s.devices.map(d => [d.eui, d.name]));
  const tb = el("tbody");
  for (const e of s.chf_device_log) {
    const seen = e.last_communication ? new Date(e.last_communication * 1000).toISOString().slice(11, 19) : "—";
    tb.append(el("tr", {}, el("td", {text: e.eui}), el("td", {text: names[e.eui] || "?"}), el("td", {text: e.device_type}),
                  el("td", {class: e.joined ? "ok" : "bad", text: e.joined ? "yes" : "no"}), el("td", {text: seen})));
  }
  $("#device-log tbody").replaceWith(tb);
  fillTargets();
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const r = await fetch("/api/status", {credentials: "same-origin"});
    if (r.status === 401) { say("token required: open the URL gbhub run printed (…/?token=…)", true); return; }
    render(await r.json());
  } catch (e) {
    $("#clock").textContent = "premises not answering";
  } finally { refreshing = false; }
}

// ---------------------------------------------------------------- send form
function fillTargets() {
  const sel = $("#send-usecase"), to = $("#send-to");
  const uc = useCases.find(u => u.use_case === sel.value);
  if (!uc || !lastStatus) return;
  const want = lastStatus.devices.filter(d => uc.targets.includes(d.type)).map(d => d.name);
  if (to.dataset.for === uc.use_case && to.options.length === want.length) return;
  to.dataset.for = uc.use_case;
  to.replaceChildren(...want.map(n => el("option", {value: n, text: n})));
  const help = uc.params.length ? uc.params.map(p => `${p.name}${p.required ? " (required)" : ""} = ${p.default}: ${p.help}`).join("\n")
                                : "no parameters";
  $("#send-help").textContent = `${uc.name}${uc.critical ? " · critical (signed)" : ""}\n${help}`;
}

async function loadUseCases() {
  try {
    const r = await fetch("/api/usecases", {credentials: "same-origin"});
    useCases = await r.json();
  } catch (e) { return; }
  const sel = $("#send-usecase");
  sel.replaceChildren(...useCases.map(u => el("option", {value: u.use_case, text: `${u.use_case} ${u.name}`})));
  sel.value = useCases.some(u => u.use_case === "ECS17b") ? "ECS17b" : sel.value;
  sel.addEventListener("change", fillTargets);
  fillTargets();
}

$("#send-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const params = $("#send-params").value.split("\n").map(s => s.trim()).filter(Boolean);
  send($("#send-usecase").value, $("#send-to").value, params);
});

// ---------------------------------------------------------------- live feed
function feedLine(e) {
  if (e.kind === "dropped") {
    return el("li", {class: "dropped", text: `${e.count} event(s) dropped: this page read the feed too slowly`});
  }
  const who = e.kind === "han" ? `${e.from} → ${e.to} ${e.cluster} ${e.outcome}` : `${e.dir === "down" ? "⬇" : "⬆"}`;
  let what = "";
  if (e.error) what = e.error;
  else if (e.originator) {
    what = `${e.use_case || e.message_code || "?"} ${e.cra || ""} ${e.originator} → ${e.recipient}` +
           ` #${e.originator_counter ?? ""} mac ${e.mac || "-"} sig ${e.signature || "-"}`;
    if (e.alert_code) what += ` ALERT ${e.alert_code} ${e.alert_name || ""}`;
  }
  const li = el("li", {class: `${e.kind}${e.alert ? " alert" : ""}`, title: e.use_case_name || ""},
                el("span", {class: "tag", text: e.alert ? "ALERT" : e.kind.toUpperCase()}),
                `${e.time ? e.time.slice(11, 23) : ""} ${who} ${what}`);
  li.dataset.kind = e.kind;
  if (e.alert) li.dataset.alert = "1";
  return li;
}

function visible(li) {
  if (li.dataset.alert) return $("#show-alerts").checked;
  if (li.dataset.kind === "wan") return $("#show-wan").checked;
  if (li.dataset.kind === "han") return $("#show-han").checked;
  return true;
}

function follow() {
  const feed = $("#feed"), state = $("#feed-state");
  const source = new EventSource("/api/feed", {withCredentials: true});
  source.onopen = () => { state.textContent = "live"; };
  source.onerror = () => { state.textContent = "feed disconnected, retrying…"; };
  source.onmessage = (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch (err) { return; }
    const li = feedLine(e);
    li.hidden = !visible(li);
    feed.prepend(li);
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
  };
}

for (const id of ["#show-wan", "#show-han", "#show-alerts"]) {
  $(id).addEventListener("change", () => { for (const li of $("#feed").children) li.hidden = !visible(li); });
}
$("#feed-clear").addEventListener("click", () => $("#feed").replaceChildren());
for (const b of document.querySelectorAll("button[data-ctl]")) {
  b.addEventListener("click", () => ctl(JSON.parse(b.dataset.ctl)));
}

refresh().then(loadUseCases);
setInterval(refresh, 1000);
follow();
