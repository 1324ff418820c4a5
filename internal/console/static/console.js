// The operators' console: a snapshot of the node's calls, then each call
// again whenever it changes, over server-sent events. No third-party code.
"use strict";
(function () {
  const calls = new Map(); // id → call as /console/events sends it
  let selected = "";
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function who(p) {
    let n = p.name || p.id;
    if (p.kind) n += " (" + p.kind + ")";
    if (p.inLobby) n += " in lobby";
    if (p.muted) n += " muted";
    return n;
  }
  function callButton(c) {
    const b = el("button", c.id, "link");
    b.type = "button";
    b.setAttribute("aria-label", "Show the timeline of call " + c.id);
    b.addEventListener("click", () => { selected = c.id; renderDetail(); $("detail-h").focus(); });
    return b;
  }
  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c;
      tr.appendChild(td);
    }
    return tr;
  }
  function render() {
    const all = [...calls.values()];
    const live = all.filter((c) => !c.ended).sort((a, b) => b.started.localeCompare(a.started));
    const ended = all.filter((c) => c.ended).sort((a, b) => b.ended.localeCompare(a.ended));
    const tb = $("live");
    tb.replaceChildren(...live.map((c) => {
      const tr = row([callButton(c), c.state, c.direction, c.mediaMode, c.app || c.appId, c.tenantId,
        (c.participants || []).map(who).join(", ") || "—"]);
      tr.dataset.call = c.id;
      tr.children[1].className = "state-" + c.state;
      return tr;
    }));
    $("live-count").textContent = "(" + live.length + ")";
    $("no-live").hidden = live.length > 0;
    $("ended").replaceChildren(...ended.map((c) => {
      const e = c.end || {};
      const tr = row([callButton(c), c.app || c.appId, new Date(c.ended).toLocaleTimeString(),
        e.code + "/" + e.subcode + " " + (e.message || ""), e.explanation || ""]);
      tr.dataset.call = c.id;
      return tr;
    }));
    const meetings = new Map();
    for (const c of live) {
      if (!c.meeting) continue;
      if (!meetings.has(c.meeting)) meetings.set(c.meeting, []);
      meetings.get(c.meeting).push(c);
    }
    $("meetings").replaceChildren(...[...meetings].map(([id, cs]) => {
      const people = new Set();
      cs.forEach((c) => (c.participants || []).forEach((p) => people.add(who(p))));
      return el("li", "Meeting " + id + ": " + cs.length + " bot call(s); " + ([...people].join(", ") || "nobody else"));
    }));
    $("no-meetings").hidden = meetings.size > 0;
    renderDetail();
  }
  const kinds = {created: "call", state: "state", participants: "roster", leg: "far end", sip: "SIP",
    media: "media", ended: "end", notification: "notification"};
  // The <audio> elements of the call shown, by recording id: kept across
  // updates, so a recording being played is not cut off by the next event.
  let audios = new Map(), audiosOf = "";
  function renderRecordings(c) {
    if (audiosOf !== c.id) { audios = new Map(); audiosOf = c.id; }
    const recs = c.recordings || [];
    $("no-recordings").hidden = recs.length > 0;
    $("recordings").replaceChildren(...recs.map((r, i) => {
      let li = audios.get(r.id);
      if (!li) {
        li = el("li");
        const label = el("span", "Recording " + (i + 1) + ", " + new Date(r.at).toLocaleTimeString());
        label.id = "rec-label-" + r.id;
        const audio = document.createElement("audio");
        audio.controls = true;
        audio.preload = "metadata";
        audio.src = r.url;
        audio.dataset.recording = r.id;
        audio.setAttribute("aria-labelledby", label.id);
        li.append(label, audio);
        audios.set(r.id, li);
      }
      return li;
    }));
  }
  function renderDetail() {
    const c = calls.get(selected);
    $("detail").hidden = !c;
    if (!c) return;
    $("detail-h").textContent = "Call " + c.id;
    const facts = [["State", c.state], ["Direction", c.direction], ["Media", c.mediaMode],
      ["Bot", (c.app ? c.app + " " : "") + c.appId], ["Tenant", c.tenantId], ["Started", c.started]];
    if (c.meeting) facts.push(["Meeting", c.meeting]);
    if (c.end) {
      facts.push(["Result", c.end.code + "/" + c.end.subcode + ": " + c.end.message]);
      facts.push(["In plain words", c.end.explanation]);
    }
    $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
    renderRecordings(c);
    const items = (c.timeline || []).map((t) => {
      const li = el("li", undefined, t.failed ? "failed" : "");
      const time = el("time", new Date(t.at).toLocaleTimeString());
      time.dateTime = t.at;
      li.append(time, el("span", kinds[t.kind] || t.kind, "kind"), t.text);
      li.dataset.kind = t.kind;
      return li;
    });
    if (c.forgotten) items.unshift(el("li", c.forgotten + " earlier entries not kept"));
    $("timeline").replaceChildren(...items);
  }

  const es = new EventSource("/console/events");
  es.addEventListener("open", () => { $("status").textContent = "Live"; });
  es.addEventListener("error", () => { $("status").textContent = "Disconnected; reconnecting…"; });
  es.addEventListener("snapshot", (ev) => {
    calls.clear();
    for (const c of JSON.parse(ev.data).calls) calls.set(c.id, c);
    render();
  });
  es.addEventListener("call", (ev) => {
    const c = JSON.parse(ev.data);
    calls.set(c.id, c);
    render();
  });
})();
