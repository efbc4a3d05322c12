// The fusionrec page: plain DOM calls against the server's JSON API, no framework, nothing fetched from elsewhere.
"use strict";

const KEY_STORE = "fusionrec.apiKey";
const K = 12;
const state = { modalities: [], basket: [] };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  const key = apiKey();
  if (key) headers.set("Authorization", "Bearer " + key);
  return headers;
}

async function api(path, opts = {}) {
  const resp = await fetch(path, { ...opts, headers: authHeaders(opts.headers || {}) });
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    body = null;
  }
  if (!resp.ok) {
    let detail = body && body.detail !== undefined ? body.detail : resp.statusText;
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    throw new Error(`${resp.status}: ${detail}`);
  }
  return body;
}

function say(text, isError = false) {
  const box = $("#status");
  box.textContent = text;
  box.className = isError ? "error" : "";
}

async function guarded(fn) {
  try {
    await fn();
  } catch (e) {
    say(e.message, true);
  }
}

const enc = encodeURIComponent;

// ------------------------------------------------------------------ item cards

function placeholder(card) {
  const label = card.title || card.item_id;
  let hue = 0;
  for (const ch of String(card.item_id)) hue = (hue * 31 + ch.charCodeAt(0)) % 360;
  return el("div", { class: "placeholder", style: `--hue:${hue}` }, el("span", {}, label));
}

function imageNode(card) {
  if (!card.image) return placeholder(card);
  const img = el("img", { alt: card.title || card.item_id, loading: "eager" });
  img.addEventListener("error", () => img.replaceWith(placeholder(card)));
  if (apiKey()) {
    // an <img> cannot send an Authorization header: fetch the bytes and show them from a blob
    fetch(card.image, { headers: authHeaders() })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
      .then((b) => (img.src = URL.createObjectURL(b)))
      .catch(() => img.replaceWith(placeholder(card)));
  } else {
    img.src = card.image;
  }
  return img;
}

function bars(explanation) {
  if (!explanation || !explanation.parts) return null;
  const parts = Object.entries(explanation.parts);
  const total = parts.reduce((s, [, v]) => s + Math.abs(v), 0) || 1;
  const box = el("div", { class: "bars", title: `${explanation.kind}` });
  for (const [name, value] of parts) {
    const share = Math.abs(value) / total;
    box.append(
      el(
        "div",
        { class: "bar" + (value < 0 ? " neg" : ""), "data-part": name },
        el("span", { class: "bar-name" }, name),
        el("span", { class: "bar-track" }, el("span", { class: "bar-fill", style: `width:${(share * 100).toFixed(1)}%` })),
        el("span", { class: "bar-value" }, value.toFixed(3))
      )
    );
  }
  return box;
}

function cardNode(card, extra = {}) {
  const node = el(
    "div",
    { class: "card" + (card.added ? " added" : ""), "data-item-id": card.item_id, tabindex: "0" },
    el("div", { class: "thumb" }, imageNode(card)),
    el("div", { class: "caption", title: card.title || "" }, card.title || card.item_id),
    el("div", { class: "meta muted" }, extra.meta || `#${card.item_id}`),
    bars(extra.explanation)
  );
  const add = el("button", { class: "plus", title: "add to the new-user basket", type: "button" }, "+");
  add.addEventListener("click", (ev) => {
    ev.stopPropagation();
    addToBasket(card.item_id);
  });
  node.append(add);
  node.addEventListener("click", () => guarded(() => showItem(card.item_id)));
  node.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") guarded(() => showItem(card.item_id));
  });
  return node;
}

// Title / image of the ranked items, asked for in one request.
async function withCards(ranked) {
  if (!ranked.length) return [];
  const qs = ranked.map((r) => "ids=" + enc(r.item_id)).join("&");
  const meta = await api("/web/items?" + qs);
  return ranked.map((r, j) => ({ ...meta.items[j], ...r, title: r.title || meta.items[j].title }));
}

function fill(target, cards, metaOf = () => ({})) {
  target.replaceChildren(...cards.map((c) => cardNode(c, metaOf(c))));
  if (!cards.length) target.append(el("p", { class: "muted" }, "nothing to show"));
  target.dataset.state = "ready";
}

// ------------------------------------------------------------------ users

async function searchUsers() {
  const q = $("#user-search").value;
  const out = await api(`/web/users?limit=100&q=${enc(q)}`);
  $("#user-count").textContent = `${out.total} user(s)` + (out.total > out.users.length ? `, first ${out.users.length} shown` : "");
  $("#user-list").replaceChildren(
    ...out.users.map((u) =>
      el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "user", "data-user-id": u.user_id, onclick: () => guarded(() => showUser(u.user_id)) },
          `user ${u.user_id}`,
          el("span", { class: "muted" }, ` · ${u.interactions}`)
        )
      )
    )
  );
  $("#user-list").dataset.state = "ready";
}

async function showUser(userId) {
  $("#history").dataset.state = "loading";
  $("#recs").dataset.state = "loading";
  $("#user-title").textContent = `User ${userId}`;
  const [hist, recs] = await Promise.all([
    api(`/web/users/${enc(userId)}/history?limit=24`),
    api(`/users/${enc(userId)}/recommendations?k=${K}&explain=true`),
  ]);
  $("#history-note").textContent = `${hist.total} item(s)` + (hist.ordered_by_time ? ", most recent first" : "");
  fill($("#history"), hist.items, (c) => ({ meta: c.time ? new Date(c.time * 1000).toISOString().slice(0, 10) : `#${c.item_id}` }));
  $("#recs-note").textContent = `(${recs.source})`;
  const cards = await withCards(recs.items);
  fill($("#recs"), cards, (c) => ({ meta: `score ${c.score.toFixed(3)}`, explanation: c.explanation }));
  say(`user ${userId}: ${hist.total} training items, ${recs.items.length} recommendations`);
}

