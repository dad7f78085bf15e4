// hearth's web page: chat with the models of this server and manage them.
// It talks to the server's own Ollama API (/api/*) like any client, with the
// API key the user gives when the server asks for one (401). Conversations,
// settings and the key live in this browser's localStorage only.
"use strict";

const $ = (id) => document.getElementById(id);
const md = window.hearthMarkdown;

// ---- storage --------------------------------------------------------------

const saved = {
  get(key, fallback) {
    try {
      const v = localStorage.getItem("hearth." + key);
      return v === null ? fallback : JSON.parse(v);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem("hearth." + key, JSON.stringify(value));
    } catch {
      // Storage full or disabled: the page still works for this visit.
    }
  },
};

const state = {
  conversations: saved.get("conversations", []),
  current: saved.get("current", null),
  settings: Object.assign(
    { model: "", system: "", temperature: "", num_ctx: "", num_predict: "" },
    saved.get("settings", {})),
  apiKey: saved.get("apiKey", ""),
  models: [],
  // The answer being generated: { controller, conversation, message }.
  busy: null,
};

// ---- the API --------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function errorText(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    const e = body.error;
    if (typeof e === "string") return e;
    if (e && e.message) return e.message;
  } catch {
    // Not JSON: the text itself.
  }
  return text || response.status + " " + response.statusText;
}

// A request to the server, with the API key if there is one. A 401 asks the
// user for a key and tries again with it.
async function api(path, { method = "GET", body, signal } = {}) {
  for (;;) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.apiKey) headers.Authorization = "Bearer " + state.apiKey;
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    if (response.status === 401) {
      await askForKey(await errorText(response));
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await errorText(response));
    return response;
  }
}

// The objects of an NDJSON stream, as they arrive. An `{"error"}` object in
// the stream is thrown.
async function* ndjson(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const parse = (line) => {
    const value = JSON.parse(line);
    if (value.error) throw new ApiError(0, value.error.message || value.error);
    return value;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (line) yield parse(line);
    }
  }
  if (buffer.trim()) yield parse(buffer.trim());
}

const postJson = (path, body, signal) => api(path, { method: "POST", body, signal });

// ---- the API key ----------------------------------------------------------

let keyWaiters = null;

// Shows the key dialog (once, however many requests were refused) and
// resolves when the user has given a key.
function askForKey(reason) {
  $("key-button").hidden = false;
  if (!keyWaiters) {
    keyWaiters = [];
    $("key-reason").textContent = state.apiKey
      ? "The server refused the key: " + reason
      : "This server requires an API key: " + reason;
    $("key-input").value = "";
    if (!$("key-dialog").open) $("key-dialog").showModal();
    $("key-input").focus();
  }
  return new Promise((resolve) => keyWaiters.push(resolve));
}

function keyGiven(key) {
  state.apiKey = key;
  saved.set("apiKey", key);
  $("key-dialog").close();
  const waiters = keyWaiters || [];
  keyWaiters = null;
  waiters.forEach((resolve) => resolve());
}

// ---- formatting -------------------------------------------------------------

