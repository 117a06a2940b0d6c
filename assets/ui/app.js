// ontovec's built-in page: search, concept browsing, normalize, relatedness and note coding
// over the /v1 API. Plain JS, no build step, no external resources. The URL is the state:
//   /?q=heart%20attack&mode=hybrid&system=ICD10CM   search
//   /concept/{system}/{code}                          concept page
//   /?tab=normalize | relatedness | note              tools
//   /models, /models/{name}                           model cards (pictures by the trainer)
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
// Answers can arrive after the user moved to another view: fill only what is still on the page.
const fill = (sel, html) => {
  const el = $(sel);
  if (el) el.innerHTML = html;
};
const view = () => $("#view");
let sources = null; // [{system, release, concepts}]
let searchSeq = 0;

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function conceptHref(system, code) {
  return `/concept/${encodeURIComponent(system)}/${encodeURIComponent(code)}`;
}

function conceptLink(system, code, label) {
  return `<a href="${conceptHref(system, code)}" data-system="${esc(system)}" data-code="${esc(code)}">${esc(label ?? code)}</a>`;
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const msg = data?.error?.message || `${r.status} ${r.statusText}`;
    throw new Error(msg);
  }
  return data;
}

async function loadSources() {
  if (sources) return sources;
  try {
    sources = (await api("GET", "/v1/sources")).sources;
    $("#status").textContent = sources.map((s) => `${s.system} ${s.release}`).join(" · ");
  } catch (e) {
    sources = [];
    $("#status").textContent = `sources: ${e.message}`;
  }
  return sources;
}

const loaded = (system) => (sources || []).some((s) => s.system === system);

function go(url, replace = false) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

// Internal links navigate without reloading; modified clicks keep the browser's behaviour.
document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a");
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
  const href = a.getAttribute("href");
  if (!href || !(href === "/" || href.startsWith("/?") || href.startsWith("/concept/") || href.startsWith("/models"))) return;
  ev.preventDefault();
  go(href);
});
window.addEventListener("popstate", render);

document.addEventListener("keydown", (ev) => {
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName);
  if (ev.key === "/" && !typing) {
    ev.preventDefault();
    if (location.pathname !== "/" || new URLSearchParams(location.search).get("tab")) go("/");
    $("#q")?.focus();
    return;
  }
  // Arrow keys move through result links; Enter follows the focused one (native).
  if ((ev.key === "ArrowDown" || ev.key === "ArrowUp") && (document.activeElement?.id === "q" || document.activeElement?.closest(".results"))) {
    const links = [...document.querySelectorAll(".results .hit a.title")];
    if (!links.length) return;
    ev.preventDefault();
    const i = links.indexOf(document.activeElement);
    const next = ev.key === "ArrowDown" ? Math.min(i + 1, links.length - 1) : i - 1;
    if (next < 0) $("#q")?.focus();
    else links[next].focus();
  }
  if (ev.key === "Escape" && document.activeElement?.id === "q") {
    $("#q").value = "";
    runSearch();
  }
});

function setTab(tab) {
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.tab === tab));
}

async function render() {
  await loadSources();
  const path = decodeURIComponent(location.pathname);
  const params = new URLSearchParams(location.search);
  const m = location.pathname.match(/^\/concept\/([^/]+)\/(.+)$/);
  if (m) {
    setTab("");
    return renderConcept(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
  }
  const mm = location.pathname.match(/^\/models(?:\/([^/]+))?\/?$/);
  if (mm) {
    setTab("models");
    return mm[1] ? renderModel(decodeURIComponent(mm[1])) : renderModels();
  }
  const tab = params.get("tab") || "search";
  setTab(tab);
  if (tab === "normalize") return renderNormalize();
  if (tab === "relatedness") return renderRelatedness();
  if (tab === "note") return renderNote();
  if (path !== "/") return (view().innerHTML = `<p class="error">No page here. <a href="/">Search</a></p>`);
  return renderSearch(params);
}

// ---------- search ----------
function systemOptions(selected, withAll = true) {
  const opts = withAll ? [`<option value="">all systems</option>`] : [];
  for (const s of sources || []) {
    opts.push(`<option value="${esc(s.system)}" ${s.system === selected ? "selected" : ""}>${esc(s.system)}</option>`);
  }
  return opts.join("");
}

function renderSearch(params) {
  const q = params.get("q") || "";
  const mode = params.get("mode") || "hybrid";
  const system = params.get("system") || "";
  view().innerHTML = `
    <form id="search-form" class="bar" role="search">
      <input id="q" type="search" placeholder="Search terms, synonyms, codes…" aria-label="Search" autocomplete="off" value="${esc(q)}">
      <select id="mode" aria-label="Mode">
        ${["hybrid", "lexical", "vector", "exact"].map((m) => `<option ${m === mode ? "selected" : ""}>${m}</option>`).join("")}
      </select>
      <select id="system" aria-label="System">${systemOptions(system)}</select>
    </form>
    <p id="search-meta" class="muted"></p>
    <ol class="results" id="results" aria-live="polite"></ol>`;
  const input = $("#q");
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(runSearch, 180);
  });
  $("#mode").addEventListener("change", () => runSearch());
  $("#system").addEventListener("change", () => runSearch());
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    runSearch();
  });
  input.focus();
  input.setSelectionRange(q.length, q.length);
  if (q) runSearch(true);
}