// ------------------------------------------------------------------ items

async function showItem(itemId) {
  const panel = $("#item-panel");
  panel.hidden = false;
  $("#similar").dataset.state = "loading";
  const [info, cards] = await Promise.all([api(`/items/${enc(itemId)}`), api(`/web/items?ids=${enc(itemId)}`)]);
  const card = cards.items[0];
  $("#item-title").textContent = info.title || `Item ${itemId}`;
  $("#item-detail").replaceChildren(
    el("div", { class: "big" }, imageNode(card)),
    el(
      "dl",
      {},
      el("dt", {}, "id"),
      el("dd", {}, info.item_id),
      el("dt", {}, "interactions"),
      el("dd", {}, String(info.interactions)),
      el("dt", {}, "modalities"),
      el("dd", {}, info.modalities.join(", ") || "none"),
      el("dt", {}, "origin"),
      el("dd", {}, info.added ? "added through the API" : "catalogue")
    )
  );
  const rows = [];
  for (const modality of ["all", ...state.modalities]) {
    const label = modality === "all" ? "by the model" : `by ${modality}`;
    const box = el("div", { class: "row", id: `similar-${modality}` });
    rows.push(el("h3", {}, `Similar ${label}`), box);
    if (modality !== "all" && !info.modalities.includes(modality)) {
      box.append(el("p", { class: "muted" }, `no ${modality} content for this item`));
      continue;
    }
    try {
      const sim = await api(`/items/${enc(itemId)}/similar?k=${K}&modality=${enc(modality)}`);
      fill(box, await withCards(sim.items), (c) => ({ meta: `cos ${c.score.toFixed(3)}` }));
      rows[rows.length - 2].append(el("span", { class: "muted" }, ` (${sim.source})`));
    } catch (e) {
      box.append(el("p", { class: "muted" }, e.message));
    }
  }
  $("#similar").replaceChildren(...rows);
  $("#similar").dataset.state = "ready";
  panel.scrollIntoView({ behavior: "smooth", block: "start" });
}

// ------------------------------------------------------------------ fold-in

function addToBasket(itemId) {
  if (!state.basket.includes(itemId)) state.basket.push(itemId);
  drawBasket();
}

function drawBasket() {
  $("#fold-basket").replaceChildren(
    ...state.basket.map((id) =>
      el(
        "span",
        { class: "chip", "data-item-id": id },
        id,
        el(
          "button",
          {
            type: "button",
            title: "remove",
            onclick: () => {
              state.basket = state.basket.filter((x) => x !== id);
              drawBasket();
            },
          },
          "×"
        )
      )
    )
  );
}

async function foldIn() {
  const typed = $("#fold-input").value.trim();
  if (typed) {
    addToBasket(typed);
    $("#fold-input").value = "";
  }
  $("#fold-recs").dataset.state = "loading";
  const out = await api("/recommendations", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ items: state.basket, k: K }),
  });
  fill($("#fold-recs"), await withCards(out.items), (c) => ({ meta: `score ${c.score.toFixed(3)}` }));
  say(`new user from ${state.basket.length} item(s): ${out.source}`);
}

// ------------------------------------------------------------------ new item

async function addItem(form) {
  const data = new FormData(form);
  const file = $("#new-image").files[0];
  if (!file) data.delete("image");
  for (const name of ["title", "text"]) if (!String(data.get(name) || "").trim()) data.delete(name);
  const created = await api("/items", { method: "POST", body: data });
  const [card] = (await api(`/web/items?ids=${enc(created.item_id)}`)).items;
  const reach = await api(`/web/items/${enc(created.item_id)}/audience?k=${K}&limit=20`);
  const result = $("#new-item-result");
  result.replaceChildren(
    el(
      "div",
      { class: "detail" },
      el("div", { class: "row", id: "new-item-card" }, cardNode(card, { meta: `from ${created.modalities.join(" + ")}` })),
      el(
        "div",
        {},
        el("p", {}, `Item ${created.item_id} is in the catalogue (${created.items} items). It enters the top ${K} of ${reach.reached} user(s):`),
        el(
          "ul",
          { id: "audience", class: "audience" },
          ...reach.users.map((u) =>
            el(
              "li",
              {},
              el(
                "button",
                { type: "button", class: "user", "data-user-id": u.user_id, onclick: () => guarded(() => showUser(u.user_id)) },
                `user ${u.user_id}`
              ),
              el("span", { class: "muted" }, ` rank ${u.rank}`)
            )
          )
        )
      )
    )
  );
  result.dataset.state = "ready";
  say(`added item ${created.item_id}`);
}

// ------------------------------------------------------------------ start

async function start() {
  const info = await api("/version");
  state.modalities = info.modalities || [];
  $("#model-info").textContent =
    `${info.model} · ${info.users} users · ${info.items} items` + (state.modalities.length ? ` · ${state.modalities.join(", ")}` : "");
  await searchUsers();
  say("ready");
}

$("#api-key").value = apiKey();
$("#key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = $("#api-key").value.trim();
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
  guarded(start);
});
let searchTimer = null;
$("#user-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => guarded(searchUsers), 200);
});
$("#fold-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  guarded(foldIn);
});
$("#fold-clear").addEventListener("click", () => {
  state.basket = [];
  drawBasket();
  $("#fold-recs").replaceChildren();
});
$("#new-item-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  guarded(() => addItem(ev.target));
});
guarded(start);