function bytes(n) {
  if (!n && n !== 0) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

function until(iso) {
  const seconds = Math.round((new Date(iso) - Date.now()) / 1000);
  if (!isFinite(seconds)) return "";
  if (seconds > 10 * 365 * 86400) return "never";
  if (seconds <= 0) return "now";
  if (seconds < 60) return "in " + seconds + " s";
  if (seconds < 3600) return "in " + Math.round(seconds / 60) + " min";
  return "in " + (seconds / 3600).toFixed(1) + " h";
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of [].concat(children)) if (child) node.append(child);
  return node;
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context (http on a LAN address): the older way.
    const area = el("textarea", { class: "offscreen" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1200);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// ---- models (the picker) --------------------------------------------------

async function loadModels() {
  const tags = await (await api("/api/tags")).json();
  state.models = (tags.models || []).map((m) => m.name).sort();
  const picker = $("model");
  const want = currentConversation()?.model || state.settings.model;
  picker.replaceChildren(...state.models.map((name) => el("option", { value: name, text: name })));
  if (!state.models.length) {
    picker.append(el("option", { value: "", text: "no models: pull one" }));
  } else if (state.models.includes(want)) {
    picker.value = want;
  } else if (state.models.includes("hearth-tiny:latest")) {
    picker.value = "hearth-tiny:latest";
  }
  return state.models;
}

// ---- conversations ----------------------------------------------------------

const currentConversation = () => state.conversations.find((c) => c.id === state.current);

function saveConversations() {
  saved.set("conversations", state.conversations);
  saved.set("current", state.current);
}

function newConversation() {
  const conversation = {
    id: Date.now().toString(36) + Math.random().toString(36).slice(2, 8),
    title: "New chat",
    model: $("model").value,
    messages: [],
    updated: Date.now(),
  };
  state.conversations.unshift(conversation);
  state.current = conversation.id;
  return conversation;
}

function renderConversationList() {
  const list = $("conversations");
  list.replaceChildren(...state.conversations.map((c) => el("li", {
    class: c.id === state.current ? "active" : "",
  }, [
    el("button", {
      type: "button", class: "conversation", text: c.title, title: c.title,
      onclick: () => openConversation(c.id),
    }),
    el("button", {
      type: "button", class: "icon small", "aria-label": "Delete conversation", text: "✕",
      onclick: () => deleteConversation(c.id),
    }),
  ])));
}

function openConversation(id) {
  state.current = id;
  saveConversations();
  const conversation = currentConversation();
  if (conversation && state.models.includes(conversation.model)) $("model").value = conversation.model;
  showView("chat");
  renderConversationList();
  renderMessages();
  closeSidebar();
}

function deleteConversation(id) {
  if (state.busy && state.busy.conversation.id === id) state.busy.controller.abort();
  state.conversations = state.conversations.filter((c) => c.id !== id);
  if (state.current === id) state.current = null;
  saveConversations();
  renderConversationList();
  renderMessages();
}

// ---- messages ---------------------------------------------------------------

// A message's thinking and answer: the API's `thinking` field, or a
// `<think>…</think>` block the model wrote into its answer.
function parts(message) {
  let thinking = message.thinking || "";
  let content = message.content || "";
  const m = content.match(/^\s*<think>([\s\S]*?)(<\/think>|$)/);
  if (m) {
    thinking += m[1];
    content = content.slice(m[0].length);
  }
  return { thinking: thinking.trim(), content };
}

function statsText(message) {
  const s = message.stats;
  if (!s || !s.eval_count) return "";
  const seconds = s.eval_duration / 1e9;
  const rate = seconds > 0 ? (s.eval_count / seconds).toFixed(1) : "–";
  return s.eval_count + " tokens · " + rate + " tokens/s";
}

function messageNode(conversation, message, index) {
  const last = index === conversation.messages.length - 1;
  const streaming = state.busy && state.busy.message === message;
  if (message.role === "user") {
    return el("div", { class: "msg user", "data-index": String(index) }, [
      el("div", { class: "bubble", text: message.content }),
      el("div", { class: "actions" }, [
        el("button", {
          type: "button", class: "link edit", text: "Edit",
          onclick: (e) => editMessage(conversation, index, e.target.closest(".msg")),
        }),
      ]),
    ]);
  }
  const node = el("div", { class: "msg assistant", "data-index": String(index) });
  fillAnswer(node, message, streaming);
  const meta = el("div", { class: "meta" });
  meta.append(el("span", { class: "stats", text: statsText(message) }));
  if (message.stopped) meta.append(el("span", { class: "tag stopped", text: "stopped" }));
  if (message.model) meta.append(el("span", { class: "tag", text: message.model }));
  if (!streaming) {
    meta.append(el("button", {
      type: "button", class: "link copy-answer", text: "Copy",
      onclick: (e) => copyText(parts(message).content, e.target),
    }));
    if (last) {
      meta.append(el("button", {
        type: "button", class: "link regenerate", text: "Regenerate",
        onclick: () => regenerate(conversation),
      }));
    }
  }
  node.append(meta);
  return node;
}

// The thinking (folded) and the answer of `message` into `node`.
function fillAnswer(node, message, streaming) {
  const { thinking, content } = parts(message);
  let think = node.querySelector(".thinking");
  if (thinking) {
    if (!think) {
      think = el("details", { class: "thinking" }, [
        el("summary", { text: "Thinking" }), el("div", { class: "think-body" })]);
      node.prepend(think);
    }
    think.querySelector("summary").textContent = streaming && !content ? "Thinking…" : "Thought";
    think.querySelector(".think-body").textContent = thinking;
  }
  let answer = node.querySelector(".content");
  if (!answer) {
    answer = el("div", { class: "content markdown" });
    node.insertBefore(answer, think ? think.nextSibling : node.firstChild);
  }
  answer.innerHTML = md.render(content);
  if (streaming && !content && !thinking) answer.innerHTML = '<span class="cursor"></span>';
  if (message.error) answer.append(el("div", { class: "error inline", text: message.error }));
  node.classList.toggle("streaming", Boolean(streaming));
}

function renderMessages() {
  const box = $("messages");
  const conversation = currentConversation();
  box.replaceChildren();
  if (!conversation || !conversation.messages.length) {
    box.append(emptyNode);
    return;
  }
  conversation.messages.forEach((m, i) => box.append(messageNode(conversation, m, i)));
  box.scrollTop = box.scrollHeight;
}

function editMessage(conversation, index, node) {
  if (state.busy) return;
  const message = conversation.messages[index];
  const area = el("textarea", { class: "edit-area", rows: "3" });
  area.value = message.content;
  const send = () => {
    const text = area.value.trim();
    if (!text) return;
    conversation.messages = conversation.messages.slice(0, index);
    conversation.messages.push({ role: "user", content: text });
    generate(conversation);
  };
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
    if (e.key === "Escape") renderMessages();
  });
  node.replaceChildren(area, el("div", { class: "actions" }, [
    el("button", { type: "button", class: "link", text: "Cancel", onclick: renderMessages }),
    el("button", { type: "button", class: "primary small save-edit", text: "Send", onclick: send }),
  ]));
  area.focus();
}