async function runSearch(initial = false) {
  const q = $("#q")?.value ?? "";
  const mode = $("#mode").value;
  const system = $("#system").value;
  const p = new URLSearchParams();
  if (q) p.set("q", q);
  if (mode !== "hybrid") p.set("mode", mode);
  if (system) p.set("system", system);
  const url = p.toString() ? `/?${p}` : "/";
  if (!initial) history.replaceState(null, "", url);
  const seq = ++searchSeq;
  const list = $("#results");
  if (!q.trim()) {
    list.innerHTML = "";
    $("#search-meta").textContent = "";
    return;
  }
  const body = { query: q, k: 20, mode };
  if (system) body.systems = [system];
  try {
    const r = await api("POST", "/v1/search", body);
    if (seq !== searchSeq || !list.isConnected) return;
    $("#search-meta").textContent = `${r.results.length} concepts · ${r.took_ms.toFixed(1)} ms · ${mode}`;
    list.innerHTML = r.results.map(hitHtml).join("") || `<li class="muted">No match.</li>`;
  } catch (e) {
    if (seq !== searchSeq || !list.isConnected) return;
    list.innerHTML = `<li class="error">${esc(e.message)}</li>`;
  }
}

function hitHtml(h) {
  const sides = [];
  if (h.lexical_rank) sides.push(`<span class="side lex" title="rank on the lexical side">lexical #${h.lexical_rank}</span>`);
  if (h.vector_rank) sides.push(`<span class="side vec" title="rank on the vector side">vector #${h.vector_rank}</span>`);
  const matched = h.matched_term && h.matched_term !== h.preferred_term ? `<div class="matched">matched “${esc(h.matched_term)}”</div>` : "";
  return `<li class="hit" data-system="${esc(h.system)}" data-code="${esc(h.code)}">
    <span class="sys">${esc(h.system)}</span>
    <a class="title" href="${conceptHref(h.system, h.code)}"><code>${esc(h.code)}</code> ${esc(h.preferred_term)}</a>
    <span class="score" title="${esc(h.score_kind)}">${h.score.toFixed(3)} <small>${esc(h.score_kind)}</small></span>
    ${sides.join("")}${matched}</li>`;
}

