/* The agent console: one WebSocket (/ws/agent/), frames as in docs/protocol.md.
 *
 * Rules this file keeps:
 * - every piece of user or server text goes into the page as text (textContent,
 *   createElement); nothing is ever parsed as HTML;
 * - a reply stays in the outbox (and in sessionStorage) until the server acks it,
 *   and is resent with the same client_id after a reconnect, so it is stored once;
 * - messages are kept per conversation keyed by seq; a gap is filled by `open`
 *   with the last contiguous seq, and the heartbeat tells when anything was missed.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("console-config");
  if (!configNode) return;
  var config = JSON.parse(configNode.textContent);
  var S = config.strings || {};

  var HEARTBEAT_MS = 20000;
  var PONG_TIMEOUT_MS = 10000;
  var BACKOFF_BASE_MS = 1000;
  var BACKOFF_MAX_MS = 30000;
  var TYPING_IDLE_MS = 3000;
  var TYPING_REFRESH_MS = 4000;
  var TYPING_EXPIRE_MS = 8000;
  var OPEN_RETRY_MS = 10000;
  var ACK_TIMEOUT_MS = 8000;
  var CONNECT_TIMEOUT_MS = 10000;
  var TRANSIENT_ERRORS = { rate_limited: true, hello_required: true };
  var OUTBOX_KEY = "helpdesk.console.outbox." + config.agent.id;
  var CURRENT_KEY = "helpdesk.console.current." + config.agent.id;
  var SOUND_KEY = "helpdesk.console.sound";

  function t(key, params) {
    var s = Object.prototype.hasOwnProperty.call(S, key) ? S[key] : key;
    if (params) {
      s = s.replace(/%\((\w+)\)s/g, function (m, name) {
        return Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : m;
      });
    }
    return s;
  }

  function $(id) {
    return document.getElementById(id);
  }

  /* Build an element; `text` is always set as text, never as markup. */
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "className") node.className = value;
        else if (name === "dataset") Object.assign(node.dataset, value);
        else node.setAttribute(name, value === true ? "" : String(value));
      });
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* A URL we are willing to put in href/src: http(s) only, resolved against this page. */
  function safeHttpUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      var url = new URL(value, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function isAbsoluteHttpUrl(value) {
    return typeof value === "string" && /^https?:\/\//i.test(value) && safeHttpUrl(value) !== null;
  }

  var dom = {
    app: $("app"),
    conn: $("connection-status"),
    connText: document.querySelector("#connection-status .conn-text"),
    list: $("conversation-list"),
    listEmpty: $("conversation-empty"),
    unreadTotal: $("unread-total"),
    placeholder: $("chat-placeholder"),
    chat: $("chat"),
    chatTitle: $("chat-title"),
    chatStatus: $("chat-status"),
    chatAssignee: $("chat-assignee"),
    resolve: $("resolve-button"),
    block: $("block-button"),
    blockForm: $("block-confirm"),
    blockScope: $("block-scope"),
    blockReason: $("block-reason"),
    blockCancel: $("block-cancel"),
    rating: $("conversation-rating"),
    messages: $("message-list"),
    typing: $("typing-indicator"),
    composer: $("composer"),
    input: $("reply-input"),
    attach: $("attach-input"),
    details: $("visitor-details"),
    detailsEmpty: $("visitor-empty"),
    detailsFields: $("visitor-fields"),
    detailsToggle: $("details-toggle"),
    detailsClose: $("details-close"),
    back: $("back-to-list"),
    notifyEnable: $("notify-enable"),
    soundToggle: $("sound-toggle"),
    toast: $("toast"),
    suggest: $("suggest-button"),
    assist: $("assist"),
    suggestionText: $("suggestion-text"),
    suggestionSource: $("suggestion-source"),
    suggestionInsert: $("suggestion-insert"),
    suggestionDismiss: $("suggestion-dismiss"),
  };

  // --- formatting (the browser's locale for dates, the page's language for names) ----------

  var pageLang = document.documentElement.lang || undefined;
  var fmtTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  var fmtWeekday = new Intl.DateTimeFormat(undefined, { weekday: "short" });
  var fmtShortDate = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  var fmtDay = new Intl.DateTimeFormat(undefined, { dateStyle: "full" });
  var fmtDateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var regionNames = null;
  try {
    regionNames = new Intl.DisplayNames(pageLang ? [pageLang] : undefined, { type: "region" });
  } catch (e) {
    regionNames = null;
  }

  function parseDate(value) {
    if (!value) return null;
    var d = new Date(value);
    return isNaN(d.getTime()) ? null : d;
  }

  function startOfDay(d) {
    return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  }

  function listTime(value) {
    var d = parseDate(value);
    if (!d) return "";
    var days = Math.round((startOfDay(new Date()) - startOfDay(d)) / 86400000);
    if (days <= 0) return fmtTime.format(d);
    if (days === 1) return t("yesterday");
    if (days < 7) return fmtWeekday.format(d);
    return fmtShortDate.format(d);
  }

  function dayLabel(d) {
    var days = Math.round((startOfDay(new Date()) - startOfDay(d)) / 86400000);
    if (days === 0) return t("today");
    if (days === 1) return t("yesterday");
    return fmtDay.format(d);
  }

  var SVG_NS = "http://www.w3.org/2000/svg";

  /* A small stroked icon from one SVG path (no icon fonts, no emoji: both may be missing). */
  function icon(pathData, className) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "16");
    svg.setAttribute("height", "16");
    svg.setAttribute("fill", "none");
    svg.setAttribute("stroke", "currentColor");
    svg.setAttribute("stroke-width", "2");
    svg.setAttribute("stroke-linecap", "round");
    svg.setAttribute("stroke-linejoin", "round");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    if (className) svg.setAttribute("class", className);
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", pathData);
    svg.appendChild(path);
    return svg;
  }

  var FILE_ICON = "M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5";

  function countryName(code) {
    if (!code) return "";
    var name = code;
    if (regionNames) {
      try {
        name = regionNames.of(code.toUpperCase()) || code;
      } catch (e) {
        name = code;
      }
    }
    return name;
  }

  function formatSize(bytes) {
    if (typeof bytes !== "number") return "";
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(0) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }

  // --- state -----------------------------------------------------------------------------

  var state = {
    conversations: new Map(), // id -> summary frame
    messages: new Map(), // conversation id -> Map(seq -> message frame)
    contiguous: new Map(), // conversation id -> highest seq with every lower seq loaded
    visitors: new Map(), // conversation id -> visitor frame
    currentId: null,
    lastMessageId: 0, // the highest message id this page has heard of
    opening: new Map(), // conversation id -> time an `open` was sent (one in flight)
    readSent: new Map(), // conversation id -> highest visitor seq we sent `read` for
    typing: new Map(), // conversation id -> {visitor: expiry, agents: Map(name -> expiry)}
    outbox: loadOutbox(),
    uploads: [], // {key, conversation_id, name}
  };

  function loadOutbox() {
    try {
      var raw = window.sessionStorage.getItem(OUTBOX_KEY);
      var items = raw ? JSON.parse(raw) : [];
      return Array.isArray(items) ? items.filter(function (e) { return e && e.client_id; }) : [];
    } catch (e) {
      return [];
    }
  }

  function saveOutbox() {
    try {
      window.sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(state.outbox));
    } catch (e) {
      /* storage full or blocked: the outbox still lives in memory */
    }
  }

  function newClientId() {
    var rand = "";
    if (window.crypto && window.crypto.getRandomValues) {
      var buf = new Uint32Array(2);
      window.crypto.getRandomValues(buf);
      rand = buf[0].toString(36) + buf[1].toString(36);
    } else {
      rand = Math.random().toString(36).slice(2);
    }
    return "a" + config.agent.id + "-" + Date.now().toString(36) + "-" + rand;
  }

  /* Put exactly `nodes` in `container`, in order, moving only what is out of place, so a
   * live region announces new messages rather than the whole list again. */
  function reconcile(container, nodes) {
    for (var i = 0; i < nodes.length; i++) {
      var current = container.children[i];
      if (current !== nodes[i]) container.insertBefore(nodes[i], current || null);
    }
    while (container.children.length > nodes.length) container.removeChild(container.lastElementChild);
  }

  // --- rendering scheduler (timers, not rAF: hidden tabs must still update the title) ------

  var dirty = {};
  var flushScheduled = false;

  function schedule(what) {
    dirty[what] = true;
    if (!flushScheduled) {
      flushScheduled = true;
      window.setTimeout(flush, 0);
    }
  }

  function flush() {
    flushScheduled = false;
    var d = dirty;
    dirty = {};
    if (d.list) renderList();
    if (d.header) renderHeader();
    if (d.messages) renderMessages();
    if (d.visitor) renderVisitor();
    if (d.typing) renderTyping();
  }

  // --- connection --------------------------------------------------------------------------

  var ws = null;
  var ready = false; // welcome received on the current socket
  var attempts = 0;
  var reconnectTimer = null;
  var countdownTimer = null;
  var heartbeatTimer = null;
  var pongTimer = null;
  var sessionEnded = false;
  var firstWelcome = true;

  function setConnection(stateName, text) {
    dom.conn.dataset.state = stateName;
    dom.connText.textContent = text;
  }

  function connect() {
    if (sessionEnded) return;
    window.clearTimeout(reconnectTimer);
    window.clearInterval(countdownTimer);
    setConnection("connecting", t("connecting"));
    var proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    var sock;
    try {
      sock = new WebSocket(proto + "//" + window.location.host + config.ws_path);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    var opened = false;
    ws = sock;
    // A handshake that hangs (a black-holed network) counts as a failed attempt.
    window.setTimeout(function () {
      if (sock === ws && !ready) dropSocket(sock, opened);
    }, CONNECT_TIMEOUT_MS);
    sock.addEventListener("open", function () {
      if (sock !== ws) return;
      opened = true;
      sock.send(JSON.stringify({ type: "hello" }));
    });
    sock.addEventListener("message", function (event) {
      if (sock !== ws) return;
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      window.clearTimeout(pongTimer); // any frame proves the socket is alive
      if (frame && typeof frame.type === "string") handleFrame(frame);
    });
    sock.addEventListener("close", function () {
      dropSocket(sock, opened);
    });
  }

  /* Forget a socket (closed, or silent past the pong deadline) and plan the next one. */
  function dropSocket(sock, opened) {
    if (sock !== ws) return;
    ws = null;
    ready = false;
    state.opening.clear();
    stopHeartbeat();
    try {
      sock.close();
    } catch (e) {
      /* already closed */
    }
    if (!opened) checkSession();
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (sessionEnded) return;
    window.clearTimeout(reconnectTimer);
    window.clearInterval(countdownTimer);
    var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, attempts));
    delay = Math.round(delay * (0.5 + Math.random() * 0.5)); // jitter: 50-100 %
    attempts += 1;
    var due = Date.now() + delay;
    var showCountdown = function () {
      if (!navigator.onLine) {
        setConnection("offline", t("offline"));
        return;
      }
      var seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      setConnection("reconnecting", t("reconnecting", { seconds: seconds }));
    };
    showCountdown();
    countdownTimer = window.setInterval(showCountdown, 1000);
    reconnectTimer = window.setTimeout(connect, delay);
  }

  /* A socket refused before it opened: is the session gone (logged out, expired)? */
  function checkSession() {
    if (!window.fetch) return;
    window
      .fetch(window.location.pathname, {
        credentials: "same-origin",
        redirect: "manual",
        cache: "no-store",
      })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 403 || response.status === 302) {
          endSession();
        }
      })
      .catch(function () {
        /* network down: keep retrying */
      });
  }

  /* The agent socket was refused and the page itself now redirects: the session is gone.
   * Say so, then go to the login page; unsent replies wait in sessionStorage meanwhile. */
  function endSession() {
    if (sessionEnded) return;
    sessionEnded = true;
    window.clearTimeout(reconnectTimer);
    window.clearInterval(countdownTimer);
    var loginUrl = config.login_url + "?next=" + encodeURIComponent(window.location.pathname);
    setConnection("ended", t("session_ended") + " ");
    dom.connText.appendChild(el("a", { href: loginUrl }, t("sign_in")));
    window.setTimeout(function () {
      window.location.assign(loginUrl);
    }, 2500);
  }

  function send(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    if (!ready && frame.type !== "hello" && frame.type !== "ping") return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function startHeartbeat() {
    stopHeartbeat();
    heartbeatTimer = window.setInterval(ping, HEARTBEAT_MS);
  }

  function stopHeartbeat() {
    window.clearInterval(heartbeatTimer);
    window.clearTimeout(pongTimer);
    heartbeatTimer = null;
    pongTimer = null;
  }

  function ping() {
    var sock = ws;
    if (!send({ type: "ping" })) return;
    window.clearTimeout(pongTimer);
    pongTimer = window.setTimeout(function () {
      // No pong: the socket is dead even if the browser has not noticed yet.
      dropSocket(sock, true);
    }, PONG_TIMEOUT_MS);
  }

  function noteMessageId(id) {
    if (typeof id === "number" && id > state.lastMessageId) state.lastMessageId = id;
  }

  /* Something was missed: reload the list and whatever the open conversation lacks. */
  function resync() {
    sendList();
    if (state.currentId !== null) requestOpen(state.currentId, true);
  }

  // --- frames in ---------------------------------------------------------------------------

  function handleFrame(frame) {
    switch (frame.type) {
      case "welcome":
        return onWelcome(frame);
      case "conversations":
        noteMessageId(frame.last_message_id);
        if (!listFrameIsCurrent(frame)) return; // an answer for a filter since changed
        return replaceConversations(frame.conversations || []);
      case "presence":
        return onPresence(frame);
      case "queue":
        return setQueue(frame.queue);
      case "event":
        return onEvent(frame);
      case "history":
        return onHistory(frame);
      case "message":
        return onMessage(frame);
      case "conversation":
        if (frame.conversation) upsertConversation(frame.conversation);
        return;
      case "ack":
        return onAck(frame);
      case "typing":
        return onTyping(frame);
      case "receipt":
        return onReceipt(frame);
      case "pong":
        if (typeof frame.last_message_id === "number" && frame.last_message_id > state.lastMessageId) {
          resync();
        }
        return;
      case "error":
        return onError(frame);
      case "suggestion":
        return onSuggestion(frame);
      case "search_results":
        return onSearchResults(frame);
      case "blocked":
        if (frame.conversation_id === state.currentId) showBlockForm(false);
        showToast(t(frame.created ? "visitor_blocked" : "visitor_already_blocked"));
        return;
      default:
        return;
    }
  }

  // --- agent-assist: a suggested reply for the open conversation, never sent by itself ---------

  var suggestion = { id: null, text: "" };

  function hideSuggestion() {
    suggestion = { id: null, text: "" };
    dom.assist.hidden = true;
  }

  function requestSuggestion() {
    var id = state.currentId;
    if (id === null || !send({ type: "suggest", conversation_id: id })) return;
    suggestion = { id: id, text: "" };
    dom.assist.hidden = false;
    dom.assist.dataset.state = "pending";
    dom.suggestionText.textContent = t("suggesting");
    dom.suggestionSource.textContent = "";
    dom.suggestionInsert.disabled = true;
  }

  function onSuggestion(frame) {
    if (frame.conversation_id !== state.currentId || frame.conversation_id !== suggestion.id) return;
    var text = typeof frame.text === "string" ? frame.text : "";
    suggestion.text = text;
    dom.assist.dataset.state = text ? "ready" : "empty";
    dom.suggestionText.textContent = text || t("no_suggestion", { reason: frame.reason || "—" });
    var score = typeof frame.confidence === "number" ? Math.round(frame.confidence * 100) + "%" : "";
    dom.suggestionSource.textContent =
      frame.source === "kb" ? t("source_kb", { score: score }) :
      frame.source === "ai" ? t("source_ai", { score: score }) : "";
    dom.suggestionInsert.disabled = !text;
  }

  function insertSuggestion() {
    if (!suggestion.text || suggestion.id !== state.currentId) return;
    dom.input.value = suggestion.text;
    drafts.set(state.currentId, dom.input.value);
    autosize();
    hideSuggestion();
    dom.input.focus();
  }

  function onWelcome(frame) {
    ready = true;
    attempts = 0;
    window.clearInterval(countdownTimer);
    setConnection("connected", t("connected"));
    noteMessageId(frame.last_message_id);
    var listed = onWelcomeDay(frame); // false: the shown filter differs, a `list` was sent
    if (listed) replaceConversations(frame.conversations || []);
    setCanned(frame);
    setLabels(frame.labels);
    searchAgain();
    startHeartbeat();
    state.readSent.clear();
    if (firstWelcome) {
      firstWelcome = false;
      var wanted = initialConversationId();
      if (wanted !== null) selectConversation(wanted, { restore: true });
    } else if (state.currentId !== null) {
      requestOpen(state.currentId, true);
    }
    flushOutbox();
  }

  function initialConversationId() {
    var match = /^#conversation-(\d+)$/.exec(window.location.hash);
    if (match) return parseInt(match[1], 10);
    try {
      var stored = window.sessionStorage.getItem(CURRENT_KEY);
      if (stored && /^\d+$/.test(stored)) return parseInt(stored, 10);
    } catch (e) {
      /* no storage */
    }
    return null;
  }

  function mergeSummary(incoming) {
    var existing = state.conversations.get(incoming.id);
    if (existing && existing.last_seq > incoming.last_seq) {
      // An older snapshot (events can cross): never move the list backwards.
      incoming = Object.assign({}, incoming, {
        last_seq: existing.last_seq,
        last_message_at: existing.last_message_at,
        last_message_preview: existing.last_message_preview,
      });
    }
    return incoming;
  }

  function replaceConversations(list) {
    var next = new Map();
    list.forEach(function (c) {
      if (c && typeof c.id === "number") next.set(c.id, mergeSummary(c));
    });
    if (state.currentId !== null && !next.has(state.currentId) && state.conversations.has(state.currentId)) {
      next.set(state.currentId, state.conversations.get(state.currentId));
    }
    state.conversations = next;
    schedule("list");
    schedule("header");
  }

  function upsertConversation(c) {
    if (!c || typeof c.id !== "number") return;
    if (c.id !== state.currentId && !conversationMatches(c)) {
      // No longer (or never) in the chosen view: it leaves the list.
      if (state.conversations.delete(c.id)) schedule("list");
      return;
    }
    state.conversations.set(c.id, mergeSummary(c));
    schedule("list");
    if (c.id === state.currentId) schedule("header");
  }

  function cacheFor(id, create) {
    var map = state.messages.get(id);
    if (!map && create) {
      map = new Map();
      state.messages.set(id, map);
      state.contiguous.set(id, 0);
    }
    return map || null;
  }

  function contiguous(id) {
    return state.contiguous.get(id) || 0;
  }

  function storeMessage(map, m) {
    if (!m || typeof m.seq !== "number") return;
    var old = map.get(m.seq);
    if (old) {
      // Keep the freshest receipt times whichever copy arrives last.
      m = Object.assign({}, m, {
        delivered_at: m.delivered_at || old.delivered_at,
        read_at: m.read_at || old.read_at,
      });
    }
    map.set(m.seq, m);
    noteMessageId(m.id);
  }

  function advanceContiguous(id) {
    var map = state.messages.get(id);
    if (!map) return 0;
    var c = contiguous(id);
    while (map.has(c + 1)) c += 1;
    state.contiguous.set(id, c);
    return c;
  }

  function maxSeq(map) {
    var max = 0;
    map.forEach(function (_, seq) {
      if (seq > max) max = seq;
    });
    return max;
  }

  function requestOpen(id, force) {
    var since = state.opening.get(id);
    if (!force && since && Date.now() - since < OPEN_RETRY_MS) return;
    if (send({ type: "open", conversation_id: id, last_seq: contiguous(id) })) {
      state.opening.set(id, Date.now());
    }
  }

  function onHistory(frame) {
    var id = frame.conversation_id;
    if (typeof id !== "number") return;
    state.opening.delete(id);
    if (frame.conversation) upsertConversation(frame.conversation);
    if (frame.visitor) state.visitors.set(id, frame.visitor);
    if (Array.isArray(frame.events)) setEvents(id, frame.events);
    var map = cacheFor(id, true);
    var msgs = Array.isArray(frame.messages) ? frame.messages : [];
    msgs.forEach(function (m) {
      storeMessage(map, m);
      dropFromOutbox(m);
    });
    var c = advanceContiguous(id);
    if (frame.has_more || (msgs.length > 0 && c < maxSeq(map))) {
      requestOpen(id, true);
    }
    if (id === state.currentId) {
      schedule("messages");
      schedule("visitor");
      schedule("header");
      maybeSendRead(id);
    }
  }

  function onMessage(frame) {
    var m = frame.message;
    if (!m || typeof m.conversation_id !== "number") return;
    var id = m.conversation_id;
    var isNew = typeof m.id === "number" && m.id > state.lastMessageId;
    if (frame.conversation) upsertConversation(frame.conversation);
    var map = cacheFor(id, id === state.currentId);
    if (map) {
      storeMessage(map, m);
      var c = advanceContiguous(id);
      if (m.seq > c && id === state.currentId) requestOpen(id); // a gap: fetch what is missing
    } else {
      noteMessageId(m.id);
    }
    dropFromOutbox(m);
    if (m.sender === "visitor") {
      setTyping(id, "visitor", null, false);
      var watching = id === state.currentId && !document.hidden;
      if (watching) {
        maybeSendRead(id);
      } else {
        if (isNew) notify(id, m);
        maybeSendDelivered(id, m.seq);
      }
    }
    if (id === state.currentId) schedule("messages");
  }

  function onAck(frame) {
    noteMessageId(frame.message_id);
    var index = state.outbox.findIndex(function (e) {
      return e.client_id === frame.client_id;
    });
    if (index === -1) return;
    var entry = state.outbox[index];
    state.outbox.splice(index, 1);
    saveOutbox();
    var map = cacheFor(frame.conversation_id, false);
    if (map && !map.has(frame.seq)) {
      storeMessage(map, {
        id: frame.message_id,
        conversation_id: frame.conversation_id,
        seq: frame.seq,
        sender: "agent",
        agent_name: config.agent.name,
        client_id: entry.client_id,
        text: entry.text || "",
        attachment: entry.attachment || null,
        created_at: frame.created_at || entry.created_at,
        delivered_at: null,
        read_at: null,
      });
      var c = advanceContiguous(frame.conversation_id);
      if (frame.seq > c && frame.conversation_id === state.currentId) requestOpen(frame.conversation_id);
    }
    if (frame.conversation_id === state.currentId) schedule("messages");
  }

  function dropFromOutbox(m) {
    if (m.sender !== "agent" || !m.client_id) return;
    var before = state.outbox.length;
    state.outbox = state.outbox.filter(function (e) {
      return !(e.client_id === m.client_id && e.conversation_id === m.conversation_id);
    });
    if (state.outbox.length !== before) saveOutbox();
  }

  function onReceipt(frame) {
    var id = frame.conversation_id;
    var map = state.messages.get(id);
    if (!map || frame.reader !== "visitor" || typeof frame.seq !== "number") return;
    var now = new Date().toISOString();
    map.forEach(function (m) {
      if (m.sender === "visitor" || m.seq > frame.seq) return;
      if (!m.delivered_at) m.delivered_at = now;
      if (frame.status === "read" && !m.read_at) m.read_at = now;
    });
    if (id === state.currentId) schedule("messages");
  }

  function onError(frame) {
    if (onSearchError(frame)) return;
    var ref = typeof frame.ref === "string" ? frame.ref : null;
    var entry = ref
      ? state.outbox.find(function (e) {
          return e.client_id === ref;
        })
      : null;
    if (entry) {
      if (TRANSIENT_ERRORS[frame.code]) {
        window.setTimeout(function () {
          if (state.outbox.indexOf(entry) !== -1 && entry.state === "sending") sendEntry(entry);
        }, 1500);
      } else {
        entry.state = "failed";
        entry.error = frame.message || frame.code || "";
        saveOutbox();
        if (entry.conversation_id === state.currentId) schedule("messages");
      }
      return;
    }
    if (frame.code === "rate_limited") {
      // The refused frame is unknown (no ref): give unacked messages another go soon.
      window.setTimeout(function () {
        if (ready) flushOutbox();
      }, 1500);
      return;
    }
    if (frame.code === "not_found") {
      state.opening.clear();
      if (state.currentId !== null && !state.conversations.has(state.currentId)) {
        // A remembered conversation that is gone (or of another workspace): forget it.
        deselect();
        return;
      }
    }
    showToast(t("error", { message: frame.message || frame.code || "?" }));
  }

  function onTyping(frame) {
    var id = frame.conversation_id;
    if (typeof id !== "number") return;
    if (frame.sender === "visitor") setTyping(id, "visitor", null, !!frame.active);
    else if (frame.sender === "agent" && frame.agent_name) setTyping(id, "agent", frame.agent_name, !!frame.active);
  }

  var typingSweep = null;

  function setTyping(id, who, name, active) {
    var entry = state.typing.get(id) || { visitor: 0, agents: new Map() };
    var expiry = active ? Date.now() + TYPING_EXPIRE_MS : 0;
    if (who === "visitor") entry.visitor = expiry;
    else if (active) entry.agents.set(name, expiry);
    else entry.agents.delete(name);
    state.typing.set(id, entry);
    schedule("typing");
    schedule("list");
    if (!typingSweep) {
      typingSweep = window.setInterval(function () {
        var now = Date.now();
        var any = false;
        state.typing.forEach(function (e) {
          if (e.visitor && e.visitor < now) e.visitor = 0;
          e.agents.forEach(function (exp, n) {
            if (exp < now) e.agents.delete(n);
          });
          if (e.visitor || e.agents.size) any = true;
        });
        schedule("typing");
        schedule("list");
        if (!any) {
          window.clearInterval(typingSweep);
          typingSweep = null;
        }
      }, 1000);
    }
  }

  function visitorTyping(id) {
    var e = state.typing.get(id);
    return !!(e && e.visitor && e.visitor > Date.now());
  }

  // --- receipts ------------------------------------------------------------------------------

  function highestVisitorSeq(id) {
    var map = state.messages.get(id);
    var max = 0;
    if (map) {
      map.forEach(function (m) {
        if (m.sender === "visitor" && m.seq > max) max = m.seq;
      });
    }
    return max;
  }

  function maybeSendRead(id, force) {
    if (id !== state.currentId || document.hidden || !ready) return;
    var seq = highestVisitorSeq(id);
    if (!seq) return;
    var summary = state.conversations.get(id);
    var already = state.readSent.get(id) || 0;
    if (seq > already || (force && summary && summary.unread > 0)) {
      if (send({ type: "receipt", conversation_id: id, seq: seq, status: "read" })) {
        state.readSent.set(id, seq);
      }
    }
  }

  /* The visitor sees "delivered" once a console that could answer has the message. */
  function maybeSendDelivered(id, seq) {
    var summary = state.conversations.get(id);
    if (!summary) return;
    if (summary.assignee && summary.assignee.id !== config.agent.id) return;
    send({ type: "receipt", conversation_id: id, seq: seq, status: "delivered" });
  }

  // --- notifications -------------------------------------------------------------------------

  var audioCtx = null;
  var lastBeep = 0;
  var soundOn = readSoundSetting();

  function readSoundSetting() {
    try {
      return window.localStorage.getItem(SOUND_KEY) !== "off";
    } catch (e) {
      return true;
    }
  }

  function ensureAudio() {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    if (!audioCtx) {
      try {
        audioCtx = new AC();
      } catch (e) {
        return null;
      }
    }
    if (audioCtx.state === "suspended") audioCtx.resume().catch(function () {});
    return audioCtx;
  }

  function beep() {
    if (!soundOn || Date.now() - lastBeep < 1000) return;
    var ctx = ensureAudio();
    if (!ctx) return;
    lastBeep = Date.now();
    var now = ctx.currentTime;
    var osc = ctx.createOscillator();
    var gain = ctx.createGain();
    osc.type = "sine";
    osc.frequency.setValueAtTime(880, now);
    osc.frequency.setValueAtTime(1175, now + 0.09);
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.2, now + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.25);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(now);
    osc.stop(now + 0.3);
  }

  function notify(id, m) {
    beep();
    if (!("Notification" in window) || window.Notification.permission !== "granted") return;
    var summary = state.conversations.get(id);
    var name = summary && summary.visitor ? summary.visitor.name : t("visitor");
    var body = m.text || (m.attachment ? "[" + (m.attachment.name || t("attachment")) + "]" : "");
    try {
      var n = new window.Notification(t("new_message", { name: name }), {
        body: body.slice(0, 200),
        tag: "conversation-" + id,
      });
      n.addEventListener("click", function () {
        window.focus();
        selectConversation(id, { user: true });
        n.close();
      });
    } catch (e) {
      /* some browsers only allow notifications from a service worker */
    }
  }

  function renderNotifyButton() {
    var btn = dom.notifyEnable;
    if (!("Notification" in window)) {
      btn.hidden = true;
      return;
    }
    var p = window.Notification.permission;
    if (p === "granted") {
      btn.hidden = true;
    } else if (p === "denied") {
      btn.hidden = false;
      btn.disabled = true;
      btn.textContent = t("notifications_blocked");
    } else {
      btn.hidden = false;
      btn.disabled = false;
    }
  }

  function renderSoundButton() {
    dom.soundToggle.textContent = soundOn ? t("sound_on") : t("sound_off");
    dom.soundToggle.setAttribute("aria-pressed", soundOn ? "true" : "false");
  }

  function updateTitle(total) {
    var base = t("page_title");
    document.title = total > 0 ? "(" + total + ") " + base : base;
  }

  // --- conversation list -----------------------------------------------------------------------

  var rowCache = new Map(); // id -> li

  function activityTime(c) {
    var d = parseDate(c.last_message_at) || parseDate(c.created_at);
    return d ? d.getTime() : 0;
  }

  function sortedConversations() {
    // The open conversation stays in `state` for its header, but leaves a list it no longer matches.
    var list = Array.from(state.conversations.values()).filter(conversationMatches);
    list.sort(function (a, b) {
      var ra = a.status === "resolved" ? 1 : 0;
      var rb = b.status === "resolved" ? 1 : 0;
      if (ra !== rb) return ra - rb;
      var ta = activityTime(a);
      var tb = activityTime(b);
      if (ta !== tb) return tb - ta;
      return b.id - a.id;
    });
    return list;
  }

  function statusPill(status) {
    return el("span", { className: "status-pill", dataset: { status: status } }, t("status_" + status));
  }

  function buildRow(c) {
    var li = rowCache.get(c.id);
    if (!li) {
      li = el("li", { className: "conv-row", "data-testid": "conversation-item" });
      li.dataset.conversationId = String(c.id);
      rowCache.set(c.id, li);
    }
    var name = (c.visitor && c.visitor.name) || t("visitor");
    var country = c.visitor && c.visitor.country;
    var btn = el("button", { type: "button", className: "conv-item" });
    if (c.id === state.currentId) btn.setAttribute("aria-current", "true");
    btn.dataset.conversationId = String(c.id);

    var avatar = el("span", { className: "avatar", "aria-hidden": "true" }, name.trim().charAt(0).toUpperCase() || "?");
    var body = el("span", { className: "conv-body" });

    var top = el("span", { className: "conv-top" });
    top.appendChild(el("span", { className: "conv-name", "data-testid": "conversation-name" }, name));
    if (country) {
      top.appendChild(el("span", { className: "conv-country", title: countryName(country) }, country.toUpperCase()));
    }
    var time = parseDate(c.last_message_at) || parseDate(c.created_at);
    top.appendChild(el("time", { className: "conv-time", datetime: time ? time.toISOString() : null, title: time ? fmtDateTime.format(time) : null }, listTime(c.last_message_at || c.created_at)));

    var mid = el("span", { className: "conv-mid" });
    if (visitorTyping(c.id)) {
      mid.appendChild(el("span", { className: "conv-preview is-typing" }, t("typing")));
    } else {
      mid.appendChild(el("span", { className: "conv-preview", "data-testid": "conversation-preview" }, c.last_message_preview || ""));
    }
    var badge = el("span", { className: "badge", "data-testid": "conversation-unread", "aria-label": String(c.unread || 0) }, c.unread > 99 ? "99+" : String(c.unread || 0));
    badge.hidden = !(c.unread > 0);
    mid.appendChild(badge);

    var bottom = el("span", { className: "conv-bottom" });
    bottom.appendChild(statusPill(c.status));
    bottom.appendChild(el("span", { className: "conv-assignee" }, c.assignee ? c.assignee.name : c.queued_at ? t("in_queue") : t("unassigned")));
    appendLabelChips(bottom, c.labels, false);

    body.appendChild(top);
    body.appendChild(mid);
    body.appendChild(bottom);
    btn.appendChild(avatar);
    btn.appendChild(body);
    li.classList.toggle("is-active", c.id === state.currentId);
    li.classList.toggle("is-unread", c.unread > 0);
    li.classList.toggle("is-resolved", c.status === "resolved");
    li.dataset.status = c.status;
    li.replaceChildren(btn);
    return li;
  }

  function renderList() {
    var focusedId = null;
    var active = document.activeElement;
    if (active && active.classList && active.classList.contains("conv-item")) {
      focusedId = active.dataset.conversationId;
    }
    var list = sortedConversations();
    var rows = list.map(buildRow);
    var keep = new Set(list.map(function (c) { return c.id; }));
    rowCache.forEach(function (_, id) {
      if (!keep.has(id)) rowCache.delete(id);
    });
    reconcile(dom.list, rows);
    dom.listEmpty.hidden = rows.length > 0;
    if (focusedId) {
      var again = dom.list.querySelector('.conv-item[data-conversation-id="' + focusedId + '"]');
      if (again) again.focus();
    }
    var total = 0;
    list.forEach(function (c) {
      total += c.unread > 0 ? c.unread : 0;
    });
    dom.unreadTotal.hidden = total === 0;
    dom.unreadTotal.textContent = String(total);
    updateTitle(total);
  }

  // --- the open conversation -------------------------------------------------------------------

  var nodeCache = new Map(); // "seq:<n>" | "out:<client_id>" -> element, for the open conversation
  var stickToBottom = true;

  function selectConversation(id, opts) {
    opts = opts || {};
    if (state.currentId !== id) {
      stopTyping();
      hideSuggestion();
      if (!dom.blockForm.hidden) showBlockForm(false);
      // Forms that act on "the open conversation" close when another one opens.
      if (dayDom && !dayDom.transferDialog.hidden) showTransfer(false);
      if (dayDom && !dayDom.snoozeForm.hidden) showSnooze(false);
      state.currentId = id;
      nodeCache.clear();
      stickToBottom = true;
      dom.input.value = drafts.get(id) || "";
      autosize();
    }
    try {
      window.sessionStorage.setItem(CURRENT_KEY, String(id));
    } catch (e) {
      /* no storage */
    }
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", "#conversation-" + id);
    }
    dom.app.dataset.view = "chat";
    dom.placeholder.hidden = true;
    dom.chat.hidden = false;
    cacheFor(id, true);
    requestOpen(id, true);
    schedule("list");
    schedule("header");
    schedule("messages");
    schedule("visitor");
    schedule("typing");
    if (opts.user && window.matchMedia("(min-width: 721px)").matches) dom.input.focus();
  }

  var drafts = new Map();

  function deselect() {
    stopTyping();
    if (!dom.blockForm.hidden) showBlockForm(false);
    state.currentId = null;
    nodeCache.clear();
    try {
      window.sessionStorage.removeItem(CURRENT_KEY);
    } catch (e) {
      /* no storage */
    }
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    dom.app.dataset.view = "list";
    dom.placeholder.hidden = false;
    dom.chat.hidden = true;
    schedule("list");
    schedule("visitor");
  }

  function renderHeader() {
    var id = state.currentId;
    var c = id !== null ? state.conversations.get(id) : null;
    if (id === null) return;
    var visitor = state.visitors.get(id);
    var name = (c && c.visitor && c.visitor.name) || (visitor && visitor.name) || t("visitor");
    dom.chatTitle.textContent = name;
    var status = c ? c.status : "";
    dom.chatStatus.textContent = status ? t("status_" + status) : "";
    dom.chatStatus.dataset.status = status;
    dom.chatStatus.hidden = !status;
    dom.chatAssignee.textContent = c ? (c.assignee ? t("assigned_to", { name: c.assignee.name }) : t("unassigned")) : "";
    var resolved = status === "resolved";
    dom.resolve.disabled = !c || resolved;
    dom.resolve.textContent = resolved ? t("resolved") : t("resolve");
    dom.resolve.dataset.status = status;
    renderChatLabels(c);
    renderRating(c);
    renderDayHeader(c);
  }

  // --- satisfaction rating (shown with the visitor's details) and blocking ----------------

  function ratingText(rating) {
    var n = Math.max(0, Math.min(5, rating | 0));
    return "\u2605\u2605\u2605\u2605\u2605".slice(0, n) + "\u2606\u2606\u2606\u2606\u2606".slice(0, 5 - n);
  }

  function renderRating(c) {
    if (!dom.rating) return;
    dom.rating.replaceChildren();
    if (!c || typeof c.rating !== "number") {
      dom.rating.appendChild(el("span", { className: "muted" }, t("not_rated")));
      return;
    }
    dom.rating.appendChild(el("span", {
      className: "rating-stars", "data-testid": "conversation-rating-stars",
      "data-rating": c.rating, title: t("rating_stars", { rating: c.rating }),
      "aria-label": t("rating_stars", { rating: c.rating }),
    }, ratingText(c.rating)));
    if (c.rating_comment) {
      dom.rating.appendChild(el("span", { className: "rating-comment", "data-testid": "conversation-rating-comment" }, c.rating_comment));
    }
  }

  /* The block form belongs to the conversation it was opened for: it closes (and is reset)
   * when the agent opens another one, and its submit names that conversation. */
  function showBlockForm(open) {
    dom.blockForm.hidden = !open;
    dom.block.setAttribute("aria-expanded", open ? "true" : "false");
    dom.blockScope.value = "visitor";
    dom.blockReason.value = "";
    if (open) {
      dom.blockForm.dataset.conversationId = String(state.currentId);
      dom.blockReason.focus();
    } else {
      delete dom.blockForm.dataset.conversationId;
    }
  }
  dom.block.addEventListener("click", function () {
    if (state.currentId !== null) showBlockForm(dom.blockForm.hidden);
  });
  dom.blockCancel.addEventListener("click", function () {
    showBlockForm(false);
  });
  dom.blockForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var id = state.currentId;
    if (id === null || dom.blockForm.dataset.conversationId !== String(id)) {
      showBlockForm(false);
      return;
    }
    var frame = { type: "block", conversation_id: id, scope: dom.blockScope.value };
    var reason = dom.blockReason.value.trim();
    if (reason) frame.reason = reason;
    send(frame);
  });

  function appendText(container, text) {
    // Plain text with http(s) links made clickable; every piece is a text node.
    var re = /https?:\/\/[^\s<>"']+/gi;
    var last = 0;
    var match;
    while ((match = re.exec(text)) !== null) {
      var url = match[0].replace(/[.,;:!?)\]]+$/, "");
      if (match.index > last) container.appendChild(document.createTextNode(text.slice(last, match.index)));
      var href = safeHttpUrl(url);
      if (href) {
        container.appendChild(el("a", { href: href, target: "_blank", rel: "noopener noreferrer nofollow" }, url));
      } else {
        container.appendChild(document.createTextNode(url));
      }
      last = match.index + url.length;
      re.lastIndex = last;
    }
    if (last < text.length) container.appendChild(document.createTextNode(text.slice(last)));
  }

  function buildAttachment(att) {
    var href = safeHttpUrl(att.url);
    if (!href) return el("span", { className: "msg-file" }, att.name || t("attachment"));
    if (att.is_image) {
      var a = el("a", { className: "msg-image", href: href, target: "_blank", rel: "noopener noreferrer", title: t("open_full_size") });
      var img = el("img", { src: href, alt: att.name || t("attachment"), loading: "lazy", "data-testid": "message-image" });
      img.addEventListener("load", function () {
        if (stickToBottom) scrollToBottom();
      });
      a.appendChild(img);
      return a;
    }
    var link = el("a", { className: "msg-file", href: href, download: att.name || "", "data-testid": "message-file" });
    link.appendChild(icon(FILE_ICON, "msg-file-icon"));
    var label = el("span", { className: "msg-file-name" }, att.name || t("attachment"));
    link.appendChild(label);
    if (typeof att.size === "number") link.appendChild(el("span", { className: "msg-file-size" }, formatSize(att.size)));
    return link;
  }

  function authorLabel(m) {
    if (m.sender === "agent") return m.agent_name || "";
    if (m.sender === "bot") return t("bot");
    return "";
  }

  function buildMessageNode(m) {
    var wrap = el("div", { className: "msg msg--" + m.sender, "data-testid": "message" });
    wrap.dataset.sender = m.sender;
    wrap.dataset.seq = String(m.seq);
    if (m.id) wrap.dataset.messageId = String(m.id);
    var bubble = el("div", { className: "msg-bubble" });
    var author = authorLabel(m);
    if (author) bubble.appendChild(el("div", { className: "msg-author" }, author));
    if (m.attachment) bubble.appendChild(buildAttachment(m.attachment));
    if (m.text) {
      var text = el("div", { className: "msg-text" });
      appendText(text, m.text);
      bubble.appendChild(text);
    }
    wrap.appendChild(bubble);
    var meta = el("div", { className: "msg-meta" });
    var d = parseDate(m.created_at);
    meta.appendChild(el("time", { datetime: d ? d.toISOString() : null, title: d ? fmtDateTime.format(d) : null }, d ? fmtTime.format(d) : ""));
    if (m.sender === "agent") {
      meta.appendChild(el("span", { className: "msg-ticks", "data-testid": "message-status" }));
    }
    wrap.appendChild(meta);
    return wrap;
  }

  function updateTicks(node, m) {
    var ticks = node.querySelector(".msg-ticks");
    if (!ticks) return;
    var status = m.read_at ? "read" : m.delivered_at ? "delivered" : "sent";
    if (ticks.dataset.status === status) return;
    ticks.dataset.status = status;
    ticks.textContent = status === "read" ? "✓✓" : status === "delivered" ? "✓" : "";
    if (status === "sent") {
      ticks.removeAttribute("title");
      ticks.removeAttribute("aria-label");
    } else {
      ticks.title = t(status);
      ticks.setAttribute("aria-label", t(status));
    }
  }

  function buildPendingNode(entry) {
    var wrap = el("div", { className: "msg msg--agent msg--pending", "data-testid": "message-pending" });
    wrap.dataset.sender = "agent";
    wrap.dataset.clientId = entry.client_id;
    var bubble = el("div", { className: "msg-bubble" });
    if (entry.attachment) bubble.appendChild(buildAttachment(entry.attachment));
    if (entry.text) {
      var text = el("div", { className: "msg-text" });
      appendText(text, entry.text);
      bubble.appendChild(text);
    }
    wrap.appendChild(bubble);
    var meta = el("div", { className: "msg-meta" });
    if (entry.state === "failed") {
      wrap.classList.add("is-failed");
      meta.appendChild(el("span", { className: "msg-error" }, t("failed", { reason: entry.error || "" })));
      var retry = el("button", { type: "button", className: "link-button" }, t("retry"));
      retry.addEventListener("click", function () {
        entry.state = "sending";
        entry.error = "";
        saveOutbox();
        sendEntry(entry);
        nodeCache.delete("out:" + entry.client_id);
        schedule("messages");
      });
      var discard = el("button", { type: "button", className: "link-button" }, t("discard"));
      discard.addEventListener("click", function () {
        state.outbox = state.outbox.filter(function (e) { return e !== entry; });
        saveOutbox();
        nodeCache.delete("out:" + entry.client_id);
        schedule("messages");
      });
      meta.appendChild(retry);
      meta.appendChild(discard);
    } else {
      meta.appendChild(el("span", { className: "msg-sending" }, t("sending")));
    }
    wrap.appendChild(meta);
    return wrap;
  }

  function renderMessages() {
    var id = state.currentId;
    if (id === null) return;
    var map = state.messages.get(id) || new Map();
    var seqs = Array.from(map.keys()).sort(function (a, b) { return a - b; });
    var children = [];
    var lastDay = null;
    var used = new Set();
    function daySeparator(d) {
      var day = d ? startOfDay(d) : null;
      if (day === null || day === lastDay) return;
      lastDay = day;
      var dayKey = "day:" + day;
      var sep = nodeCache.get(dayKey);
      if (!sep) {
        sep = el("div", { className: "day-sep", role: "separator" });
        sep.appendChild(el("span", null, dayLabel(d)));
        nodeCache.set(dayKey, sep);
      }
      used.add(dayKey);
      children.push(sep);
    }
    // System events and private notes go between the messages, by time.
    var events = timelineEvents(id);
    var ei = 0;
    function eventsBefore(limit) {
      while (ei < events.length && (limit === null || eventTime(events[ei]) < limit)) {
        var ev = events[ei++];
        daySeparator(parseDate(ev.created_at));
        var evKey = "ev:" + ev.id;
        var evNode = nodeCache.get(evKey) || buildEventNode(ev);
        nodeCache.set(evKey, evNode);
        used.add(evKey);
        children.push(evNode);
      }
    }
    seqs.forEach(function (seq) {
      var m = map.get(seq);
      var d = parseDate(m.created_at);
      if (d) eventsBefore(d.getTime());
      daySeparator(d);
      var key = "seq:" + seq;
      var node = nodeCache.get(key);
      if (!node || node.dataset.messageId !== String(m.id || "")) {
        node = buildMessageNode(m);
        nodeCache.set(key, node);
      }
      updateTicks(node, m);
      used.add(key);
      children.push(node);
    });
    eventsBefore(null);
    state.uploads.forEach(function (u) {
      if (u.conversation_id !== id) return;
      var wrap = el("div", { className: "msg msg--agent msg--pending", "data-testid": "upload-pending" });
      var bubble = el("div", { className: "msg-bubble" });
      bubble.appendChild(el("div", { className: "msg-text" }, t("uploading", { name: u.name })));
      wrap.appendChild(bubble);
      children.push(wrap);
    });
    state.outbox.forEach(function (entry) {
      if (entry.conversation_id !== id) return;
      var key = "out:" + entry.client_id;
      var node = nodeCache.get(key);
      if (!node || node.dataset.state !== entry.state) {
        node = buildPendingNode(entry);
        node.dataset.state = entry.state;
        nodeCache.set(key, node);
      }
      used.add(key);
      children.push(node);
    });
    nodeCache.forEach(function (_, key) {
      if (!used.has(key)) nodeCache.delete(key);
    });
    if (children.length === 0 && !state.opening.has(id)) {
      children.push(el("p", { className: "pane-empty" }, t("empty_conversation")));
    }
    reconcile(dom.messages, children);
    if (stickToBottom) scrollToBottom();
    highlightFound();
  }

  function scrollToBottom() {
    dom.messages.scrollTop = dom.messages.scrollHeight;
  }

  function renderTyping() {
    var id = state.currentId;
    var line = dom.typing;
    var parts = [];
    var e = id !== null ? state.typing.get(id) : null;
    var now = Date.now();
    if (e) {
      if (e.visitor > now) {
        var c = state.conversations.get(id);
        var name = (c && c.visitor && c.visitor.name) || t("visitor");
        parts.push(t("agent_typing", { name: name }));
      }
      e.agents.forEach(function (exp, agentName) {
        if (exp > now) parts.push(t("agent_typing", { name: agentName }));
      });
    }
    line.textContent = parts.join(" · ");
    line.classList.toggle("is-visible", parts.length > 0);
  }

  function setField(name, value) {
    var dd = dom.detailsFields.querySelector('[data-field="' + name + '"]');
    if (!dd) return null;
    dd.replaceChildren();
    if (value === null || value === undefined || value === "") {
      dd.appendChild(el("span", { className: "muted" }, t("unknown")));
    } else if (typeof value === "string") {
      dd.textContent = value;
    } else {
      dd.appendChild(value);
    }
    return dd;
  }

  function urlValue(url, title) {
    if (!url) return null;
    var box = el("span", { className: "url-value" });
    if (title) box.appendChild(el("span", { className: "url-title" }, title));
    if (isAbsoluteHttpUrl(url)) {
      box.appendChild(el("a", { href: safeHttpUrl(url), target: "_blank", rel: "noopener noreferrer nofollow", className: "url-link" }, url));
    } else {
      box.appendChild(el("span", { className: "url-link" }, url));
    }
    return box;
  }

  function dateValue(value) {
    var d = parseDate(value);
    if (!d) return null;
    return el("time", { datetime: d.toISOString() }, fmtDateTime.format(d));
  }

  function renderVisitor() {
    var id = state.currentId;
    var v = id !== null ? state.visitors.get(id) : null;
    dom.detailsEmpty.hidden = !!v;
    dom.detailsFields.hidden = !v;
    if (!v) return;
    setField("name", v.name || "");
    setField("email", v.email || "");
    setField("ip", v.ip || "");
    var place = "";
    if (v.country) place = countryName(v.country) + " (" + v.country.toUpperCase() + ")";
    if (v.city) place = place ? v.city + ", " + place : v.city;
    setField("location", place);
    setField("current_url", urlValue(v.current_url, v.current_title));
    setField("referrer", urlValue(v.referrer, ""));
    setField("browser", v.browser || "");
    setField("os", v.os || "");
    setField("device", v.device || "");
    setField("language", v.language || "");
    setField("first_seen_at", dateValue(v.first_seen_at));
    setField("last_seen_at", dateValue(v.last_seen_at));
  }

  // --- sending -------------------------------------------------------------------------------

  function sendEntry(entry) {
    var frame = {
      type: "message",
      conversation_id: entry.conversation_id,
      client_id: entry.client_id,
      text: entry.text || "",
    };
    if (entry.attachment_id) frame.attachment_id = entry.attachment_id;
    if (!send(frame)) return false;
    entry.sentAt = Date.now();
    return true;
  }

  /* No ack in time (e.g. dropped as rate_limited, which carries no client_id): send again.
   * Safe because the server stores a client_id once and acks a repeat with the same seq. */
  window.setInterval(function () {
    if (!ready) return;
    var now = Date.now();
    state.outbox.forEach(function (entry) {
      if (entry.state === "sending" && (!entry.sentAt || now - entry.sentAt > ACK_TIMEOUT_MS)) {
        sendEntry(entry);
      }
    });
  }, 2000);

  function flushOutbox() {
    state.outbox.forEach(function (entry) {
      if (entry.state !== "failed") sendEntry(entry);
    });
  }

  function queueMessage(conversationId, text, attachment) {
    var entry = {
      client_id: newClientId(),
      conversation_id: conversationId,
      text: text,
      attachment_id: attachment ? attachment.id : null,
      attachment: attachment || null,
      created_at: new Date().toISOString(),
      state: "sending",
    };
    state.outbox.push(entry);
    saveOutbox();
    sendEntry(entry);
    if (conversationId === state.currentId) {
      stickToBottom = true;
      schedule("messages");
    }
  }

  function submitReply() {
    var id = state.currentId;
    if (id === null) return;
    var text = dom.input.value.replace(/^\s+|\s+$/g, "");
    if (!text) return;
    stopTyping();
    queueMessage(id, text, null);
    dom.input.value = "";
    drafts.delete(id);
    autosize();
    dom.input.focus();
  }

  var typingActive = false;
  var typingConversation = null;
  var typingSentAt = 0;
  var typingIdleTimer = null;

  function noteTyping() {
    var id = state.currentId;
    if (id === null) return;
    if (typingConversation !== null && typingConversation !== id) stopTyping();
    var now = Date.now();
    if (!typingActive || now - typingSentAt > TYPING_REFRESH_MS) {
      if (send({ type: "typing", conversation_id: id, active: true })) {
        typingActive = true;
        typingConversation = id;
        typingSentAt = now;
      }
    }
    window.clearTimeout(typingIdleTimer);
    typingIdleTimer = window.setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    window.clearTimeout(typingIdleTimer);
    if (typingActive && typingConversation !== null) {
      send({ type: "typing", conversation_id: typingConversation, active: false });
    }
    typingActive = false;
    typingConversation = null;
  }

  function autosize() {
    dom.input.style.height = "auto";
    dom.input.style.height = Math.min(dom.input.scrollHeight, 180) + "px";
  }

  function uploadFiles(files) {
    var id = state.currentId;
    if (id === null) return;
    Array.prototype.forEach.call(files, function (file) {
      if (config.max_upload_bytes && file.size > config.max_upload_bytes) {
        showToast(t("upload_failed", { reason: t("file_too_large") }));
        return;
      }
      var u = { key: newClientId(), conversation_id: id, name: file.name };
      state.uploads.push(u);
      stickToBottom = true;
      schedule("messages");
      var body = new FormData();
      body.append("file", file, file.name);
      window
        .fetch(config.upload_url, {
          method: "POST",
          body: body,
          credentials: "same-origin",
          headers: { "X-CSRFToken": csrfToken() },
        })
        .then(function (response) {
          if (response.redirected && response.url.indexOf(config.login_url) !== -1) {
            endSession();
            throw new Error(t("session_ended"));
          }
          return response
            .json()
            .catch(function () {
              return {};
            })
            .then(function (data) {
              if (!response.ok || !data.attachment) {
                var reason = (data.error && data.error.message) || response.status + " " + response.statusText;
                throw new Error(reason);
              }
              return data.attachment;
            });
        })
        .then(function (attachment) {
          queueMessage(u.conversation_id, "", attachment);
        })
        .catch(function (err) {
          showToast(t("upload_failed", { reason: err && err.message ? err.message : "?" }));
        })
        .then(function () {
          state.uploads = state.uploads.filter(function (x) { return x !== u; });
          schedule("messages");
        });
    });
  }

  function csrfToken() {
    var match = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie);
    return match ? decodeURIComponent(match[1]) : config.csrf_token;
  }

  var toastTimer = null;

  function showToast(text) {
    dom.toast.textContent = text;
    dom.toast.hidden = false;
    window.clearTimeout(toastTimer);
    toastTimer = window.setTimeout(function () {
      dom.toast.hidden = true;
    }, 6000);
  }

  // --- canned replies: "/shortcut" at the start of the reply box (the welcome's `canned`) -------

  var CANNED_SHOWN_MAX = 8;
  var CANNED_VARIABLES = /\{(visitor_name|agent_name|workspace_name)\}/g;
  var cannedList = $("canned-list");
  var canned = {
    items: [],
    matches: [],
    index: 0,
    query: null,
    open: false,
    dismissed: null, // the box's value when Escape closed the list: stays closed until it changes
    agentName: config.agent.name,
  };

  function setCanned(frame) {
    canned.items = Array.isArray(frame.canned)
      ? frame.canned.filter(function (c) {
          return c && typeof c.shortcut === "string" && typeof c.text === "string";
        })
      : [];
    if (frame.agent && typeof frame.agent.name === "string") canned.agentName = frame.agent.name;
    updateCanned();
  }

  /* The shortcut being typed: the whole box is "/" plus letters, digits, "-" or "_". */
  function cannedQuery() {
    var match = /^\/([\w-]*)$/.exec(dom.input.value);
    return match ? match[1].toLowerCase() : null;
  }

  function updateCanned() {
    if (!cannedList) return;
    var q = cannedQuery();
    if (q === null || state.currentId === null || !canned.items.length || dom.input.value === canned.dismissed) {
      closeCanned();
      return;
    }
    canned.dismissed = null;
    var starts = [];
    var contains = [];
    canned.items.forEach(function (c) {
      var at = c.shortcut.toLowerCase().indexOf(q);
      if (at === 0) starts.push(c);
      else if (at > 0) contains.push(c);
    });
    var matches = starts.concat(contains).slice(0, CANNED_SHOWN_MAX);
    if (!matches.length) {
      closeCanned();
      return;
    }
    if (q !== canned.query) canned.index = 0;
    canned.query = q;
    canned.matches = matches;
    canned.index = Math.min(canned.index, matches.length - 1);
    canned.open = true;
    renderCanned();
  }

  function renderCanned() {
    var nodes = canned.matches.map(function (c, i) {
      var item = el("li", {
        id: "canned-option-" + i,
        className: "canned-item",
        role: "option",
        "aria-selected": i === canned.index ? "true" : "false",
        "data-testid": "canned-suggestion",
        dataset: { index: String(i), shortcut: c.shortcut },
      });
      item.appendChild(el("span", { className: "canned-shortcut" }, "/" + c.shortcut));
      item.appendChild(el("span", { className: "canned-text" }, c.text));
      if (c.shared) item.appendChild(el("span", { className: "canned-badge" }, t("canned_shared")));
      return item;
    });
    cannedList.replaceChildren.apply(cannedList, nodes);
    cannedList.hidden = false;
    dom.input.setAttribute("aria-activedescendant", "canned-option-" + canned.index);
    var active = nodes[canned.index];
    if (active && active.scrollIntoView) active.scrollIntoView({ block: "nearest" });
  }

  function closeCanned() {
    canned.open = false;
    canned.matches = [];
    canned.index = 0;
    canned.query = null;
    if (!cannedList || cannedList.hidden) return;
    cannedList.hidden = true;
    cannedList.replaceChildren();
    dom.input.removeAttribute("aria-activedescendant");
  }

  /* The reply's text with its variables filled in, in one pass (values are never re-read). */
  function cannedExpand(text) {
    var id = state.currentId;
    var c = id !== null ? state.conversations.get(id) : null;
    var visitor = id !== null ? state.visitors.get(id) : null;
    var values = {
      visitor_name: (c && c.visitor && c.visitor.name) || (visitor && visitor.name) || t("visitor"),
      agent_name: canned.agentName || "",
      workspace_name: (config.workspace && config.workspace.name) || "",
    };
    return text.replace(CANNED_VARIABLES, function (m, name) {
      return values[name];
    });
  }

  function insertCanned(index) {
    var c = canned.matches[index];
    if (!c || state.currentId === null) return;
    var text = cannedExpand(c.text);
    if (config.max_text) text = text.slice(0, config.max_text);
    closeCanned();
    dom.input.value = text;
    drafts.set(state.currentId, text);
    autosize();
    dom.input.focus();
    dom.input.setSelectionRange(text.length, text.length);
    if (text.trim()) noteTyping();
  }

  if (cannedList) {
    // Capture phase on the form: runs before the reply box's own Enter-sends handler.
    dom.composer.addEventListener(
      "keydown",
      function (event) {
        if (event.target !== dom.input || !canned.open) return;
        if (event.isComposing || event.keyCode === 229) return;
        var n = canned.matches.length;
        if (event.key === "ArrowDown") {
          canned.index = (canned.index + 1) % n;
          renderCanned();
        } else if (event.key === "ArrowUp") {
          canned.index = (canned.index - 1 + n) % n;
          renderCanned();
        } else if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
          insertCanned(canned.index);
        } else if (event.key === "Escape") {
          canned.dismissed = dom.input.value;
          closeCanned();
        } else {
          return;
        }
        event.preventDefault();
        event.stopPropagation();
      },
      true
    );
    dom.input.addEventListener("input", updateCanned);
    dom.input.addEventListener("blur", closeCanned);
    // Keep the focus in the reply box while an item is clicked.
    cannedList.addEventListener("mousedown", function (event) {
      event.preventDefault();
    });
    cannedList.addEventListener("click", function (event) {
      var item = event.target.closest(".canned-item");
      if (item) insertCanned(parseInt(item.dataset.index, 10));
    });
  }

  // --- search over message history, and labels (the welcome's `labels`) -----------------------

  var SEARCH_DEBOUNCE_MS = 300;
  var searchDom = {
    input: $("search-input"),
    results: $("search-results"),
    status: $("search-status"),
  };
  var searching = { q: "", sent: "", timer: null, refSeq: 0 };
  var found = null; // {id, seq}: the matched message to show once the conversation is open

  function searchText() {
    return searchDom.input ? searchDom.input.value.replace(/^\s+|\s+$/g, "") : "";
  }

  function setSearchMode(on) {
    // The normal list stays rendered (and live) underneath; CSS hides it while searching.
    dom.list.parentNode.classList.toggle("is-searching", on);
    searchDom.results.hidden = !on;
    if (!on) {
      searchDom.status.hidden = true;
      searchDom.results.replaceChildren();
    }
  }

  function sendSearch() {
    window.clearTimeout(searching.timer);
    var q = searchText();
    searching.q = q;
    if (!q) {
      searching.sent = "";
      setSearchMode(false);
      return;
    }
    setSearchMode(true);
    if (q === searching.sent) return;
    searching.refSeq += 1;
    if (send({ type: "search", q: q, client_id: "search-" + searching.refSeq })) {
      searching.sent = q;
      searchDom.status.textContent = t("search_searching");
      searchDom.status.hidden = false;
    }
  }

  /* After a reconnect: ask again for what the box holds. */
  function searchAgain() {
    searching.sent = "";
    if (searchText()) sendSearch();
  }

  function onSearchResults(frame) {
    if (typeof frame.q !== "string" || frame.q !== searching.q) return; // an older query
    var results = Array.isArray(frame.results) ? frame.results : [];
    var rows = [];
    results.forEach(function (r) {
      if (r && r.conversation && typeof r.conversation.id === "number") rows.push(buildResultRow(r));
    });
    searchDom.results.replaceChildren.apply(searchDom.results, rows);
    searchDom.status.textContent = rows.length ? t("search_count", { count: rows.length }) : t("search_none", { q: frame.q });
    searchDom.status.hidden = false;
  }

  function onSearchError(frame) {
    if (typeof frame.ref !== "string" || frame.ref.indexOf("search-") !== 0) return false;
    searching.sent = "";
    searchDom.results.replaceChildren();
    searchDom.status.textContent = frame.message || frame.code || "";
    searchDom.status.hidden = false;
    return true;
  }

  function buildResultRow(r) {
    var c = r.conversation;
    var m = r.message;
    var li = el("li", { className: "conv-row search-row", "data-testid": "search-result" });
    li.dataset.conversationId = String(c.id);
    var btn = el("button", { type: "button", className: "conv-item" });
    btn.dataset.conversationId = String(c.id);
    if (m && typeof m.seq === "number") btn.dataset.seq = String(m.seq);
    var name = (c.visitor && c.visitor.name) || t("visitor");
    var body = el("span", { className: "conv-body" });
    var top = el("span", { className: "conv-top" });
    top.appendChild(el("span", { className: "conv-name" }, name));
    var when = m ? m.created_at : c.last_message_at || c.created_at;
    var d = parseDate(when);
    top.appendChild(el("time", { className: "conv-time", datetime: d ? d.toISOString() : null, title: d ? fmtDateTime.format(d) : null }, listTime(when)));
    body.appendChild(top);
    var snippet = m ? m.snippet || "" : t("search_visitor_match");
    body.appendChild(el("span", { className: "conv-preview search-snippet", "data-testid": "search-snippet" }, snippet));
    var bottom = el("span", { className: "conv-bottom" });
    bottom.appendChild(statusPill(c.status));
    appendLabelChips(bottom, c.labels, false);
    body.appendChild(bottom);
    btn.appendChild(el("span", { className: "avatar", "aria-hidden": "true" }, name.trim().charAt(0).toUpperCase() || "?"));
    btn.appendChild(body);
    btn.addEventListener("click", function () {
      upsertConversation(c);
      found = m && typeof m.seq === "number" ? { id: c.id, seq: m.seq } : null;
      selectConversation(c.id, { user: true });
    });
    li.appendChild(btn);
    return li;
  }

  /* Scroll to the message a search result pointed at, once it is on screen, and mark it. */
  function highlightFound() {
    if (!found || found.id !== state.currentId) return;
    var node = dom.messages.querySelector('.msg[data-seq="' + found.seq + '"]');
    if (!node) return;
    found = null;
    stickToBottom = false;
    node.scrollIntoView({ block: "center" });
    node.classList.add("is-found");
    window.setTimeout(function () {
      node.classList.remove("is-found");
    }, 2500);
  }

  if (searchDom.input) {
    searchDom.input.addEventListener("input", function () {
      window.clearTimeout(searching.timer);
      if (!searchText()) {
        sendSearch();
        return;
      }
      searching.timer = window.setTimeout(sendSearch, SEARCH_DEBOUNCE_MS);
    });
    searchDom.input.addEventListener("keydown", function (event) {
      if (event.isComposing || event.keyCode === 229) return; // an IME is composing
      if (event.key === "Enter") {
        event.preventDefault();
        searching.sent = "";
        sendSearch();
      } else if (event.key === "Escape" && searchDom.input.value) {
        event.preventDefault();
        searchDom.input.value = "";
        sendSearch();
      }
    });
  }

  var labelState = { byName: new Map() }; // name -> {id, name, color}
  var labelDom = {
    chips: $("label-chips"),
    form: $("label-form"),
    input: $("label-input"),
    options: $("label-options"),
  };

  function setLabels(list) {
    labelState.byName = new Map();
    (Array.isArray(list) ? list : []).forEach(function (l) {
      if (l && typeof l.name === "string") labelState.byName.set(l.name, l);
    });
    renderLabelOptions();
  }

  function renderLabelOptions() {
    if (!labelDom.options) return;
    var names = Array.from(labelState.byName.keys()).sort(function (a, b) {
      return a.localeCompare(b);
    });
    labelDom.options.replaceChildren.apply(
      labelDom.options,
      names.map(function (n) {
        return el("option", { value: n });
      })
    );
  }

  function labelColor(name) {
    var l = labelState.byName.get(name);
    if (!l) {
      // A label another agent just created: offer it from now on.
      labelState.byName.set(name, { id: null, name: name, color: "" });
      renderLabelOptions();
      return "";
    }
    return typeof l.color === "string" && /^#[0-9a-fA-F]{6}$/.test(l.color) ? l.color : "";
  }

  function appendLabelChips(container, labels, removable) {
    if (!Array.isArray(labels) || !labels.length) return;
    var box = el("span", { className: "label-chips" });
    labels.forEach(function (name) {
      if (typeof name !== "string") return;
      var chip = el("span", { className: "label-chip", "data-testid": "label-chip" });
      var color = labelColor(name);
      if (color) chip.style.setProperty("--label-color", color);
      chip.appendChild(el("span", { className: "label-name" }, name));
      if (removable) {
        var x = el("button", { type: "button", className: "label-remove", "aria-label": t("label_remove", { name: name }), title: t("label_remove", { name: name }) }, "×");
        x.addEventListener("click", function () {
          sendLabels(labels.filter(function (n) { return n !== name; }));
        });
        chip.appendChild(x);
      }
      box.appendChild(chip);
    });
    container.appendChild(box);
  }

  function renderChatLabels(c) {
    if (!labelDom.chips) return;
    labelDom.chips.replaceChildren();
    if (c) appendLabelChips(labelDom.chips, c.labels, true);
  }

  function sendLabels(names) {
    var id = state.currentId;
    if (id === null) return false;
    return send({ type: "labels", conversation_id: id, labels: names, client_id: newClientId() });
  }

  if (labelDom.form) {
    labelDom.form.addEventListener("submit", function (event) {
      event.preventDefault();
      var c = state.currentId !== null ? state.conversations.get(state.currentId) : null;
      var name = labelDom.input.value.replace(/\s+/g, " ").replace(/^ | $/g, "");
      if (!c || !name) return;
      var current = Array.isArray(c.labels) ? c.labels.slice() : [];
      var lower = name.toLowerCase();
      if (current.some(function (n) { return n.toLowerCase() === lower; })) {
        labelDom.input.value = "";
        return;
      }
      var known = Array.from(labelState.byName.keys()).find(function (n) {
        return n.toLowerCase() === lower;
      });
      current.push(known || name);
      if (sendLabels(current)) labelDom.input.value = "";
    });
  }

  // --- routing and the agent's day: presence, colleagues, queue, list filter, status,
  //     transfer, private notes and the timeline's events (docs/protocol.md) ----------------

  var day = {
    me: { id: config.agent.id, name: config.agent.name, is_admin: false, teams: [] },
    agents: new Map(), // id -> {id, name, presence, connected}
    teams: [], // [{id, name}]
    filter: { view: null, status: "" }, // view null until the first welcome says the default
    events: new Map(), // conversation id -> Map(event id -> event)
  };
  var dayDom = {
    presence: $("presence-toggle"),
    presenceSwitch: $("presence-switch"),
    colleagues: $("agent-presence-list"),
    colleaguesToggle: $("colleagues-toggle"),
    colleaguesCount: $("colleagues-count"),
    queueInfo: $("queue-info"),
    queueCount: $("queue-count"),
    view: $("view-filter"),
    status: $("status-filter"),
    statusSelect: $("status-select"),
    snoozeForm: $("snooze-form"),
    snoozeAt: $("snooze-at"),
    transfer: $("transfer-button"),
    transferDialog: $("transfer-dialog"),
    transferTarget: $("transfer-target"),
    transferNote: $("transfer-note"),
    noteForm: $("note-form"),
    noteInput: $("note-input"),
  };
  var PRESENCES = ["online", "away", "offline"];
  var fmtShortDateTime = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  var STATUSES = ["open", "pending", "resolved", "snoozed"];

  /* The welcome: who I am, colleagues, teams, the queue and the list's default view.
   * Returns false when the list on screen uses another filter (a `list` was sent). */
  function onWelcomeDay(frame) {
    var a = frame.agent || {};
    day.me = {
      id: typeof a.id === "number" ? a.id : config.agent.id,
      name: typeof a.name === "string" ? a.name : config.agent.name,
      is_admin: !!a.is_admin,
      teams: Array.isArray(a.teams) ? a.teams : [],
    };
    showOwnPresence(a.presence);
    day.agents = new Map();
    (Array.isArray(frame.agents) ? frame.agents : []).forEach(function (p) {
      if (p && typeof p.id === "number") day.agents.set(p.id, p);
    });
    day.teams = (Array.isArray(frame.teams) ? frame.teams : []).filter(function (team) {
      return team && typeof team.id === "number";
    });
    renderColleagues();
    setQueue(frame.queue);
    var welcomeView = typeof frame.view === "string" ? frame.view : "inbox";
    if (day.filter.view === null) day.filter.view = welcomeView;
    renderFilter();
    if (day.filter.view === welcomeView && !day.filter.status) return true;
    sendList();
    return false;
  }

  function sendList() {
    var frame = { type: "list" };
    if (day.filter.view) frame.view = day.filter.view;
    if (day.filter.status) frame.status = day.filter.status;
    return send(frame);
  }

  function listFrameIsCurrent(frame) {
    if (typeof frame.view !== "string" || day.filter.view === null) return true;
    return frame.view === day.filter.view && (frame.status || "") === day.filter.status;
  }

  function renderFilter() {
    if (dayDom.view && day.filter.view) dayDom.view.value = day.filter.view;
    if (dayDom.status) dayDom.status.value = day.filter.status;
  }

  function inMyTeams(c) {
    return !!(c.team && day.me.teams.indexOf(c.team.id) !== -1);
  }

  /* The server's view filters (chat/selectors.py), for live `conversation` frames. */
  function conversationMatches(c) {
    if (day.filter.status && c.status !== day.filter.status) return false;
    var mine = !!(c.assignee && c.assignee.id === day.me.id);
    switch (day.filter.view) {
      case "mine":
        return mine;
      case "unassigned":
        return !c.assignee;
      case "team":
        return inMyTeams(c);
      case "inbox":
        return mine || !c.assignee || inMyTeams(c);
      default:
        return true; // "all", or before the first welcome
    }
  }

  function onFilterChange() {
    day.filter.view = dayDom.view.value;
    day.filter.status = dayDom.status.value;
    // Drop what does not match at once; the server's answer fills in the rest.
    state.conversations.forEach(function (c, id) {
      if (id !== state.currentId && !conversationMatches(c)) state.conversations.delete(id);
    });
    schedule("list");
    sendList();
  }
  if (dayDom.view) dayDom.view.addEventListener("change", onFilterChange);
  if (dayDom.status) dayDom.status.addEventListener("change", onFilterChange);

  // Presence: mine in the switch, colleagues' in the list.

  function showOwnPresence(presence) {
    if (PRESENCES.indexOf(presence) === -1) return;
    dayDom.presence.value = presence;
    dayDom.presenceSwitch.dataset.presence = presence;
  }

  dayDom.presence.addEventListener("change", function () {
    var wanted = dayDom.presence.value;
    if (send({ type: "presence", presence: wanted })) {
      dayDom.presenceSwitch.dataset.presence = wanted;
    } else {
      var me = day.agents.get(day.me.id);
      showOwnPresence(me ? me.presence : "online");
      showToast(t("not_connected"));
    }
  });

  function onPresence(frame) {
    var a = frame.agent;
    if (!a || typeof a.id !== "number") return;
    day.agents.set(a.id, a);
    if (a.id === day.me.id) showOwnPresence(a.presence);
    renderColleagues();
    if (!dayDom.transferDialog.hidden) fillTransferTargets();
  }

  /* What a colleague's dot shows: their switch, or offline when no console is open. */
  function shownPresence(a) {
    if (a.connected === false) return "offline";
    return PRESENCES.indexOf(a.presence) !== -1 ? a.presence : "offline";
  }

  function presenceText(a) {
    var text = t("presence_" + shownPresence(a));
    if (a.connected === false && a.presence !== "offline") text = t("presence_disconnected");
    return text;
  }

  function colleagues() {
    var list = [];
    day.agents.forEach(function (a) {
      if (a.id !== day.me.id) list.push(a);
    });
    var rank = { online: 0, away: 1, offline: 2 };
    list.sort(function (x, y) {
      var r = rank[shownPresence(x)] - rank[shownPresence(y)];
      return r || String(x.name).localeCompare(String(y.name));
    });
    return list;
  }

  function renderColleagues() {
    var list = colleagues();
    var online = 0;
    var items = list.map(function (a) {
      var shown = shownPresence(a);
      if (shown === "online") online += 1;
      var li = el("li", { className: "colleague", "data-testid": "agent-presence" });
      li.dataset.agentId = String(a.id);
      li.dataset.presence = shown;
      li.dataset.connected = a.connected === false ? "false" : "true";
      li.appendChild(el("span", { className: "presence-dot", "aria-hidden": "true" }));
      li.appendChild(el("span", { className: "colleague-name", "data-testid": "agent-presence-name" }, a.name || "?"));
      li.appendChild(el("span", { className: "colleague-presence", "data-testid": "agent-presence-state" }, presenceText(a)));
      return li;
    });
    if (!items.length) items.push(el("li", { className: "colleague colleague--none" }, t("no_colleagues")));
    dayDom.colleagues.replaceChildren.apply(dayDom.colleagues, items);
    dayDom.colleaguesCount.textContent = t("colleagues_online", { count: online });
  }

  function showColleagues(open) {
    dayDom.colleagues.hidden = !open;
    dayDom.colleaguesToggle.setAttribute("aria-expanded", open ? "true" : "false");
  }
  dayDom.colleaguesToggle.addEventListener("click", function () {
    showColleagues(dayDom.colleagues.hidden);
  });
  document.addEventListener("click", function (event) {
    if (!dayDom.colleagues.hidden && !event.target.closest("#colleagues")) showColleagues(false);
  });

  // The queue: how many visitors wait for an agent.

  function setQueue(queue) {
    if (!queue || typeof queue.total !== "number") return;
    var total = Math.max(0, queue.total | 0);
    dayDom.queueCount.textContent = String(total);
    dayDom.queueInfo.dataset.waiting = String(total);
    var parts = [];
    if (queue.teams && typeof queue.teams === "object") {
      Object.keys(queue.teams).forEach(function (key) {
        var team = day.teams.find(function (x) { return String(x.id) === key; });
        var name = key === "none" ? t("no_team") : team ? team.name : key;
        parts.push(name + ": " + queue.teams[key]);
      });
    }
    dayDom.queueInfo.title = t("queue_title", { count: total }) + (parts.length ? " (" + parts.join(", ") + ")" : "");
  }

  // The open conversation's status, with snoozing.

  function renderDayHeader(c) {
    var status = c ? c.status : "";
    dayDom.statusSelect.disabled = !c;
    if (dayDom.snoozeForm.hidden && STATUSES.indexOf(status) !== -1) dayDom.statusSelect.value = status;
    dayDom.statusSelect.dataset.status = status;
    dayDom.transfer.disabled = !c;
    dom.chatStatus.removeAttribute("title");
    if (c && status === "snoozed") {
      var until = parseDate(c.snoozed_until);
      if (until) {
        dom.chatStatus.textContent = t("snoozed_until", { time: fmtShortDateTime.format(until) });
        dom.chatStatus.title = fmtDateTime.format(until);
      }
    }
    if (c && c.team && c.team.name) {
      dom.chatAssignee.textContent += " · " + c.team.name;
    }
  }

  function pad2(n) {
    return (n < 10 ? "0" : "") + n;
  }

  /* A local time as ISO 8601 with this browser's offset, e.g. 2026-03-02T09:00:00+01:00. */
  function isoWithOffset(d) {
    var offset = -d.getTimezoneOffset();
    var sign = offset >= 0 ? "+" : "-";
    offset = Math.abs(offset);
    return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) +
      "T" + pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds()) +
      sign + pad2(Math.floor(offset / 60)) + ":" + pad2(offset % 60);
  }

  function localInputValue(d) {
    return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + "T" + pad2(d.getHours()) + ":" + pad2(d.getMinutes());
  }

  function sendStatus(status, until) {
    var id = state.currentId;
    if (id === null) return false;
    var frame = { type: "status", conversation_id: id, status: status };
    if (until) frame.snooze_until = isoWithOffset(until);
    return send(frame);
  }

  function showSnooze(open) {
    dayDom.snoozeForm.hidden = !open;
    if (open) {
      var soon = new Date(Date.now() + 3600000);
      dayDom.snoozeAt.min = localInputValue(new Date());
      dayDom.snoozeAt.value = localInputValue(soon);
    } else {
      schedule("header"); // the select shows the real status again
    }
  }

  function snoozeUntil(d) {
    if (!d || isNaN(d.getTime()) || d.getTime() <= Date.now()) {
      showToast(t("snooze_future"));
      return;
    }
    if (sendStatus("snoozed", d)) showSnooze(false);
  }

  dayDom.statusSelect.addEventListener("change", function () {
    var value = dayDom.statusSelect.value;
    if (value === "snoozed") {
      showSnooze(true);
      dayDom.snoozeAt.focus();
      return;
    }
    showSnooze(false);
    sendStatus(value, null);
  });
  $("snooze-hour").addEventListener("click", function () {
    snoozeUntil(new Date(Date.now() + 3600000));
  });
  $("snooze-tomorrow").addEventListener("click", function () {
    var d = new Date();
    d.setDate(d.getDate() + 1);
    d.setHours(9, 0, 0, 0);
    snoozeUntil(d);
  });
  $("snooze-cancel").addEventListener("click", function () {
    showSnooze(false);
  });
  dayDom.snoozeForm.addEventListener("submit", function (event) {
    event.preventDefault();
    // datetime-local has no zone: it is this browser's local time.
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(dayDom.snoozeAt.value);
    snoozeUntil(m ? new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) : null);
  });

  // Transfer to a colleague or a team, with an optional private note.

  function fillTransferTargets() {
    var c = state.currentId !== null ? state.conversations.get(state.currentId) : null;
    var keep = dayDom.transferTarget.value;
    var options = [el("option", { value: "" }, t("transfer_pick"))];
    var agents = el("optgroup", { label: t("transfer_agents") });
    var list = colleagues();
    var me = day.agents.get(day.me.id);
    if (me) list.push(me);
    list.forEach(function (a) {
      if (c && c.assignee && c.assignee.id === a.id) return; // already theirs
      var label = (a.id === day.me.id ? t("transfer_me", { name: a.name }) : a.name) + " — " + presenceText(a);
      agents.appendChild(el("option", { value: "agent:" + a.id, dataset: { presence: shownPresence(a) } }, label));
    });
    if (agents.children.length) options.push(agents);
    if (day.teams.length) {
      var teams = el("optgroup", { label: t("transfer_teams") });
      day.teams.forEach(function (team) {
        teams.appendChild(el("option", { value: "team:" + team.id }, team.name));
      });
      options.push(teams);
    }
    dayDom.transferTarget.replaceChildren.apply(dayDom.transferTarget, options);
    dayDom.transferTarget.value = keep;
    if (dayDom.transferTarget.value !== keep) dayDom.transferTarget.value = "";
  }

  function showTransfer(open) {
    dayDom.transferDialog.hidden = !open;
    dayDom.transfer.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      dayDom.transferTarget.value = "";
      fillTransferTargets();
      dayDom.transferNote.value = "";
      dayDom.transferTarget.focus();
    }
  }
  dayDom.transfer.addEventListener("click", function () {
    if (state.currentId !== null) showTransfer(dayDom.transferDialog.hidden);
  });
  $("transfer-cancel").addEventListener("click", function () {
    showTransfer(false);
    dayDom.transfer.focus();
  });
  dayDom.transferDialog.addEventListener("submit", function (event) {
    event.preventDefault();
    var id = state.currentId;
    var m = /^(agent|team):(\d+)$/.exec(dayDom.transferTarget.value);
    if (id === null || !m) {
      dayDom.transferTarget.focus();
      return;
    }
    var frame = { type: "transfer", conversation_id: id };
    frame[m[1] + "_id"] = parseInt(m[2], 10);
    var note = dayDom.transferNote.value.replace(/^\s+|\s+$/g, "");
    if (note) frame.note = note;
    if (send(frame)) showTransfer(false);
    else showToast(t("not_connected"));
  });
  dayDom.transferDialog.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.stopPropagation();
      showTransfer(false);
      dayDom.transfer.focus();
    }
  });

  // Private notes and the timeline's events.

  function submitNote() {
    var id = state.currentId;
    var text = dayDom.noteInput.value.replace(/^\s+|\s+$/g, "");
    if (id === null || !text) return;
    if (send({ type: "note", conversation_id: id, text: text, client_id: newClientId() })) {
      dayDom.noteInput.value = "";
      stickToBottom = true;
    } else {
      showToast(t("not_connected"));
    }
  }
  dayDom.noteForm.addEventListener("submit", function (event) {
    event.preventDefault();
    submitNote();
  });
  dayDom.noteInput.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    submitNote();
  });
  if (config.max_text) dayDom.noteInput.maxLength = config.max_text;

  function setEvents(id, list) {
    var map = new Map();
    list.forEach(function (ev) {
      if (ev && typeof ev.id === "number") map.set(ev.id, ev);
    });
    day.events.set(id, map);
  }

  function onEvent(frame) {
    var ev = frame.event;
    var id = frame.conversation_id;
    if (!ev || typeof ev.id !== "number" || typeof id !== "number") return;
    var map = day.events.get(id);
    if (!map) {
      if (id !== state.currentId) return; // loaded with the history when opened
      map = new Map();
      day.events.set(id, map);
    }
    map.set(ev.id, ev);
    if (id === state.currentId) {
      nodeCache.delete("ev:" + ev.id);
      schedule("messages");
    }
  }

  function eventTime(ev) {
    var d = parseDate(ev.created_at);
    return d ? d.getTime() : 0;
  }

  function timelineEvents(id) {
    var map = day.events.get(id);
    if (!map) return [];
    return Array.from(map.values()).sort(function (a, b) {
      return eventTime(a) - eventTime(b) || a.id - b.id;
    });
  }

  function nameOf(ref) {
    return ref && ref.name ? ref.name : t("system");
  }

  function waitedText(seconds) {
    var s = Math.max(0, seconds | 0);
    if (s < 60) return t("seconds", { n: s });
    if (s < 3600) return t("minutes", { n: Math.round(s / 60) });
    return t("hours", { n: Math.round(s / 360) / 10 });
  }

  /* One line for a system event, as text. */
  function eventText(ev) {
    var data = ev.data && typeof ev.data === "object" ? ev.data : {};
    var actor = nameOf(ev.actor);
    switch (ev.kind) {
      case "assigned":
        if (data.how === "queue") return t("event_assigned_queue", { agent: nameOf(ev.agent), waited: waitedText(data.waited_seconds) });
        if (data.how === "reply") return t("event_assigned_reply", { agent: nameOf(ev.agent) });
        if (data.how === "transfer") return t("event_assigned_transfer", { agent: nameOf(ev.agent) });
        return t("event_assigned", { agent: nameOf(ev.agent) });
      case "queued":
        return ev.team ? t("event_queued_team", { team: ev.team.name }) : t("event_queued");
      case "transferred":
        if (ev.agent) return t("event_transferred_agent", { actor: actor, agent: ev.agent.name });
        return t("event_transferred_team", { actor: actor, team: ev.team ? ev.team.name : "?" });
      case "status": {
        var to = typeof data.to === "string" ? data.to : "";
        if (data.by === "timer") return t("event_woke");
        if (data.by === "visitor") return t("event_reopened");
        if (to === "snoozed") {
          var until = parseDate(data.until);
          return t("event_snoozed", { actor: actor, time: until ? fmtDateTime.format(until) : "?" });
        }
        return t("event_status", { actor: actor, status: t("status_" + to) });
      }
      case "labels": {
        var changes = [];
        (Array.isArray(data.added) ? data.added : []).forEach(function (n) { changes.push("+" + n); });
        (Array.isArray(data.removed) ? data.removed : []).forEach(function (n) { changes.push("\u2212" + n); });
        return t("event_labels", { actor: actor, changes: changes.join(", ") });
      }
      case "note":
        return t("note_private");
      case "rating": {
        var stars = typeof data.rating === "number" ? data.rating : "?";
        if (ev.text) return t("event_rating_comment", { rating: stars, comment: ev.text });
        return t(typeof data.previous === "number" ? "event_rating_changed" : "event_rating", { rating: stars });
      }
      case "blocked":
        if (data.scope === "ip" && data.ip_network) return t("event_blocked_ip", { name: actor, network: data.ip_network });
        return t("event_blocked", { name: actor });
      default:
        return String(ev.kind || "");
    }
  }

  function buildEventNode(ev) {
    var d = parseDate(ev.created_at);
    var time = el("time", { className: "tl-time", datetime: d ? d.toISOString() : null, title: d ? fmtDateTime.format(d) : null }, d ? fmtTime.format(d) : "");
    if (ev.kind === "note") {
      var note = el("div", { className: "tl-note", "data-testid": "timeline-note" });
      note.dataset.eventId = String(ev.id);
      var head = el("div", { className: "tl-note-head" });
      head.appendChild(el("span", { className: "tl-note-author" }, nameOf(ev.actor)));
      head.appendChild(el("span", { className: "tl-note-label" }, t("note_private")));
      head.appendChild(time);
      note.appendChild(head);
      var body = el("div", { className: "tl-note-text", "data-testid": "timeline-note-text" });
      appendText(body, ev.text || "");
      note.appendChild(body);
      return note;
    }
    var node = el("div", { className: "tl-event", "data-testid": "timeline-event", role: "note" });
    node.dataset.eventId = String(ev.id);
    node.dataset.kind = String(ev.kind || "");
    var line = el("div", { className: "tl-event-line" });
    line.appendChild(el("span", { className: "tl-event-text" }, eventText(ev)));
    line.appendChild(time);
    node.appendChild(line);
    if ((ev.kind === "transferred" || ev.kind === "blocked") && ev.text) { // the agent's note or reason
      var quote = el("div", { className: "tl-event-note", "data-testid": "timeline-event-note" });
      appendText(quote, ev.text);
      node.appendChild(quote);
    }
    return node;
  }

  // --- wiring --------------------------------------------------------------------------------

  dom.list.addEventListener("click", function (event) {
    var btn = event.target.closest(".conv-item");
    if (!btn) return;
    selectConversation(parseInt(btn.dataset.conversationId, 10), { user: true });
  });

  dom.composer.addEventListener("submit", function (event) {
    event.preventDefault();
    submitReply();
  });

  dom.input.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.isComposing || event.keyCode === 229) return; // an IME (e.g. pinyin) is composing
    event.preventDefault();
    submitReply();
  });

  dom.input.addEventListener("input", function () {
    autosize();
    if (state.currentId !== null) drafts.set(state.currentId, dom.input.value);
    if (dom.input.value.trim()) noteTyping();
    else stopTyping();
  });

  dom.input.addEventListener("blur", stopTyping);
  if (dom.suggest) {
    dom.suggest.addEventListener("click", requestSuggestion);
    dom.suggestionInsert.addEventListener("click", insertSuggestion);
    dom.suggestionDismiss.addEventListener("click", hideSuggestion);
  }

  if (config.max_text) dom.input.maxLength = config.max_text;
  if (Array.isArray(config.upload_types) && config.upload_types.length) {
    dom.attach.accept = config.upload_types.join(",");
  }

  dom.attach.addEventListener("change", function () {
    if (dom.attach.files && dom.attach.files.length) uploadFiles(dom.attach.files);
    dom.attach.value = "";
  });

  dom.input.addEventListener("paste", function (event) {
    var files = event.clipboardData && event.clipboardData.files;
    if (files && files.length) {
      event.preventDefault();
      uploadFiles(files);
    }
  });

  dom.chat.addEventListener("dragover", function (event) {
    if (event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") !== -1) {
      event.preventDefault();
      dom.chat.classList.add("is-dropping");
    }
  });
  dom.chat.addEventListener("dragleave", function (event) {
    if (!dom.chat.contains(event.relatedTarget)) dom.chat.classList.remove("is-dropping");
  });
  dom.chat.addEventListener("drop", function (event) {
    dom.chat.classList.remove("is-dropping");
    if (event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files.length) {
      event.preventDefault();
      uploadFiles(event.dataTransfer.files);
    }
  });

  dom.messages.addEventListener("scroll", function () {
    var el_ = dom.messages;
    stickToBottom = el_.scrollHeight - el_.scrollTop - el_.clientHeight < 60;
  });

  dom.resolve.addEventListener("click", function () {
    var id = state.currentId;
    if (id === null) return;
    if (send({ type: "resolve", conversation_id: id })) dom.resolve.disabled = true;
  });

  dom.back.addEventListener("click", function () {
    dom.app.dataset.view = "list";
  });

  function setDetailsOpen(open) {
    dom.app.classList.toggle("show-details", open);
    dom.detailsToggle.setAttribute("aria-expanded", open ? "true" : "false");
  }
  dom.detailsToggle.addEventListener("click", function () {
    setDetailsOpen(!dom.app.classList.contains("show-details"));
  });
  dom.detailsClose.addEventListener("click", function () {
    setDetailsOpen(false);
    dom.detailsToggle.focus();
  });

  dom.notifyEnable.addEventListener("click", function () {
    ensureAudio();
    if (!("Notification" in window)) return;
    var result = window.Notification.requestPermission(renderNotifyButton);
    if (result && result.then) result.then(renderNotifyButton);
  });

  dom.soundToggle.addEventListener("click", function () {
    soundOn = !soundOn;
    try {
      window.localStorage.setItem(SOUND_KEY, soundOn ? "on" : "off");
    } catch (e) {
      /* no storage */
    }
    renderSoundButton();
    if (soundOn) {
      ensureAudio();
      lastBeep = 0;
      beep();
    }
  });

  // Browsers only start audio after a user gesture: make the context on the first one.
  ["pointerdown", "keydown"].forEach(function (name) {
    document.addEventListener(name, ensureAudio, { once: true, capture: true });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && dom.app.classList.contains("show-details")) setDetailsOpen(false);
  });

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    if (ready) ping(); // timers sleep in hidden tabs: check the socket at once
    if (state.currentId !== null) maybeSendRead(state.currentId, true);
  });

  window.addEventListener("online", function () {
    if (ready) {
      ping();
    } else if (!ws && !sessionEnded) {
      attempts = 0;
      connect();
    }
  });
  window.addEventListener("offline", function () {
    if (!ws) setConnection("offline", t("offline"));
  });

  // Start: the outbox restored from sessionStorage is sent after the first welcome.
  renderNotifyButton();
  renderSoundButton();
  updateTitle(0);
  dom.listEmpty.hidden = true;
  connect();
})();
