/**
 * The inspector's web page: one self-contained HTML document (no build,
 * no external assets) that uses the JSON API. The list updates live from
 * `/api/events`; filters by status, path and tunnel; a detail view with
 * heads and the body as text, pretty JSON, form fields or hex (compressed
 * bodies decoded); Replay, as recorded or edited. Data from the traffic is
 * only ever set as text (`textContent`, `value`), never as HTML.
 *
 * @module
 */

/** The page served at `/`. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Burrow inspector</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; color: #222; }
  header { display: flex; gap: 8px; align-items: center; padding: 8px 12px; background: #2d3b45; color: #fff; }
  header h1 { font-size: 16px; margin: 0 12px 0 0; }
  header input { width: 9em; }
  main { display: grid; grid-template-columns: minmax(320px, 45%) 1fr; height: calc(100vh - 44px); }
  #list { overflow: auto; border-right: 1px solid #ccc; }
  table { border-collapse: collapse; width: 100%; }
  td, th { padding: 3px 6px; text-align: left; white-space: nowrap; font-size: 13px; }
  tbody tr { cursor: pointer; border-bottom: 1px solid #eee; }
  tbody tr:hover { background: #f2f6fa; }
  tbody tr.sel { background: #dbe9f6; }
  .s2 { color: #176f2c; } .s3 { color: #1d5b9c; } .s4 { color: #a15c00; } .s5 { color: #b00020; }
  .path { max-width: 28em; overflow: hidden; text-overflow: ellipsis; }
  #detail { overflow: auto; padding: 8px 14px; }
  pre { background: #f6f8fa; padding: 8px; overflow: auto; white-space: pre-wrap; word-break: break-all; }
  textarea { width: 100%; font: 12px monospace; }
  .tabs button.on { font-weight: bold; background: #dbe9f6; }
  .muted { color: #777; }
  header .muted { color: #b8c4cc; }
  header #live.on { color: #8fdc9a; }
  #detail h2 { font-size: 18px; margin: 6px 0 2px; }
  #detail h3 { font-size: 15px; margin: 16px 0 6px; }
  #detail button { margin: 0 6px 4px 0; }
  .warn { color: #a15c00; font-weight: bold; }
</style>
</head>
<body>
<header>
  <h1>Burrow inspector</h1>
  <input id="f-status" placeholder="status: 500, 5xx">
  <input id="f-path" placeholder="path contains">
  <input id="f-tunnel" placeholder="tunnel">
  <button id="clear">Clear</button>
  <span id="info" class="muted"></span>
  <span id="live" class="muted">connecting…</span>
</header>
<main>
  <div id="list"><table>
    <thead><tr><th>#</th><th>time</th><th>method</th><th>path</th><th>status</th><th>ms</th><th>tunnel</th></tr></thead>
    <tbody id="rows"></tbody>
  </table></div>
  <div id="detail"><p class="muted">Select a request.</p></div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let rows = [];
let selected = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function matches(r) {
  const st = $("f-status").value.trim(), p = $("f-path").value.trim(), t = $("f-tunnel").value.trim();
  if (st) {
    const s = r.status === null ? "none" : String(r.status);
    if (/^\\dxx$/i.test(st) ? s[0] !== st[0] : s !== st) return false;
  }
  if (p && !r.path.includes(p)) return false;
  if (t && r.tunnel !== t) return false;
  return true;
}

function render() {
  const body = $("rows");
  body.replaceChildren();
  for (const r of rows.filter(matches)) {
    const tr = el("tr");
    tr.dataset.id = r.id;
    if (r.id === selected) tr.className = "sel";
    tr.append(
      el("td", r.id),
      el("td", new Date(r.time).toLocaleTimeString()),
      el("td", r.method),
      el("td", r.path + (r.replay_of ? "  (replay of #" + r.replay_of + ")" : "") +
        (r.incomplete ? "  (incomplete)" : ""), "path"),
      el("td", r.status ?? "-", r.status ? "s" + String(r.status)[0] : ""),
      el("td", r.duration_ms.toFixed(1)),
      el("td", r.tunnel),
    );
    tr.onclick = () => show(r.id);
    body.append(tr);
  }
  $("info").textContent = rows.length + " recorded";
}

const INCOMPLETE = {
  queue_full: "the recorder fell behind (its queue was full), so the rest of this connection " +
    "was not recorded; what is shown stops where recording stopped.",
};

function bytesOf(body) {
  if (body.encoding === "text") return new TextEncoder().encode(body.data);
  return Uint8Array.from(atob(body.data), (c) => c.charCodeAt(0));
}

function hex(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const part = Array.from(bytes.subarray(i, i + 16));
    lines.push(i.toString(16).padStart(8, "0") + "  " +
      part.map((b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(48) + "  " +
      part.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join(""));
  }
  return lines.join("\\n");
}

function views(message) {
  const body = message.body_decoded ?? message.body;
  const bytes = bytesOf(body);
  const text = body.encoding === "text" ? body.data : null;
  const type = (message.headers.find(([n]) => n.toLowerCase() === "content-type") ?? [])[1] ?? "";
  const out = {};
  if (text !== null) {
    try { out.json = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON */ }
    if (/x-www-form-urlencoded/i.test(type)) {
      out.form = Array.from(new URLSearchParams(text)).map(([k, v]) => k + " = " + v).join("\\n");
    }
    out.text = text;
  }
  out.hex = hex(bytes);
  return out;
}