function regenerate(conversation) {
  if (state.busy) return;
  const last = conversation.messages[conversation.messages.length - 1];
  if (last && last.role === "assistant") conversation.messages.pop();
  generate(conversation);
}

function send() {
  const text = $("prompt").value.trim();
  if (!text || state.busy) return;
  const conversation = currentConversation() || newConversation();
  if (!conversation.messages.length) conversation.title = text.slice(0, 60);
  conversation.messages.push({ role: "user", content: text });
  $("prompt").value = "";
  autosize();
  generate(conversation);
}

function chatOptions() {
  const options = {};
  for (const name of ["temperature", "num_ctx", "num_predict"]) {
    const v = $(name).value.trim();
    if (v !== "") options[name] = Number(v);
  }
  return options;
}

// Streams an answer to the conversation's last message.
async function generate(conversation) {
  const model = $("model").value;
  if (!model) {
    showError("There is no model to chat with: pull one on the Models page.");
    return;
  }
  showError("");
  const message = { role: "assistant", content: "", thinking: "", model };
  conversation.model = model;
  conversation.messages.push(message);
  conversation.updated = Date.now();
  // The conversation last written to goes to the top of the list.
  state.conversations = [conversation, ...state.conversations.filter((c) => c !== conversation)];
  const controller = new AbortController();
  state.busy = { controller, conversation, message };
  setBusy(true);
  saveConversations();
  renderConversationList();
  renderMessages();

  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  for (const m of conversation.messages.slice(0, -1)) messages.push({ role: m.role, content: m.content });
  let pending = false;
  const update = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      // Kept as it grows (once a frame, not once a token).
      saveConversations();
      updateStreaming(conversation, message);
    });
  };
  try {
    const response = await postJson("/api/chat", {
      model, messages, stream: true, options: chatOptions(),
    }, controller.signal);
    for await (const chunk of ndjson(response)) {
      if (chunk.message) {
        message.content += chunk.message.content || "";
        message.thinking += chunk.message.thinking || "";
      }
      if (chunk.done) {
        message.stats = {
          eval_count: chunk.eval_count, eval_duration: chunk.eval_duration,
          prompt_eval_count: chunk.prompt_eval_count, done_reason: chunk.done_reason,
        };
      }
      update();
    }
  } catch (e) {
    if (e.name === "AbortError") message.stopped = true;
    else message.error = e.message;
  } finally {
    state.busy = null;
    setBusy(false);
    saveConversations();
    if (state.current === conversation.id) renderMessages();
  }
}

function updateStreaming(conversation, message) {
  if (state.current !== conversation.id || state.busy?.message !== message) return;
  const index = conversation.messages.indexOf(message);
  const node = $("messages").querySelector('.msg[data-index="' + index + '"]');
  if (!node) return;
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  fillAnswer(node, message, true);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  document.body.classList.toggle("busy", busy);
}

function autosize() {
  const area = $("prompt");
  area.style.height = "auto";
  area.style.height = Math.min(area.scrollHeight, 200) + "px";
}

// ---- the models page ------------------------------------------------------

function contextOf(show) {
  const info = show.model_info || {};
  const key = Object.keys(info).find((k) => k.endsWith(".context_length"));
  return key ? info[key] : null;
}

async function refreshModelsPage() {
  showModelsError("");
  try {
    await Promise.all([renderInstalled(), renderLoaded()]);
  } catch (e) {
    showModelsError(e.message);
  }
}