// ---------- concept ----------
async function renderConcept(system, code) {
  view().innerHTML = `<p class="muted">Loading ${esc(system)} ${esc(code)}…</p>`;
  let c;
  try {
    c = await api("GET", `/v1/systems/${encodeURIComponent(system)}/concepts/${encodeURIComponent(code)}`);
  } catch (e) {
    view().innerHTML = `<p class="error">${esc(e.message)}</p><p><a href="/">Back to search</a></p>`;
    return;
  }
  document.title = `${c.code} ${c.preferred_term} · ontovec`;
  const [anc, maps] = await Promise.all([
    api("GET", `/v1/systems/${encodeURIComponent(system)}/concepts/${encodeURIComponent(code)}/ancestors`).catch(() => ({ concepts: [] })),
    api("GET", `/v1/systems/${encodeURIComponent(system)}/concepts/${encodeURIComponent(code)}/mappings`).catch(() => ({ mappings: [] })),
  ]);
  // Breadcrumb: one ancestor per depth, farthest first.
  const byDepth = new Map();
  for (const a of anc.concepts) if (!byDepth.has(a.depth)) byDepth.set(a.depth, a);
  const crumbs = [...byDepth.keys()].sort((a, b) => b - a).map((d) => byDepth.get(d));
  const refList = (refs) =>
    refs.length ? `<ul class="refs">${refs.map((r) => `<li>${conceptLink(r.system, r.code)}</li>`).join("")}</ul>` : `<p class="muted">none</p>`;
  const mapRows = maps.mappings
    .map((m) => {
      const link = loaded(m.system) ? conceptLink(m.system, m.code) : esc(m.code);
      const arrow = m.direction === "forward" ? "→" : "←";
      return `<tr><td title="${m.direction}">${arrow}</td><td>${esc(m.system)}</td><td>${link}</td><td>${esc(m.preferred_term ?? "")}</td><td>${esc(m.relation)}</td><td class="muted">${esc(m.source)}</td></tr>`;
    })
    .join("");
  view().innerHTML = `
    <nav class="crumbs" aria-label="Ancestors">${crumbs.map((a) => conceptLink(a.system, a.code, `${a.code} ${a.preferred_term}`)).join(" › ")}${crumbs.length ? " › " : ""}<span>${esc(c.code)}</span></nav>
    <h1 id="concept-title"><span class="sys">${esc(c.system)}</span> <code>${esc(c.code)}</code> ${esc(c.preferred_term)}</h1>
    <p class="muted">release ${esc(c.release)}${c.active ? "" : " · <strong>inactive</strong>"}${c.semantic_types.length ? " · " + c.semantic_types.map(esc).join(", ") : ""}</p>
    <div class="grid">
      <section><h2>Terms</h2><table class="terms"><tbody>${c.terms.map((t) => `<tr><td>${esc(t.text)}</td><td class="muted">${esc(t.kind)}${t.source ? " · " + esc(t.source) : ""}</td></tr>`).join("")}</tbody></table></section>
      <section class="parents"><h2>Parents</h2>${refList(c.parents)}</section>
      <section class="children"><h2>Children</h2>${refList(c.children.slice(0, 200))}</section>
      <section class="mappings"><h2>Mappings</h2>${mapRows ? `<table><thead><tr><th></th><th>system</th><th>code</th><th>name</th><th>relation</th><th>source</th></tr></thead><tbody>${mapRows}</tbody></table>` : `<p class="muted">none</p>`}</section>
      ${c.xrefs.length ? `<section><h2>Cross-references</h2>${refList(c.xrefs)}</section>` : ""}
      <section class="related"><h2>Related concepts</h2><p class="muted">Loading…</p></section>
    </div>`;
  $("#view").focus();
  try {
    const r = await api("POST", "/v1/similar", { system: c.system, code: c.code, k: 10 });
    fill(".related", `<h2>Related concepts</h2><ol class="results">${r.results.map(hitHtml).join("")}</ol>`);
  } catch (e) {
    fill(".related", `<h2>Related concepts</h2><p class="muted">${esc(e.message)}</p>`);
  }
}

// ---------- model cards ----------
const modelHref = (name) => `/models/${encodeURIComponent(name)}`;

async function renderModels() {
  view().innerHTML = `<h1>Models</h1><p class="muted">Loading…</p>`;
  document.title = "Models · ontovec";
  try {
    const r = await api("GET", "/v1/models");
    const rows = r.models
      .map((m) => `<tr><td><a href="${modelHref(m.name)}">${esc(m.name)}</a>${m.default ? ' <span class="muted">(default)</span>' : ""}</td><td>${esc(m.kind)}</td><td>${m.dim}</td><td>${esc(m.base)}</td><td class="muted">${esc(m.trained_by)}</td></tr>`)
      .join("");
    view().innerHTML = `<h1>Models</h1><table class="models"><thead><tr><th>name</th><th>kind</th><th>dim</th><th>base</th><th>trained by</th></tr></thead><tbody>${rows}</tbody></table>`;
  } catch (e) {
    view().innerHTML = `<h1>Models</h1><p class="error">${esc(e.message)}</p>`;
  }
}