function section(title, message) {
  const box = el("section");
  box.append(el("h3", title), el("pre", message.head));
  if (message.body_size === 0) return box;
  const note = message.body_size + " bytes" + (message.body_truncated ? " (cut at max_body)" : "") +
    (message.body_decoded ? ", decoded for display" : "");
  box.append(el("p", note, "muted"));
  const v = views(message);
  const tabs = el("div", null, "tabs");
  const pre = el("pre");
  const pick = (name) => {
    pre.textContent = v[name];
    for (const b of tabs.children) b.classList.toggle("on", b.textContent === name);
  };
  for (const name of Object.keys(v)) {
    const b = el("button", name);
    b.onclick = () => pick(name);
    tabs.append(b);
  }
  box.append(tabs, pre);
  pick(Object.keys(v)[0]);
  return box;
}

async function show(id) {
  selected = id;
  render();
  const res = await fetch("/api/requests/" + id);
  const d = $("detail");
  d.replaceChildren();
  if (!res.ok) { d.append(el("p", "Request #" + id + " is gone.", "muted")); return; }
  const x = await res.json();
  d.append(el("h2", x.method + " " + x.path + "  " + (x.status ?? "no response")));
  d.append(el("p", "#" + x.id + " · tunnel " + x.tunnel + " · from " + x.remote + " · " +
    x.duration_ms.toFixed(1) + " ms" + (x.replay_of ? " · replay of #" + x.replay_of : ""), "muted"));
  // A cut recording says so before anything of it is read as the whole exchange.
  if (x.incomplete) d.append(el("p", "Incomplete: " + (INCOMPLETE[x.incomplete] ?? x.incomplete), "warn"));
  const replay = el("button", "Replay");
  replay.onclick = () => doReplay(x.id, null);
  const edit = el("button", "Edit and replay");
  const head = el("textarea");
  head.rows = 6;
  head.value = x.request.head;
  const body = el("textarea");
  body.rows = 6;
  body.value = x.request.body.encoding === "text" ? x.request.body.data : "";
  const form = el("div");
  form.hidden = true;
  const send = el("button", "Send");
  send.onclick = () => doReplay(x.id, { head: head.value, body: body.value });
  form.append(el("p", "Head"), head, el("p", "Body"), body, send);
  edit.onclick = () => (form.hidden = !form.hidden);
  const status = el("span", "", "muted");
  status.id = "replay-status";
  d.append(replay, edit, status, form, section("Request", x.request));
  if (x.response) d.append(section("Response", x.response));
}

async function doReplay(id, edit) {
  const res = await fetch("/api/requests/" + id + "/replay", {
    method: "POST",
    body: edit ? JSON.stringify(edit) : "",
  });
  const out = await res.json();
  const status = $("replay-status");
  if (status) status.textContent = res.ok ? " replayed as #" + out.id + ": " + out.status : " " + out.error;
}

async function load() {
  const res = await fetch("/api/requests");
  rows = (await res.json()).requests;
  render();
  // A link to one request: #<id>.
  const linked = Number(location.hash.slice(1));
  if (linked) await show(linked);
}

for (const id of ["f-status", "f-path", "f-tunnel"]) $(id).oninput = render;
$("clear").onclick = () => fetch("/api/requests", { method: "DELETE" });
// Live updates once the list (and a linked request) is shown.
load().finally(() => {
  const events = new EventSource("/api/events");
  // After a reconnect (the server drops a reader that fell behind), the list is loaded afresh.
  let opened = false;
  events.onopen = () => {
    if (opened) load();
    opened = true;
    $("live").textContent = "● live";
    $("live").classList.add("on");
  };
  // Says so when the list stops updating (EventSource reconnects by itself).
  events.onerror = () => {
    $("live").textContent = "reconnecting…";
    $("live").classList.remove("on");
  };
  events.addEventListener("request", (e) => {
    rows.unshift(JSON.parse(e.data));
    render();
  });
  events.addEventListener("clear", () => {
    rows = [];
    render();
  });
});
</script>
</body>
</html>
`;