function showModelsError(message) {
  const box = $("models-error");
  box.textContent = message;
  box.hidden = !message;
}

async function renderInstalled() {
  const tags = await (await api("/api/tags")).json();
  const models = (tags.models || []).sort((a, b) => a.name.localeCompare(b.name));
  const body = $("installed").querySelector("tbody");
  body.replaceChildren(...models.map((m) => {
    const d = m.details || {};
    const context = el("td", { class: "context", "data-label": "context", text: "…" });
    api("/api/show", { method: "POST", body: { model: m.name } })
      .then((r) => r.json())
      .then((show) => { context.textContent = contextOf(show)?.toLocaleString() ?? "–"; })
      .catch(() => { context.textContent = "–"; });
    const remove = el("button", { type: "button", class: "link danger delete", text: "Delete" });
    remove.addEventListener("click", () => deleteModel(m.name, remove));
    return el("tr", { "data-model": m.name }, [
      el("td", { class: "name" }, [el("button", {
        type: "button", class: "link model-name", text: m.name, onclick: () => showModel(m.name),
      })]),
      el("td", { "data-label": "size", text: bytes(m.size) }),
      el("td", { "data-label": "parameters", text: d.parameter_size || "–" }),
      el("td", { "data-label": "quantization", text: d.quantization_level || "–" }),
      context,
      el("td", { class: "row-actions" }, [
        el("button", { type: "button", class: "link", text: "Details", onclick: () => showModel(m.name) }),
        remove,
      ]),
    ]);
  }));
}

async function renderLoaded() {
  const ps = await (await api("/api/ps")).json();
  const models = ps.models || [];
  $("loaded-empty").hidden = models.length > 0;
  $("loaded").hidden = models.length === 0;
  $("loaded").querySelector("tbody").replaceChildren(...models.map((m) => el("tr", { "data-model": m.name }, [
    el("td", { class: "name", text: m.name }),
    el("td", { "data-label": "memory", text: bytes(m.size) }),
    el("td", { "data-label": "context", text: m.context_length ? m.context_length.toLocaleString() : "–" }),
    el("td", { "data-label": "unloads", text: until(m.expires_at) }),
    el("td", { class: "row-actions" }, [el("button", {
      type: "button", class: "link unload", text: "Unload",
      onclick: async () => {
        try {
          await postJson("/api/generate", { model: m.name, keep_alive: 0 });
        } catch (e) {
          showModelsError(e.message);
        }
        refreshModelsPage();
      },
    })]),
  ])));
}

// Deleting asks to be clicked twice (no browser dialog).
async function deleteModel(name, button) {
  if (!button.classList.contains("confirm")) {
    button.classList.add("confirm");
    button.textContent = "Delete?";
    setTimeout(() => {
      button.classList.remove("confirm");
      button.textContent = "Delete";
    }, 4000);
    return;
  }
  try {
    await api("/api/delete", { method: "DELETE", body: { model: name } });
  } catch (e) {
    showModelsError(e.message);
  }
  await refreshModelsPage();
  loadModels().catch(() => {});
}

async function showModel(name) {
  const dialog = $("show-dialog");
  $("show-title").textContent = name;
  const body = $("show-body");
  body.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  dialog.showModal();
  try {
    const show = await (await postJson("/api/show", { model: name })).json();
    const d = show.details || {};
    const facts = [
      ["Family", d.family], ["Parameters", d.parameter_size], ["Quantization", d.quantization_level],
      ["Format", d.format], ["Context", contextOf(show)?.toLocaleString()],
      ["Capabilities", (show.capabilities || []).join(", ")],
      ["Modified", show.modified_at && new Date(show.modified_at).toLocaleString()],
    ].filter(([, v]) => v);
    const section = (title, text) => text
      ? el("details", {}, [el("summary", { text: title }), el("pre", { text })]) : null;
    const info = Object.entries(show.model_info || {})
      .filter(([, v]) => v !== null && typeof v !== "object")
      .map(([k, v]) => k + ": " + v).join("\n");
    body.replaceChildren(...[
      el("dl", { class: "facts" }, facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])),
      section("Parameters", show.parameters),
      section("System prompt", show.system),
      section("Template", show.template),
      section("Model info", info),
      section("Modelfile", show.modelfile),
      section("License", show.license),
    ].filter(Boolean));
  } catch (e) {
    body.replaceChildren(el("p", { class: "error", text: e.message }));
  }
}

