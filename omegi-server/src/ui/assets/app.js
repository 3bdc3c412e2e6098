// Omegi web UI: a single-page app with hash routes over the REST API.
// Every value from the API reaches the page through textContent or
// attributes set one by one: no HTML is built from data. The one
// exception is a note's body, which the server renders to HTML that is
// safe by construction (omegi-core escapes raw HTML and drops unsafe
// URLs) and which is shown as it is: the browser understands no Markdown.
"use strict";

(function () {
  const TOKEN_KEY = "omegi.token";
  const app = document.getElementById("app");
  const state = {
    token: localStorage.getItem(TOKEN_KEY),
    me: null,
    // The projects the signed-in user belongs to (null: not known yet).
    projects: null,
    unseen: 0,
    events: null,
    graph: null,
  };

  // ---------------------------------------------------------------- DOM

  // h("div.cls", {attr: v, onclick: f}, child, "text", [children]...)
  function h(spec) {
    const parts = spec.split(".");
    const tagAndId = parts[0].split("#");
    const node = document.createElement(tagAndId[0] || "div");
    if (tagAndId[1]) node.id = tagAndId[1];
    if (parts.length > 1) node.className = parts.slice(1).join(" ");
    let start = 1;
    const attrs = arguments[1];
    if (attrs && typeof attrs === "object" && !(attrs instanceof Node) && !Array.isArray(attrs)) {
      start = 2;
      Object.keys(attrs).forEach(function (k) {
        const v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
        else if (k === "value") node.value = v;
        else if (k === "checked" || k === "disabled" || k === "selected" || k === "hidden") node[k] = !!v;
        else if (k === "dataset") Object.assign(node.dataset, v);
        else node.setAttribute(k, v === true ? "" : String(v));
      });
    }
    for (let i = start; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }

  function mount() {
    const frag = document.createDocumentFragment();
    append(frag, Array.prototype.slice.call(arguments));
    app.replaceChildren(frag);
    window.scrollTo(0, 0);
  }

  function toast(text, href, more, ms) {
    const box = document.getElementById("toasts");
    const t = h("div.toast", href ? h("a", { href: href }, text) : text, more || null);
    box.appendChild(t);
    setTimeout(function () { t.remove(); }, ms || 8000);
    return t;
  }

  // ---------------------------------------------------------------- format

  function ago(ns) {
    if (!ns) return "never";
    const s = (Date.now() - ns / 1e6) / 1000;
    if (s < 0) return "just now";
    if (s < 60) return Math.floor(s) + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m ago";
    if (s < 86400) return Math.floor(s / 3600) + "h ago";
    return Math.floor(s / 86400) + "d ago";
  }

  function when(ns) {
    return ns ? new Date(ns / 1e6).toLocaleString() : "";
  }

  function ms(ns) {
    const v = ns / 1e6;
    if (v >= 1000) return (v / 1000).toFixed(2) + " s";
    return (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + " ms";
  }

  function statusPill(status) {
    return h("span.pill.s-" + status, status);
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, options) {
    options = options || {};
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    let body;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const res = await fetch(path, { method: options.method || "GET", headers: headers, body: body });
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = { error: text };
      }
    }
    if (!res.ok) {
      if (res.status === 401 && !options.signingIn) {
        signOut("Your token was not accepted: sign in again.");
      }
      throw new ApiError(res.status, (data && data.error) || res.status + " " + res.statusText);
    }
    return data;
  }

  function qs(params) {
    const parts = [];
    Object.keys(params).forEach(function (k) {
      const v = params[k];
      if (v !== undefined && v !== null && v !== "") parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  function issuePath(project, fp) {
    return "/api/issues/" + encodeURIComponent(project) + "/" + encodeURIComponent(fp);
  }

  function issueHref(project, fp) {
    return "#/issue/" + encodeURIComponent(project) + "/" + encodeURIComponent(fp);
  }

  function noteHref(id) {
    return "#/note/" + encodeURIComponent(id);
  }

  // A note's HTML as the server rendered it for the caller.
  function noteHtml(spec, html) {
    const node = h(spec);
    node.innerHTML = html;
    loadAttachments(node);
    return node;
  }

  // Attachments are served only with the caller's token: images are
  // fetched with it and shown from a blob, download links fetch on click.
  function loadAttachments(node) {
    node.querySelectorAll("img.attachment").forEach(function (img) {
      const src = img.getAttribute("src");
      img.removeAttribute("src");
      attachmentBlob(src).then(function (url) { img.src = url; }, function () { img.classList.add("missing"); });
    });
    node.querySelectorAll("a.attachment").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        ev.preventDefault();
        attachmentBlob(a.getAttribute("href")).then(function (url) {
          const link = h("a", { href: url, download: a.dataset.attachment || "" });
          document.body.appendChild(link);
          link.click();
          link.remove();
        });
      });
    });
  }

  async function attachmentBlob(path) {
    const res = await fetch(path, { headers: state.token ? { Authorization: "Bearer " + state.token } : {} });
    if (!res.ok) throw new ApiError(res.status, res.statusText);
    return URL.createObjectURL(await res.blob());
  }

  // Uploads a file to a note: its bytes as the body, its name in the query.
  async function uploadAttachment(noteId, name, file) {
    const res = await fetch("/api/notes/" + encodeURIComponent(noteId) + "/attachments" + qs({ name: name }), {
      method: "POST",
      headers: state.token ? { Authorization: "Bearer " + state.token } : {},
      body: file,
    });
    const text = await res.text();
    let data = null;
    try { data = JSON.parse(text); } catch (e) { data = { error: text }; }
    if (!res.ok) throw new ApiError(res.status, (data && data.error) || res.statusText);
    return data;
  }

  // The name a pasted or dropped file is attached under: its own, or for
  // a pasted image (always "image.png") one with the time, as Obsidian
  // names them; characters that would break `![[...]]` become `-`.
  function attachmentName(file) {
    let name = file.name || "";
    if (!name || /^image\.\w+$/.test(name)) {
      const ext = (file.type.split("/")[1] || "bin").replace(/[^a-z0-9]/gi, "");
      const t = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
      name = "Pasted image " + t + "." + ext;
    }
    return name.replace(/[\/\\\[\]|#^]/g, "-").replace(/^\.+/, "");
  }

  // ---------------------------------------------------------------- session

  function signOut(message) {
    state.token = null;
    state.me = null;
    state.projects = null;
    localStorage.removeItem(TOKEN_KEY);
    if (state.events) state.events.close();
    state.events = null;
    renderChrome();
    location.hash = "#/signin" + (message ? qs({ m: message }) : "");
  }

  async function whoAmI() {
    if (state.me || !state.token) return state.me;
    try {
      const me = await api("/api/me");
      state.me = me.login;
      state.projects = Array.isArray(me.projects) ? me.projects : null;
    } catch (e) {
      if (e.status === 401) throw e;
      state.me = "";
    }
    return state.me;
  }

  function renderChrome() {
    const signedIn = !!state.token;
    document.getElementById("nav").hidden = !signedIn;
    document.getElementById("signout").hidden = !signedIn;
    document.getElementById("whoami").textContent = signedIn && state.me ? state.me : "";
    const badge = document.getElementById("alert-badge");
    badge.hidden = !signedIn || state.unseen === 0;
    badge.textContent = state.unseen > 99 ? "99+" : String(state.unseen);
  }

  function listenForAlerts() {
    if (!state.token || state.events || typeof EventSource === "undefined") return;
    const es = new EventSource("/api/alerts/stream" + qs({ token: state.token }));
    state.events = es;
    // `open` once the server has subscribed this page to alerts; the
    // browser reconnects by itself after an error.
    document.body.dataset.alerts = "connecting";
    es.addEventListener("open", function () { document.body.dataset.alerts = "open"; });
    es.addEventListener("error", function () { document.body.dataset.alerts = "connecting"; });
    function onAlert(ev) {
      let alert;
      try {
        alert = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      const onDashboard = currentRoute().name === "dashboard";
      if (!onDashboard) state.unseen++;
      renderChrome();
      const what = ev.type === "regressed" ? "Regressed" : ev.type === "spike" ? "Spike" : "New issue";
      const parts = (alert.issue_id || "").split(":");
      const fp = alert.fingerprint || parts.pop();
      const href = issueHref(alert.project || parts.join(":"), fp);
      // The note that solved it last time, else an invitation to write one
      // (the issue page opens its editor, prefilled).
      const note = (alert.notes || [])[0];
      const knowledge = note
        ? h("div.toast-note", "Solved before: ",
          h("a.toast-note-link", { href: noteHref(note.id) }, note.title),
          h("span.meta", " by " + note.author + ", edited " + ago(note.updated_ns)))
        : h("div.toast-note", "No note yet — ", h("a.toast-write-note", { href: href + "?new-note=1" }, "write one"));
      const t = toast(what + ": " + (alert.title || alert.issue_id), href, knowledge, 20000);
      t.dataset.alert = ev.type;
      if (onDashboard) route();
    }
    es.addEventListener("new_issue", onAlert);
    es.addEventListener("regressed", onAlert);
    es.addEventListener("spike", onAlert);
    // The server ends the stream when the token is revoked.
    es.addEventListener("unauthorized", function () {
      signOut("Your token was revoked: sign in with a valid one.");
    });
  }

  // ---------------------------------------------------------------- router

  function currentRoute() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const q = hash.indexOf("?");
    const path = q >= 0 ? hash.slice(0, q) : hash;
    const params = new URLSearchParams(q >= 0 ? hash.slice(q + 1) : "");
    const seg = path.split("/").filter(Boolean).map(decodeURIComponent);
    let name = "notfound";
    if (seg.length === 0) name = "dashboard";
    else if (seg[0] === "signin") name = "signin";
    else if (seg[0] === "issues") name = "issues";
    else if (seg[0] === "issue" && seg.length >= 3) name = "issue";
    else if (seg[0] === "notes" && seg[1] === "new") name = "editor";
    else if (seg[0] === "notes") name = "notes";
    else if (seg[0] === "note" && seg[2] === "edit") name = "editor";
    else if (seg[0] === "note" && seg[1]) name = "note";
    else if (seg[0] === "graph") name = "graph";
    else if (seg[0] === "search") name = "search";
    return { name: name, seg: seg, params: params };
  }

  const pages = {};
  let routeSeq = 0;

  async function route() {
    const r = currentRoute();
    const seq = ++routeSeq;
    if (state.graph) {
      state.graph.stop();
      state.graph = null;
    }
    document.querySelectorAll("#nav a").forEach(function (a) {
      const nav = a.dataset.nav;
      const active =
        nav === r.name ||
        (nav === "issues" && r.name === "issue") ||
        (nav === "notes" && (r.name === "note" || r.name === "editor"));
      a.classList.toggle("active", active);
    });
    if (!state.token && r.name !== "signin") {
      location.hash = "#/signin";
      return;
    }
    if (r.name === "dashboard") state.unseen = 0;
    try {
      if (state.token) await whoAmI();
      renderChrome();
      listenForAlerts();
      document.title = "Omegi";
      await (pages[r.name] || pages.notfound)(r, function () { return seq === routeSeq; });
    } catch (e) {
      if (seq !== routeSeq) return;
      mount(h("div.error-box", h("h2", "Something went wrong"), h("p", e.message || String(e))));
    }
  }

  // ---------------------------------------------------------------- charts

  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    for (let i = 2; i < arguments.length; i++) {
      const c = arguments[i];
      if (c === undefined || c === null) continue;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  // Bars of counts per bucket, every bucket of [from, to) drawn.
  function barChart(counts, fromNs, toNs, widthNs, label) {
    const byStart = new Map();
    (counts || []).forEach(function (c) { byStart.set(c.start_ns, c.count); });
    // An open window ends now.
    toNs = Math.min(toNs, Date.now() * 1e6 + 1);
    const first = Math.floor(fromNs / widthNs) * widthNs;
    const buckets = [];
    for (let t = first; t < toNs && buckets.length < 400; t += widthNs) buckets.push({ t: t, n: byStart.get(t) || 0 });
    const max = buckets.reduce(function (m, b) { return Math.max(m, b.n); }, 0);
    const W = 1100;
    const H = 130;
    const pad = 22;
    const bw = (W - pad) / Math.max(1, buckets.length);
    const svg = s("svg", { viewBox: "0 0 " + W + " " + (H + 18), class: "chart", role: "img", "aria-label": label });
    svg.appendChild(s("line", { x1: pad, y1: H, x2: W, y2: H, class: "axis" }));
    svg.appendChild(s("text", { x: 0, y: 10, class: "tick" }, String(max)));
    svg.appendChild(s("text", { x: 0, y: H, class: "tick" }, "0"));
    buckets.forEach(function (b, i) {
      const bh = max ? (b.n / max) * (H - 14) : 0;
      const rect = s("rect", {
        x: (pad + i * bw + 1).toFixed(1),
        y: (H - bh).toFixed(1),
        width: Math.max(1, bw - 2).toFixed(1),
        height: bh.toFixed(1),
        class: b.n ? "bar" : "bar empty",
      });
      rect.appendChild(s("title", {}, new Date(b.t / 1e6).toLocaleString() + ": " + b.n));
      svg.appendChild(rect);
    });
    const fmt = function (t) {
      const d = new Date(t / 1e6);
      if (widthNs >= 86400e9) return d.toLocaleDateString();
      if (toNs - first > 12 * 3600e9) return d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
      return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    };
    if (buckets.length) {
      svg.appendChild(s("text", { x: pad, y: H + 15, class: "tick" }, fmt(buckets[0].t)));
      svg.appendChild(s("text", { x: W, y: H + 15, class: "tick end" }, fmt(buckets[buckets.length - 1].t)));
    }
    return svg;
  }

  // Services left to right by call depth; failing ones in red.
  function dependencyGraph(edges, failing) {
    const names = new Set();
    edges.forEach(function (e) { names.add(e.caller); names.add(e.callee); });
    failing.forEach(function (n) { names.add(n); });
    const list = Array.from(names).sort();
    if (!list.length) return h("p.muted", "No service calls seen yet.");
    const level = new Map(list.map(function (n) { return [n, 0]; }));
    for (let round = 0; round < list.length; round++) {
      let changed = false;
      edges.forEach(function (e) {
        if (e.caller === e.callee) return;
        const want = level.get(e.caller) + 1;
        if (want > level.get(e.callee) && want < list.length) {
          level.set(e.callee, want);
          changed = true;
        }
      });
      if (!changed) break;
    }
    const columns = [];
    list.forEach(function (n) {
      const l = level.get(n);
      (columns[l] = columns[l] || []).push(n);
    });
    const colW = 190;
    const rowH = 56;
    const rows = columns.reduce(function (m, c) { return Math.max(m, c ? c.length : 0); }, 1);
    const W = Math.max(colW * columns.length, 200);
    const H = rows * rowH + 10;
    const pos = new Map();
    columns.forEach(function (col, ci) {
      (col || []).forEach(function (n, ri) {
        pos.set(n, { x: 10 + ci * colW, y: 10 + ri * rowH + ((rows - col.length) * rowH) / 2 });
      });
    });
    const svg = s("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, class: "deps", role: "img", "aria-label": "Service dependencies" });
    const defs = s("defs", {});
    defs.appendChild(
      s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))
    );
    svg.appendChild(defs);
    const boxW = 140;
    const boxH = 34;
    edges.forEach(function (e) {
      const a = pos.get(e.caller);
      const b = pos.get(e.callee);
      if (!a || !b || a === b) return;
      const line = s("line", {
        x1: a.x + boxW, y1: a.y + boxH / 2, x2: b.x, y2: b.y + boxH / 2,
        class: e.errors ? "edge failing" : "edge", "marker-end": "url(#arrow)",
      });
      line.appendChild(s("title", {}, e.caller + " → " + e.callee + ": " + e.calls + " calls, " + e.errors + " failed"));
      svg.appendChild(line);
    });
    list.forEach(function (n) {
      const p = pos.get(n);
      const g = s("g", { class: failing.has(n) ? "svc failing" : "svc", "data-service": n });
      g.appendChild(s("rect", { x: p.x, y: p.y, width: boxW, height: boxH, rx: 6 }));
      g.appendChild(s("text", { x: p.x + boxW / 2, y: p.y + boxH / 2 + 4 }, n.length > 20 ? n.slice(0, 19) + "…" : n));
      g.appendChild(s("title", {}, n + (failing.has(n) ? " (errors)" : "")));
      svg.appendChild(g);
    });
    return svg;
  }

  // ---------------------------------------------------------------- pages

  pages.notfound = function () {
    mount(h("div.error-box", h("h2", "No such page"), h("p", h("a", { href: "#/" }, "Back to the dashboard"))));
  };

  pages.signin = function (r) {
    const message = r.params.get("m");
    const input = h("input#token", { type: "password", autocomplete: "current-password", placeholder: "omegi_…", required: true });
    const err = h("p.error");
    const form = h("form.signin", {
      onsubmit: async function (ev) {
        ev.preventDefault();
        err.textContent = "";
        const token = input.value.trim();
        if (!token) return;
        state.token = token;
        try {
          await api("/api/projects", { signingIn: true });
        } catch (e) {
          state.token = null;
          err.textContent = e.status === 401 ? "This token is not valid." : e.status === 403 ? "That is an ingest token: sign in with a user token." : e.message;
          return;
        }
        localStorage.setItem(TOKEN_KEY, token);
        state.me = null;
        state.projects = null;
        location.hash = "#/";
      },
    },
      h("h1", "Sign in to Omegi"),
      h("p.muted", "Paste your user API token. ", h("code", "omegi serve"), " prints the admin's token on first start; ", h("code", "omegi user add LOGIN"), " makes more."),
      message ? h("p.notice", message) : null,
      h("label", { for: "token" }, "API token"),
      input,
      err,
      h("button.primary", { type: "submit" }, "Sign in")
    );
    mount(form);
    input.focus();
  };

  pages.dashboard = async function (r, live) {
    const since = r.params.get("since") || "24h";
    const bucket = since === "7d" ? "day" : since === "1h" ? "minute" : "hour";
    const stats = await api("/api/stats" + qs({ since: since, bucket: bucket }));
    const perProject = await Promise.all(stats.projects.map(async function (p) {
      const [top, regressed] = await Promise.all([
        api("/api/issues" + qs({ project: p.project, sort: "count", limit: 5 })),
        api("/api/issues" + qs({ project: p.project, status: "regressed", limit: 5 })),
      ]);
      return { stats: p, top: top, regressed: regressed };
    }));
    if (!live()) return;
    const widthNs = bucket === "day" ? 86400e9 : bucket === "minute" ? 60e9 : 3600e9;
    const sum = stats.summary;
    const failing = new Set();
    stats.projects.forEach(function (p) { (p.services || []).forEach(function (sc) { if (sc.count) failing.add(sc.service); }); });
    stats.dependencies.forEach(function (e) { if (e.errors) failing.add(e.callee); });
    const rangeLinks = ["1h", "24h", "7d"].map(function (v) {
      return h("a" + (v === since ? ".active" : ""), { href: "#/" + qs({ since: v }) }, v);
    });
    mount(
      h("div.page-head", h("h1", "Dashboard"), h("div.range", "Window: ", rangeLinks)),
      h("section.cards",
        card("Errors", sum.errors, "all time"),
        card("Open issues", sum.open_issues, "unresolved or regressed"),
        card("Issues", sum.issues, "all statuses"),
        card("Spans", sum.spans, "all time")
      ),
      h("section.panel",
        h("h2", "Service dependencies"),
        h("p.muted", "Calls seen in the window's latest traces; services with errors are red."),
        dependencyGraph(stats.dependencies, failing)
      ),
      perProject.length ? perProject.map(function (p) { return projectPanel(p, stats, widthNs); }) : h("section.panel", h("p.muted",
        state.projects && state.projects.length === 0
          ? "You are not a member of any project yet: an admin adds you with omegi project add-member PROJECT " + (state.me || "LOGIN") + "."
          : "No project has sent data yet."))
    );
  };

  function card(label, value, hint) {
    return h("div.card", h("div.card-value", String(value)), h("div.card-label", label), h("div.card-hint", hint));
  }

  function issueList(issues, empty) {
    if (!issues.length) return h("p.muted", empty);
    return h("ul.issue-list", issues.map(function (i) {
      return h("li",
        h("a", { href: issueHref(i.project, i.fingerprint) }, i.title),
        " ", statusPill(i.status),
        h("span.meta", i.count + "× · " + (i.services || []).join(", ") + " · " + ago(i.last_seen_ns)));
    }));
  }

  function projectPanel(p, stats, widthNs) {
    const total = (p.stats.error_counts || []).reduce(function (m, c) { return m + c.count; }, 0);
    const summary = (stats.summary.projects || []).find(function (x) { return x.project === p.stats.project; }) || {};
    return h("section.panel.project", { "data-project": p.stats.project },
      h("h2", "Project ", h("span.mono", p.stats.project)),
      h("p.muted", total + " errors in the window · " + (summary.unresolved || 0) + " unresolved · " + (summary.regressed || 0) + " regressed · " + (summary.resolved || 0) + " resolved"),
      h("div.chart-box", barChart(p.stats.error_counts, stats.from_ns, stats.to_ns, widthNs, "Errors over time in " + p.stats.project)),
      h("div.grid3",
        h("div", h("h3", "Top issues"), issueList(p.top, "No open issues.")),
        h("div", h("h3", "New in the window"), issueList(p.stats.new_issues.slice().reverse().slice(0, 5), "No new issues.")),
        h("div", h("h3", "Regressed"), issueList(p.regressed, "Nothing regressed."))
      ),
      p.stats.services.length
        ? h("div", h("h3", "Errors by service"), h("ul.svc-counts", p.stats.services.map(function (sc) {
          return h("li", h("a", { href: "#/issues" + qs({ project: p.stats.project, service: sc.service, status: "all" }) }, sc.service), h("span.meta", " " + sc.count));
        })))
        : null
    );
  }

  pages.issues = async function (r, live) {
    const f = {
      project: r.params.get("project") || "",
      service: r.params.get("service") || "",
      status: r.params.get("status") || "open",
      since: r.params.get("since") || "",
      sort: r.params.get("sort") || "last_seen",
    };
    const [projects, issues] = await Promise.all([
      api("/api/projects"),
      api("/api/issues" + qs({ project: f.project, service: f.service, status: f.status, since: f.since, sort: f.sort, limit: 200 })),
    ]);
    if (!live()) return;
    const services = new Set();
    issues.forEach(function (i) { (i.services || []).forEach(function (x) { services.add(x); }); });
    if (f.service) services.add(f.service);
    function select(name, options, value) {
      return h("select", { name: name, onchange: apply }, options.map(function (o) {
        return h("option", { value: o[0], selected: o[0] === value }, o[1]);
      }));
    }
    const form = h("form.filters", { onsubmit: function (ev) { ev.preventDefault(); apply(); } },
      h("label", "Project ", select("project", [["", "All projects"]].concat(projects.map(function (p) { return [p.id, p.name || p.id]; })), f.project)),
      h("label", "Service ", select("service", [["", "All services"]].concat(Array.from(services).sort().map(function (x) { return [x, x]; })), f.service)),
      h("label", "Status ", select("status", [["open", "Open"], ["all", "All"], ["unresolved", "Unresolved"], ["regressed", "Regressed"], ["resolved", "Resolved"], ["ignored", "Ignored"]], f.status)),
      h("label", "Seen ", select("since", [["", "Any time"], ["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]], f.since)),
      h("label", "Sort ", select("sort", [["last_seen", "Last seen"], ["count", "Count"]], f.sort))
    );
    function apply() {
      const data = new FormData(form);
      const params = {};
      data.forEach(function (v, k) { params[k] = v; });
      if (params.status === "open") delete params.status;
      if (params.sort === "last_seen") delete params.sort;
      location.hash = "#/issues" + qs(params);
    }
    const rows = issues.map(function (i) {
      const actions = h("td.row-actions");
      function act(kind, label) {
        return h("button.small", {
          type: "button",
          onclick: async function (ev) {
            ev.target.disabled = true;
            try {
              await api(issuePath(i.project, i.fingerprint) + "/" + kind, { method: "POST" });
              route();
            } catch (e) {
              toast(e.message);
              ev.target.disabled = false;
            }
          },
        }, label);
      }
      if (i.status === "resolved" || i.status === "ignored") actions.appendChild(act("unresolve", "Reopen"));
      else {
        actions.appendChild(act("resolve", "Resolve"));
        actions.appendChild(act("ignore", "Ignore"));
      }
      return h("tr", { "data-issue": i.id },
        h("td.title-cell", h("a", { href: issueHref(i.project, i.fingerprint) }, i.title), h("div.meta", i.latest_error && i.latest_error.target ? i.latest_error.target : "")),
        h("td", statusPill(i.status)),
        h("td.mono", i.project),
        h("td", (i.services || []).join(", ")),
        h("td.num", String(i.count)),
        h("td", { title: when(i.last_seen_ns) }, ago(i.last_seen_ns)),
        h("td", { title: when(i.first_seen_ns) }, ago(i.first_seen_ns)),
        actions);
    });
    mount(
      h("div.page-head", h("h1", "Issues"), h("span.muted", issues.length + (issues.length === 1 ? " issue" : " issues"))),
      form,
      issues.length
        ? h("div.table-wrap", h("table.issues",
          h("thead", h("tr", ["Issue", "Status", "Project", "Services", "Count", "Last seen", "First seen", ""].map(function (t) { return h("th", t); }))),
          h("tbody", rows)))
        : h("p.muted", "No issue matches these filters.")
    );
  };

  pages.issue = async function (r, live) {
    const project = r.seg[1];
    const fp = r.seg[2];
    const occurrence = r.params.get("occurrence") || "";
    const [detail, flow] = await Promise.all([
      api(issuePath(project, fp)),
      api(issuePath(project, fp) + "/flow" + qs({ occurrence: occurrence, width: 60 })),
    ]);
    const notes = await api(issuePath(project, fp) + "/suggestions");
    if (!live()) return;
    const issue = detail.issue;
    document.title = issue.title + " · Omegi";
    async function setStatus(kind) {
      await api(issuePath(project, fp) + "/" + kind, { method: "POST" });
      route();
    }
    const buttons = h("div.actions",
      issue.status === "resolved" || issue.status === "ignored"
        ? h("button", { type: "button", onclick: function () { setStatus("unresolve"); } }, "Reopen")
        : [h("button", { type: "button", onclick: function () { setStatus("resolve"); } }, "Resolve"),
          h("button", { type: "button", onclick: function () { setStatus("ignore"); } }, "Ignore")],
      h("a#write-note.button.primary", { href: "#/notes/new" + qs({ issue: project + ":" + fp, occurrence: occurrence }) }, "Write note")
    );
    const err = flow.error;
    if (r.params.get("new-note")) {
      // An alert's "write one": the editor, prefilled as the button does.
      location.replace(buttons.querySelector("#write-note").getAttribute("href"));
      return;
    }
    mount(
      h("div.page-head.issue-head",
        h("div", h("h1", issue.title), h("p.meta",
          statusPill(issue.status), " ", issue.count + " occurrences · first seen " + ago(issue.first_seen_ns) + " · last seen " + ago(issue.last_seen_ns) + " · ",
          h("span.mono", project + ":" + fp))),
        buttons),
      h("section.panel",
        h("h2", "Flow across services"),
        flow.flow ? waterfall(flow.flow) : h("p.muted", flow.flow_error || "No flow for this error."),
        err.causes && err.causes.length ? h("ul.causes", err.causes.map(function (c) { return h("li", "caused by: " + c); })) : null,
        detail.consequences && detail.consequences.length ? h("div.consequences",
          h("h3", "Caused failures in"),
          h("ul.consequences", detail.consequences.map(function (c) {
            const what = c.message || c.status_message || "failed";
            return h("li", c.service + " · " + c.span_name + ": " + (c.error_type ? c.error_type + ": " : "") + what + " (failed because of this error)");
          }))) : null
      ),
      h("div.split",
        h("section.panel", h("h2", "Summary"), h("pre.summary", flow.flow ? flow.flow.summary : (err.error_type ? err.error_type + ": " : "") + err.message),
          errorFacts(err)),
        h("section.panel", h("h2", "Raw log"), h("pre.rawlog", flow.raw_log || "No log for this trace."))
      ),
      h("section.panel",
        h("h2", "Occurrences (last 24 hours)"),
        barChart(detail.histogram, Date.now() * 1e6 - 24 * 3600e9, Date.now() * 1e6, 3600e9, "Occurrences per hour"),
        h("ul.occurrences", detail.occurrences.map(function (o) {
          const here = o.id === occurrence;
          return h("li" + (here ? ".current" : ""),
            h("a", { href: issueHref(project, fp) + qs({ occurrence: o.id }) }, when(o.time_ns)),
            h("span.meta", " " + o.service + (o.trace_id ? " · trace " + o.trace_id : "") + " · " + o.message));
        }))
      ),
      h("section.panel.notes-panel",
        h("h2", "Notes"),
        h("h3", "Linked to this issue"),
        noteList(notes.linked, "No note is linked to this issue yet: write one."),
        h("h3", "Suggested from everyone"),
        noteList(notes.suggested, "No other note matches this error.")
      )
    );
  };

  function errorFacts(err) {
    const rows = [];
    if (err.error_type) rows.push(["Type", err.error_type]);
    rows.push(["Service", err.service]);
    if (err.target) rows.push(["Target", err.target]);
    if (err.location && err.location.file) rows.push(["Location", err.location.file + (err.location.line ? ":" + err.location.line : "")]);
    rows.push(["Time", when(err.time_ns)]);
    if (err.trace_id) rows.push(["Trace", err.trace_id]);
    (err.fields || []).slice(0, 12).forEach(function (f) { rows.push([f.key, typeof f.value === "object" ? JSON.stringify(f.value) : String(f.value)]); });
    return h("dl.facts", rows.map(function (r) { return [h("dt", r[0]), h("dd", r[1])]; }));
  }

  function waterfall(flow) {
    const total = flow.hops.reduce(function (m, hop) { return Math.max(m, hop.offset_ns + hop.duration_ns); }, 1);
    return h("div.waterfall", { role: "list" }, flow.hops.map(function (hop, i) {
      const left = (hop.offset_ns / total) * 100;
      const width = Math.max(0.5, (hop.duration_ns / total) * 100);
      const last = i === flow.hops.length - 1;
      const span = hop.span_name + (hop.last_span_name && hop.last_span_name !== hop.span_name ? " › " + hop.last_span_name : "");
      const events = hop.events || [];
      return h("details.hop" + (hop.status === "error" ? ".failed" : ""), { role: "listitem", open: last || events.length <= 3, "data-service": hop.service },
        h("summary",
          h("span.hop-n", String(i + 1)),
          h("span.hop-service", hop.service),
          h("span.hop-span", span),
          h("span.hop-bar", h("span.bar-fill", { style: "left:" + left.toFixed(2) + "%;width:" + Math.min(100 - left, width).toFixed(2) + "%" })),
          h("span.hop-time", "+" + ms(hop.offset_ns) + " · " + ms(hop.duration_ns)),
          statusPill(hop.status)),
        events.length
          ? h("ol.logs", events.map(function (ev) {
            const fields = (ev.fields || []).map(function (f) { return f.key + "=" + (typeof f.value === "object" ? JSON.stringify(f.value) : f.value); }).join(" ");
            return h("li.lvl-" + String(ev.level).toLowerCase(), h("span.lvl", String(ev.level).toUpperCase()), " ", ev.message, fields ? h("span.meta", " " + fields) : null);
          }))
          : h("p.muted.small", "No logs in this hop.")
      );
    }));
  }

  function noteList(notes, empty) {
    if (!notes.length) return h("p.muted", empty);
    return h("ul.note-list", notes.map(function (n) {
      return h("li", h("a", { href: noteHref(n.id) }, n.title),
        h("span.meta", " " + (n.author ? "by " + n.author + " · " : "") + (n.visibility === "public" ? "public" : "private") + (n.updated_ns ? " · " + ago(n.updated_ns) : "")),
        n.snippet ? h("div.snippet", n.snippet) : null);
    }));
  }

  pages.notes = async function (r, live) {
    const scope = r.params.get("scope") || "all";
    const [mine, all] = await Promise.all([
      scope !== "public" ? api("/api/notes" + qs({ mine: "true" })) : [],
      scope !== "mine" ? api("/api/notes") : [],
    ]);
    if (!live()) return;
    const others = all.filter(function (n) { return n.author !== state.me && n.visibility === "public"; });
    const tabs = [["all", "All"], ["mine", "My notes"], ["public", "Everyone's public notes"]].map(function (t) {
      return h("a" + (t[0] === scope ? ".active" : ""), { href: "#/notes" + qs({ scope: t[0] === "all" ? "" : t[0] }) }, t[1]);
    });
    mount(
      h("div.page-head", h("h1", "Notes"), h("a.button.primary", { href: "#/notes/new" }, "New note")),
      h("div.tabs", tabs),
      scope !== "public" ? h("section.panel", h("h2", "My notes"), noteList(mine, "You have not written a note yet.")) : null,
      scope !== "mine" ? h("section.panel", h("h2", "Everyone's public notes"), noteList(others, "Nobody else has shared a note yet.")) : null
    );
  };

  pages.note = async function (r, live) {
    const path = "/api/notes/" + encodeURIComponent(r.seg[1]);
    const [note, rendered, backlinks, mentions] = await Promise.all([
      api(path), api(path + "/rendered"), api(path + "/backlinks"), api(path + "/mentions"),
    ]);
    if (!live()) return;
    document.title = note.title + " · Omegi";
    mount(
      h("div.page-head",
        h("div", h("h1", note.title), h("p.meta",
          note.folder ? [h("a.folder", { href: "#/search" + qs({ folder: note.folder }) }, note.folder + "/"), " · "] : null,
          (note.author ? "by " + note.author + " · " : "") + note.visibility + " · updated " + ago(note.updated_ns),
          note.tags.map(function (t) { return [" ", h("a.tag", { href: "#/search" + qs({ q: "#" + t }) }, "#" + t)]; }))),
        h("div.actions",
          h("a.button", { href: "#/graph" + qs({ note: note.id, depth: 1 }) }, "Local graph"),
          note.author === state.me || !state.me ? h("a.button.primary", { href: noteHref(note.id) + "/edit" }, "Edit") : null)),
      noteHtml("article.panel.note-body", rendered.html),
      note.issues.length
        ? h("section.panel", h("h2", "Issues"), h("ul", note.issues.map(function (fp) {
          const parts = String(fp).split(":");
          const f = parts.pop();
          return h("li", h("a.mono", { href: issueHref(parts.join(":") || "default", f) }, fp));
        })))
        : null,
      h("div.split",
        h("section.panel.backlinks", h("h2", "Backlinks"), noteList(backlinks, "No note links here.")),
        h("section.panel.mentions", h("h2", "Unlinked mentions"), noteList(mentions, "No note mentions this title without a link.")))
    );
  };

  pages.editor = async function (r, live) {
    const editing = r.seg[0] === "note" ? r.seg[1] : null;
    // New notes are private, as the API makes them.
    let note = { title: r.params.get("title") || "", body: "", tags: [], aliases: [], visibility: "private", issues: [] };
    if (editing) note = await api("/api/notes/" + encodeURIComponent(editing));
    const issueRef = r.params.get("issue");
    if (!editing && issueRef) note = await prefillFromIssue(issueRef, r.params.get("occurrence"));
    // The titles `[[` completes: the notes the server lists for the caller.
    const notes = await api("/api/notes");
    if (!live()) return;
    const others = notes.filter(function (n) { return n.id !== note.id; });
    const title = h("input#note-title", { type: "text", value: note.title, placeholder: "Title", required: true });
    const tags = h("input#note-tags", { type: "text", value: note.tags.join(" "), placeholder: "tags, space separated" });
    const visibility = h("select#note-visibility",
      h("option", { value: "public", selected: note.visibility === "public" }, "Public: everyone can read it"),
      h("option", { value: "private", selected: note.visibility !== "public" }, "Private: only me"));
    const body = h("textarea#note-body", { spellcheck: "true", placeholder: "Markdown. [[ links to a note, ![[Note]] embeds it, #tag tags it." });
    body.value = note.body;
    const preview = h("div#note-preview.preview");
    const complete = h("ul.complete", { hidden: true, role: "listbox" });
    const status = h("span.muted");
    // The preview is the server's rendering of the text as it will be
    // seen saved; only the latest answer is shown.
    let previewSeq = 0;
    async function refresh() {
      const seq = ++previewSeq;
      try {
        const rendered = await api("/api/notes/render", {
          method: "POST",
          body: { title: title.value, body: body.value, aliases: note.aliases || [], id: editing || undefined },
        });
        if (seq !== previewSeq) return;
        preview.innerHTML = rendered.html;
        loadAttachments(preview);
        preview.classList.remove("stale");
      } catch (e) {
        if (seq !== previewSeq) return;
        preview.classList.add("stale");
        preview.replaceChildren(h("p.error", "No preview: " + e.message));
      }
    }
    let timer = null;
    function refreshSoon() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 300);
    }
    body.addEventListener("input", function () {
      refreshSoon();
      suggest();
    });
    title.addEventListener("input", refreshSoon);
    // `[[` completion of note titles.
    let choices = [];
    let chosen = 0;
    function openLink() {
      const before = body.value.slice(0, body.selectionStart);
      const m = /\[\[([^\]\n|#]*)$/.exec(before);
      return m ? { query: m[1], start: body.selectionStart - m[1].length } : null;
    }
    function suggest() {
      const open = openLink();
      if (!open) {
        complete.hidden = true;
        return;
      }
      const q = open.query.toLowerCase();
      choices = others.filter(function (n) { return n.title.toLowerCase().indexOf(q) >= 0; }).slice(0, 8);
      chosen = 0;
      complete.replaceChildren.apply(complete, choices.map(function (n, i) {
        return h("li" + (i === chosen ? ".chosen" : ""), {
          role: "option",
          onmousedown: function (ev) { ev.preventDefault(); choose(i); },
        }, n.title);
      }));
      complete.hidden = choices.length === 0;
    }
    function choose(i) {
      const open = openLink();
      const n = choices[i];
      if (!open || !n) return;
      const after = body.value.slice(body.selectionStart).replace(/^[^\]\n]*\]\]/, "");
      const head = body.value.slice(0, open.start) + n.title + "]]";
      body.value = head + after;
      body.selectionStart = body.selectionEnd = head.length;
      complete.hidden = true;
      refresh();
      body.focus();
    }
    body.addEventListener("keydown", function (ev) {
      if (complete.hidden) return;
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        chosen = (chosen + (ev.key === "ArrowDown" ? 1 : choices.length - 1)) % choices.length;
        Array.prototype.forEach.call(complete.children, function (li, i) { li.classList.toggle("chosen", i === chosen); });
      } else if (ev.key === "Enter" || ev.key === "Tab") {
        ev.preventDefault();
        choose(chosen);
      } else if (ev.key === "Escape") {
        complete.hidden = true;
      }
    });
    body.addEventListener("blur", function () { setTimeout(function () { complete.hidden = true; }, 150); });
    // Pasting or dropping a file attaches it to the note and embeds it
    // where the cursor is (a new note is saved first: files belong to a
    // stored note).
    async function attachFiles(files) {
      if (!files.length) return false;
      if (!editing) {
        status.textContent = "Save the note first, then paste or drop files into it.";
        return true;
      }
      for (const file of files) {
        const name = attachmentName(file);
        status.textContent = "Uploading " + name + "…";
        try {
          const a = await uploadAttachment(editing, name, file);
          const at = body.selectionStart;
          const embed = "![[" + a.name + "]]";
          body.value = body.value.slice(0, at) + embed + body.value.slice(body.selectionEnd);
          body.selectionStart = body.selectionEnd = at + embed.length;
          status.textContent = "Attached " + a.name + ".";
        } catch (e) {
          status.textContent = name + ": " + e.message;
        }
      }
      refresh();
      return true;
    }
    body.addEventListener("paste", function (ev) {
      const files = Array.prototype.slice.call((ev.clipboardData && ev.clipboardData.files) || []);
      if (files.length) {
        ev.preventDefault();
        attachFiles(files);
      }
    });
    body.addEventListener("dragover", function (ev) {
      if (ev.dataTransfer && Array.prototype.indexOf.call(ev.dataTransfer.types, "Files") >= 0) ev.preventDefault();
    });
    body.addEventListener("drop", function (ev) {
      const files = Array.prototype.slice.call((ev.dataTransfer && ev.dataTransfer.files) || []);
      if (files.length) {
        ev.preventDefault();
        attachFiles(files);
      }
    });
    const save = h("button#save-note.primary", {
      type: "submit",
    }, "Save");
    const form = h("form.editor", {
      onsubmit: async function (ev) {
        ev.preventDefault();
        save.disabled = true;
        status.textContent = "Saving…";
        const payload = {
          title: title.value.trim(),
          body: body.value,
          tags: tags.value.split(/[\s,]+/).map(function (t) { return t.replace(/^#/, ""); }).filter(Boolean),
          visibility: visibility.value,
          issues: note.issues,
        };
        try {
          let saved;
          if (editing) saved = await api("/api/notes/" + encodeURIComponent(editing), { method: "PUT", body: Object.assign({ revision: note.revision }, payload) });
          else saved = await api("/api/notes", { method: "POST", body: payload });
          const id = saved.id || editing;
          location.hash = noteHref(id);
        } catch (e) {
          status.textContent = e.message;
          save.disabled = false;
        }
      },
    },
      h("div.page-head", h("h1", editing ? "Edit note" : "New note"), h("div.actions", status, h("a.button", { href: editing ? noteHref(editing) : "#/notes" }, "Cancel"), save)),
      h("div.editor-meta", title, tags, visibility),
      note.issues.length ? h("p.meta", "About issue ", note.issues.map(function (x) { return h("span.mono", x); })) : null,
      h("div.editor-panes",
        h("div.pane", h("div.pane-title", "Markdown"), h("div.complete-wrap", body, complete)),
        h("div.pane", h("div.pane-title", "Preview"), preview))
    );
    mount(form);
    refresh();
    (note.title ? body : title).focus();
  };

  // A note about an error: title, message, flow summary, link to the issue.
  async function prefillFromIssue(ref, occurrence) {
    const cut = ref.lastIndexOf(":");
    const project = ref.slice(0, cut);
    const fp = ref.slice(cut + 1);
    const [detail, flow] = await Promise.all([
      api(issuePath(project, fp)),
      api(issuePath(project, fp) + "/flow" + qs({ occurrence: occurrence || "" })),
    ]);
    const issue = detail.issue;
    const err = flow.error;
    const lines = [
      "Issue: [" + issue.title + "](" + issueHref(project, fp) + ") (`" + project + ":" + fp + "`)",
      "",
      "## Error",
      "",
      "```",
      (err.error_type ? err.error_type + ": " : "") + err.message,
    ];
    (err.causes || []).forEach(function (c) { lines.push("caused by: " + c); });
    lines.push("```", "");
    if (flow.flow) {
      lines.push("## Flow", "", "```", flow.flow.summary.replace(/\s+$/, ""), "```", "");
    }
    lines.push("## Cause", "", "", "## Fix", "", "");
    return {
      title: issue.title,
      body: lines.join("\n"),
      tags: ["error"].concat((issue.services || []).slice(0, 3)),
      aliases: [],
      visibility: "private",
      issues: [fp],
    };
  }

  pages.search = async function (r, live) {
    const q = r.params.get("q") || "";
    // A folder keeps the notes in it or below it (the server's rule).
    const folder = r.params.get("folder") || "";
    const input = h("input#search-q", { type: "search", value: q, placeholder: "Search every note you may read", autofocus: true });
    const form = h("form.search", { onsubmit: function (ev) { ev.preventDefault(); location.hash = "#/search" + qs({ q: input.value.trim(), folder: folder }); } },
      input, h("button.primary", { type: "submit" }, "Search"),
      folder ? h("span.search-folder", " in ", h("strong", folder + "/"), " ", h("a", { href: "#/search" + qs({ q: q }), title: "Every folder" }, "×")) : null);
    let results = null;
    if (q || folder) {
      results = await api("/api/search" + qs({ q: q, folder: folder, limit: 50 }));
    }
    if (!live()) return;
    const terms = q.toLowerCase().split(/\s+/).map(function (t) { return t.replace(/^[#"]+|"+$/g, ""); }).filter(Boolean);
    mount(
      h("div.page-head", h("h1", "Search")),
      form,
      results === null ? h("p.muted", "Full text over your notes and everyone's public notes.")
        : !results.length ? h("p.muted", q ? "No note matches “" + q + "”." : "No note in " + folder + "/.")
          : h("ol.results", results.map(function (res) {
            const n = res.note;
            return h("li", { "data-note": n.id },
              h("a.result-title", { href: noteHref(n.id) }, highlight(n.title, terms, null)),
              h("span.meta", (n.folder ? " in " + n.folder + "/" : "") + " by " + n.author + " · " + n.visibility),
              h("div.snippet", highlight(res.snippet.text, terms, res.snippet.highlights)));
          }))
    );
    input.focus();
  };

  // Wraps the query's terms (or the given byte ranges) in <mark>.
  function highlight(text, terms, ranges) {
    text = String(text || "");
    const frag = document.createDocumentFragment();
    const marks = [];
    if (Array.isArray(ranges) && ranges.length) {
      // Byte ranges into the UTF-8 text, as the server sends them.
      const at = utf16Offsets(text);
      ranges.forEach(function (r) {
        const start = Array.isArray(r) ? r[0] : r.start;
        const end = Array.isArray(r) ? r[1] : r.end;
        if (at.has(start) && at.has(end) && end > start) marks.push([at.get(start), at.get(end)]);
      });
    } else {
      const lower = text.toLowerCase();
      terms.forEach(function (t) {
        let i = 0;
        while (t && (i = lower.indexOf(t, i)) >= 0) {
          marks.push([i, i + t.length]);
          i += t.length;
        }
      });
    }
    marks.sort(function (a, b) { return a[0] - b[0]; });
    let at = 0;
    marks.forEach(function (m) {
      if (m[0] < at) return;
      frag.appendChild(document.createTextNode(text.slice(at, m[0])));
      frag.appendChild(h("mark", text.slice(m[0], m[1])));
      at = m[1];
    });
    frag.appendChild(document.createTextNode(text.slice(at)));
    return frag;
  }

  // Maps each UTF-8 byte offset of `text` that starts a character to its
  // UTF-16 index.
  function utf16Offsets(text) {
    const map = new Map();
    let bytes = 0;
    let i = 0;
    for (const ch of text) {
      map.set(bytes, i);
      const cp = ch.codePointAt(0);
      bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      i += ch.length;
    }
    map.set(bytes, i);
    return map;
  }

  pages.graph = async function (r, live) {
    const p = r.params;
    const center = p.get("note") || "";
    const depth = p.get("depth") || "2";
    const f = {
      issues: p.get("issues") !== "0",
      tags: p.get("tags") !== "0",
      orphans: p.get("orphans") !== "0",
      attachments: p.get("attachments") === "1",
      tag: p.get("tag") || "",
      folder: p.get("folder") || "",
    };
    const [notes, whole] = await Promise.all([
      api("/api/notes"),
      api((center ? "/api/notes/" + encodeURIComponent(center) + "/graph" : "/api/graph")
        + qs({ depth: center ? depth : "", issues: f.issues ? "true" : "false", tags: "true", attachments: f.attachments ? "true" : "" })),
    ]);
    if (!live()) return;
    const graph = OmegiGraph.filter(whole, f);
    function go(change) {
      const q = {
        note: center, depth: depth, issues: f.issues ? "" : "0", tags: f.tags ? "" : "0",
        orphans: f.orphans ? "" : "0", attachments: f.attachments ? "1" : "", tag: f.tag, folder: f.folder,
      };
      Object.assign(q, change);
      if (!q.note) delete q.depth;
      location.hash = "#/graph" + qs(q);
    }
    function toggle(id, label, on, change) {
      return h("label", h("input#" + id, { type: "checkbox", checked: on, onchange: function (ev) { go(change(ev.target.checked)); } }), " " + label);
    }
    const centerSel = h("select#graph-note", { onchange: function (ev) { go({ note: ev.target.value }); } },
      h("option", { value: "" }, "Whole graph"),
      notes.slice().sort(function (a, b) { return a.title.localeCompare(b.title); }).map(function (n) {
        return h("option", { value: n.id, selected: n.id === center }, "Around: " + n.title);
      }));
    const depthSel = h("select#graph-depth", { disabled: !center, onchange: function (ev) { go({ depth: ev.target.value }); } },
      ["1", "2", "3"].map(function (d) { return h("option", { value: d, selected: d === depth }, "Depth " + d); }));
    const tags = whole.nodes.filter(function (n) { return n.kind === "tag"; })
      .map(function (n) { return n.key.replace(/^tag:/, ""); }).sort();
    const tagSel = h("select#graph-tag", { onchange: function (ev) { go({ tag: ev.target.value }); } },
      h("option", { value: "" }, "Any tag"),
      tags.map(function (t) { return h("option", { value: t, selected: t === f.tag }, "#" + t); }));
    const folders = new Set();
    whole.nodes.forEach(function (n) {
      // A folder and every folder above it.
      const parts = (n.kind === "note" && n.folder ? n.folder : "").split("/").filter(Boolean);
      for (let i = 1; i <= parts.length; i++) folders.add(parts.slice(0, i).join("/"));
    });
    const folderSel = h("select#graph-folder", { onchange: function (ev) { go({ folder: ev.target.value }); } },
      h("option", { value: "" }, "Every folder"),
      Array.from(folders).sort().map(function (d) { return h("option", { value: d, selected: d === f.folder }, d + "/"); }));
    const canvas = h("canvas#graph-canvas", { "aria-label": "Note graph", role: "img" });
    const legend = h("div.legend",
      [["note", "note"], ["center", "centre"], ["unresolved", "missing note"], ["attachment", "attachment"], ["tag", "tag"], ["issue", "issue"]].map(function (k) {
        return h("span", h("i", { style: "background:" + OmegiGraph.colors[k[0]] }), k[1]);
      }));
    mount(
      h("div.page-head", h("h1", center ? "Local graph" : "Graph"), h("span#graph-count.muted", graph.nodes.length + " nodes · " + graph.edges.length + " edges")),
      h("div.graph-controls",
        centerSel, depthSel, tagSel, folderSel,
        toggle("graph-issues", "Issues", f.issues, function (on) { return { issues: on ? "" : "0" }; }),
        toggle("graph-tags", "Tags", f.tags, function (on) { return { tags: on ? "" : "0" }; }),
        toggle("graph-orphans", "Orphans", f.orphans, function (on) { return { orphans: on ? "" : "0" }; }),
        toggle("graph-attachments", "Attachments", f.attachments, function (on) { return { attachments: on ? "1" : "" }; }),
        h("button.small", { type: "button", onclick: function () { state.graph && state.graph.zoom(1.25); } }, "+"),
        h("button.small", { type: "button", onclick: function () { state.graph && state.graph.zoom(0.8); } }, "−"),
        h("button.small", { type: "button", onclick: function () { state.graph && state.graph.fit(); } }, "Fit"),
        legend),
      graph.nodes.length ? canvas : h("p.muted", whole.nodes.length ? "No node matches these filters." : "No notes yet: the graph shows notes, their links, tags and issues.")
    );
    if (!graph.nodes.length) return;
    state.graph = OmegiGraph.draw(canvas, graph, {
      onOpen: function (node) {
        if (node.kind === "note") location.hash = noteHref(node.key);
        else if (node.kind === "tag") location.hash = "#/search" + qs({ q: node.label });
        else if (node.kind === "issue") location.hash = "#/issues" + qs({ status: "all" });
        else if (node.kind === "unresolved") location.hash = "#/notes/new" + qs({ title: node.label });
      },
    });
    window.omegiGraph = state.graph;
  };

  // ---------------------------------------------------------------- start

  document.getElementById("signout").addEventListener("click", function () { signOut(); });
  window.addEventListener("hashchange", route);
  route();
})();