async function renderModel(name) {
  view().innerHTML = `<p class="muted">Loading model ${esc(name)}…</p>`;
  let m;
  try {
    m = await api("GET", `/v1/models/${encodeURIComponent(name)}`);
  } catch (e) {
    view().innerHTML = `<p class="error">${esc(e.message)}</p><p><a href="/models">All models</a></p>`;
    return;
  }
  document.title = `${m.name} · models · ontovec`;
  const pictures = m.files.filter((f) => f.content_type.startsWith("image/"));
  const card = m.files.find((f) => f.name === "MODEL_CARD.md");
  view().innerHTML = `
    <nav class="crumbs"><a href="/models">Models</a> › <span>${esc(m.name)}</span></nav>
    <h1 id="model-title">${esc(m.name)}</h1>
    <p class="muted">${esc(m.kind)} · ${m.dim}-d · base ${esc(m.base)} · ${esc(m.trained_by)}${m.default ? " · default" : ""}</p>
    ${pictures.length ? pictures.map((f) => `<figure class="card-pic"><img src="${esc(f.url)}" alt="${esc(f.name)} of ${esc(m.name)}"><figcaption><a href="${esc(f.url)}">${esc(f.name)}</a></figcaption></figure>`).join("") : `<p class="muted">No pictures: this model's folder has no curves.svg or eval.svg (a pretrained model, or one trained before the trainers drew them).</p>`}
    ${card ? `<p><a href="${esc(card.url)}">MODEL_CARD.md</a></p>` : ""}
    <details><summary>Evaluation numbers (JSON)</summary><pre>${esc(JSON.stringify(m.eval, null, 2))}</pre></details>`;
  $("#view").focus();
}

// ---------- tools ----------
function renderNormalize() {
  view().innerHTML = `
    <h1>Normalize mentions</h1>
    <p class="muted">One mention per line; each gets its best concepts.</p>
    <textarea id="mentions" rows="6" aria-label="Mentions">sugar diabetes type two\nfits\nheart attack</textarea>
    <div class="bar"><select id="norm-system" aria-label="System">${systemOptions("")}</select><button id="norm-run">Normalize</button></div>
    <div id="norm-out"></div>`;
  $("#norm-run").addEventListener("click", async () => {
    const mentions = $("#mentions").value.split("\n").map((s) => s.trim()).filter(Boolean).slice(0, 1024);
    if (!mentions.length) return;
    const body = { mentions, k: 3 };
    if ($("#norm-system").value) body.systems = [$("#norm-system").value];
    fill("#norm-out", `<p class="muted">Working…</p>`);
    try {
      const r = await api("POST", "/v1/normalize", body);
      fill("#norm-out", `<table><thead><tr><th>mention</th><th>candidates</th></tr></thead><tbody>${r.results
        .map((x) => `<tr><td>${esc(x.mention)}</td><td>${x.candidates.map((c) => `${conceptLink(c.system, c.code, `${c.system} ${c.code}`)} ${esc(c.preferred_term)} <small class="muted">${c.score.toFixed(3)}</small>`).join("<br>")}</td></tr>`)
        .join("")}</tbody></table>`);
    } catch (e) {
      fill("#norm-out", `<p class="error">${esc(e.message)}</p>`);
    }
  });
}

function renderRelatedness() {
  view().innerHTML = `
    <h1>Relatedness of two strings</h1>
    <div class="bar"><input id="rel-a" value="seizure" aria-label="First"><input id="rel-b" value="fits" aria-label="Second"><button id="rel-run">Score</button></div>
    <p id="rel-out" class="big"></p>`;
  const run = async () => {
    try {
      const r = await api("POST", "/v1/relatedness", { pairs: [{ a: { text: $("#rel-a").value }, b: { text: $("#rel-b").value } }] });
      fill("#rel-out", `${r.scores[0].toFixed(4)} <small class="muted">${esc(r.score_kind)} · ${esc(r.model)}</small>`);
    } catch (e) {
      fill("#rel-out", `<span class="error">${esc(e.message)}</span>`);
    }
  };
  $("#rel-run").addEventListener("click", run);
  ["#rel-a", "#rel-b"].forEach((s) => $(s).addEventListener("keydown", (e) => e.key === "Enter" && run()));
}

function renderNote() {
  view().innerHTML = `
    <h1>Code a note</h1>
    <textarea id="note-text" rows="10" aria-label="Note text" placeholder="Paste a clinical note…"></textarea>
    <div class="bar"><select id="note-system" aria-label="System"><option>ICD10CM</option><option>ICD9CM</option></select><button id="note-run">Code</button></div>
    <div id="note-out"></div>`;
  $("#note-run").addEventListener("click", async () => {
    const text = $("#note-text").value;
    if (!text.trim()) return;
    fill("#note-out", `<p class="muted">Coding…</p>`);
    try {
      const r = await api("POST", "/v1/notes/code", { text, k: 8, system: $("#note-system").value });
      const rows = r.codes
        .map((c) => {
          const ev = (c.evidence || []).map((e) => `<li>“${esc(e.segment)}” <small class="muted">${e.score.toFixed(3)}</small></li>`).join("");
          return `<tr class="code-row${c.predicted ? " predicted" : ""}"><td>${conceptLink(c.system, c.code)}</td><td>${esc(c.preferred_term)}${ev ? `<ul class="evidence">${ev}</ul>` : ""}</td><td>${c.score.toFixed(3)}</td><td>${c.predicted ? "✓" : ""}</td></tr>`;
        })
        .join("");
      fill("#note-out", `<p class="muted">${esc(r.method)} · ${esc(r.model)}${r.threshold != null ? ` · threshold ${r.threshold.toFixed(3)}` : ""}</p>
        <table><thead><tr><th>code</th><th>name / evidence</th><th>${esc(r.score_kind)}</th><th>predicted</th></tr></thead><tbody>${rows}</tbody></table>`);
    } catch (e) {
      fill("#note-out", `<p class="error">${esc(e.message)}</p>`);
    }
  });
}

render();