async function pull(name, insecure) {
  const bar = el("progress", { class: "pull-progress", max: "1", value: "0" });
  const status = el("span", { class: "status", text: "starting" });
  const percent = el("span", { class: "percent" });
  const controller = new AbortController();
  const cancel = el("button", {
    type: "button", class: "link", text: "Cancel", onclick: () => controller.abort(),
  });
  const item = el("div", { class: "pull", "data-model": name }, [
    el("div", { class: "pull-head" }, [el("strong", { text: name }), status, percent, cancel]),
    bar,
  ]);
  $("pulls").prepend(item);
  try {
    const response = await postJson("/api/pull", { model: name, insecure, stream: true }, controller.signal);
    for await (const step of ndjson(response)) {
      status.textContent = step.status;
      if (step.total) {
        bar.max = step.total;
        bar.value = step.completed || 0;
        percent.textContent = Math.floor((100 * (step.completed || 0)) / step.total) + "% of " + bytes(step.total);
      }
      if (step.status === "success") {
        bar.max = 1;
        bar.value = 1;
        item.classList.add("done");
      }
    }
  } catch (e) {
    item.classList.add("failed");
    status.textContent = e.name === "AbortError" ? "cancelled" : e.message;
  }
  cancel.remove();
  refreshModelsPage();
  loadModels().catch(() => {});
}

// ---- views and wiring -----------------------------------------------------

function showView(view) {
  $("chat-view").hidden = view !== "chat";
  $("models-view").hidden = view !== "models";
  $("nav-chat").classList.toggle("active", view === "chat");
  $("nav-models").classList.toggle("active", view === "models");
  if (view === "models") refreshModelsPage();
  closeSidebar();
}

function openSidebar() {
  document.body.classList.add("sidebar-open");
  $("scrim").hidden = false;
}

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  $("scrim").hidden = true;
}

function bindSettings() {
  $("settings-toggle").addEventListener("click", () => {
    const panel = $("settings");
    panel.hidden = !panel.hidden;
    $("settings-toggle").setAttribute("aria-expanded", String(!panel.hidden));
  });
  for (const name of ["system", "temperature", "num_ctx", "num_predict"]) {
    $(name).value = state.settings[name] ?? "";
    $(name).addEventListener("input", () => {
      state.settings[name] = $(name).value;
      saved.set("settings", state.settings);
    });
  }
  $("model").addEventListener("change", () => {
    state.settings.model = $("model").value;
    saved.set("settings", state.settings);
  });
}

let emptyNode;

function init() {
  emptyNode = $("empty");
  bindSettings();
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $("prompt").addEventListener("input", autosize);
  $("stop").addEventListener("click", () => state.busy?.controller.abort());
  $("new-chat").addEventListener("click", () => {
    state.current = null;
    saveConversations();
    showView("chat");
    renderConversationList();
    renderMessages();
    $("prompt").focus();
  });
  $("nav-chat").addEventListener("click", () => showView("chat"));
  $("nav-models").addEventListener("click", () => showView("models"));
  $("menu").addEventListener("click", openSidebar);
  $("menu2").addEventListener("click", openSidebar);
  $("scrim").addEventListener("click", closeSidebar);
  $("refresh").addEventListener("click", refreshModelsPage);
  $("pull-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("pull-name").value.trim();
    if (!name) return;
    $("pull-name").value = "";
    pull(name, $("pull-insecure").checked);
  });
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("key-input").value.trim();
    if (key) keyGiven(key);
  });
  $("key-forget").addEventListener("click", () => {
    state.apiKey = "";
    saved.set("apiKey", "");
    $("key-input").value = "";
  });
  // Escape would close the dialog with requests still waiting for a key.
  $("key-dialog").addEventListener("cancel", (e) => e.preventDefault());
  $("key-button").hidden = !state.apiKey;
  $("key-button").addEventListener("click", () => askForKey("enter a new one").then(() => {
    loadModels().catch((e) => showError(e.message));
  }));
  $("show-close").addEventListener("click", () => $("show-dialog").close());
  // An answer still streaming is kept as far as it got.
  window.addEventListener("pagehide", () => { if (state.busy) saveConversations(); });
  // Copy buttons of code blocks, wherever they are.
  document.addEventListener("click", (e) => {
    const button = e.target.closest(".copy-code");
    if (button) copyText(button.closest(".code").querySelector("code").textContent, button);
  });

  api("/api/version").then((r) => r.json()).then((v) => {
    $("version").textContent = "hearth " + v.version;
  }).catch(() => {});
  renderConversationList();
  renderMessages();
  loadModels().then(() => {
    document.body.dataset.ready = "true";
  }).catch((e) => showError("Could not list the models: " + e.message));
}

init();
