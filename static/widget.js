/*
 * Helpdesk visitor widget. Embed with one tag:
 *   <script src="https://chat.example.com/static/widget.js" data-key="WIDGET_KEY" async></script>
 * Optional: data-color="#0f766e" (accent colour).
 *
 * Talks the visitor side of the WebSocket protocol (chat/consumers.py VisitorConsumer).
 * Rules kept here: user text is only ever set with textContent (never innerHTML); a message
 * stays in the outbox (persisted in localStorage) until the server acks it, and is resent
 * with the same client_id after any reconnect or reload; messages are keyed by seq.
 */
(() => {
  "use strict";
  if (window.__helpdeskWidget) return;
  const script =
    document.currentScript || document.querySelector('script[data-key][src*="widget"]');
  if (!script || !script.src) return;
  window.__helpdeskWidget = 1;

  const KEY = script.dataset.key || "";
  const SRC = new URL(script.src, location.href);
  const BASE = SRC.origin;
  const WS_URL =
    (SRC.protocol === "https:" ? "wss://" : "ws://") +
    SRC.host + "/ws/visitor/?key=" + encodeURIComponent(KEY);
  const COLOR = /^#[0-9a-f]{3,8}$/i.test(script.dataset.color || "") ? script.dataset.color : "";

  // English until `welcome` brings the translated strings.
  const EN = {
    title: "Chat with us", placeholder: "Type your message…", send: "Send",
    attach: "Attach a file", connecting: "Connecting…", online: "We are online",
    offline: "We are offline", reconnecting: "Reconnecting…", typing: "typing…", read: "Read",
    delivered: "Delivered", sending: "Sending…", failed: "Not sent, retrying",
    name: "Your name", email: "Your email", message: "Your message",
    leave_message: "Leave a message", leave_sent: "Thanks! We will get back to you by email.",
    resolved: "This conversation was marked as resolved. Write again any time.",
    upload_failed: "The file could not be sent", close: "Close",
    articles: "Help articles",
    bot: "Bot", human: "Talk to a human",
    rate_prompt: "How would you rate this conversation?", rate_star: "%(n)s out of 5",
    rate_comment: "Anything you would like to add? (optional)", rate_submit: "Send rating",
    rate_thanks: "Thank you for your feedback!",
    department: "Which department would you like to talk to?",
    department_any: "Choose a department (optional)", blocked: "This chat is not available.",
    queue_position: "You are number %(n)s in the queue",
    chatting_with: "You are chatting with %(name)s",
  };

  // --- persistence (per widget key) -----------------------------------------------------------
  const SK = "helpdesk-widget:" + KEY;
  let store = {};
  try {
    store = JSON.parse(localStorage.getItem(SK)) || {};
  } catch (e) { /* private mode or corrupt: start fresh */ }
  // Every client id this tab has held: on save, another tab's unacked entries (ids we
  // never held) are kept, so two tabs of one site never drop each other's outbox.
  const mine = new Set();
  const save = () => {
    let others = [];
    try {
      const fresh = JSON.parse(localStorage.getItem(SK)) || {};
      others = (fresh.out || []).filter((o) => o && !mine.has(o.cid));
    } catch (e) { /* corrupt: keep ours only */ }
    for (const p of outbox) mine.add(p.cid);
    store.out = others.concat(outbox.map(({ cid, kind, text, att, name, email, dep }) =>
      ({ cid, kind, text, att, name, email, dep })));
    try { localStorage.setItem(SK, JSON.stringify(store)); } catch (e) { /* quota */ }
  };

  let S = Object.assign({}, EN, (store.cfg || {}).s);
  let limits = { max_text: 5000, max_upload_bytes: 10 << 20, upload_types: [] };
  let agentsOnline = (store.cfg || {}).a !== false;
  // A bot answers in this workspace: keep the message box open with nobody online.
  let botOn = !!(store.cfg || {}).b;

  // --- state ----------------------------------------------------------------------------------
  const msgs = new Map(); // seq -> {m, el}
  const notes = []; // local notes: {after: seq, el}
  const failed = []; // bubbles the server refused for good
  let outbox = []; // unacked: {cid, kind: "message"|"leave", text, att, name, email, el}
  let convId = null, convStatus = null;
  let lastSeq = 0; // every seq <= lastSeq is held
  let histAt = 0;
  let histFrom = []; // after-seq of each history request in flight, in order
  let readSeq = 0, delivSeq = 0; // how far the agent has read / received our messages
  let myRead = 0, myDeliv = 0; // how far we have reported reading theirs
  let ws = null, ready = false, dead = false, attempt = 0, retryTimer = 0;
  let lastFrame = 0, pingAt = 0;
  let isOpen = false, atBottom = true;
  let queuePos = null, agentName = null; // null: not waiting / nobody assigned yet
  let typingOn = false, typingAt = 0, typingIdle = 0, agentTypingTimer = 0, noticeTimer = 0;

  // --- DOM helpers (textContent only) ---------------------------------------------------------
  const h = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  };
  const attr = (e, a) => { for (const k in a) e.setAttribute(k, a[k]); return e; };
  const NS = "http://www.w3.org/2000/svg";
  const icon = (d, cls) => {
    const s = document.createElementNS(NS, "svg");
    attr(s, { viewBox: "0 0 24 24", fill: "none", stroke: "currentColor", "stroke-width": "2",
      "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true" });
    if (cls) s.setAttribute("class", cls);
    const p = document.createElementNS(NS, "path");
    p.setAttribute("d", d);
    s.append(p);
    return s;
  };
  const I_CHAT = "M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-5A8 8 0 1 1 21 12z";
  const I_X = "M6 6l12 12M18 6L6 18";
  const I_DOWN = "M6 9l6 6 6-6";
  const I_CLIP =
    "M21 11.5l-8.6 8.6a5.3 5.3 0 0 1-7.5-7.5l8.6-8.6a3.5 3.5 0 0 1 5 5l-8.6 8.6a1.8 1.8 0 0 1-2.5-2.5l7.9-7.9";
  const I_SEND = "M5 12h13M12 5l7 7-7 7";

  const CSS = `:host{all:initial}
*{box-sizing:border-box;margin:0;padding:0;font:inherit;color:inherit;letter-spacing:normal}
.w{--c:${COLOR || "#4f46e5"};--t:#fff;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2937;-webkit-font-smoothing:antialiased;text-align:left}
button{cursor:pointer;background:none;border:0}
button:focus-visible,a:focus-visible,textarea:focus-visible,input:focus-visible{outline:2px solid var(--c);outline-offset:2px}
.launch{position:fixed;right:20px;bottom:20px;z-index:2147483001;width:60px;height:60px;border-radius:50%;background:var(--c);color:var(--t);box-shadow:0 6px 24px rgba(15,23,42,.28);display:grid;place-items:center;transition:transform .2s,box-shadow .2s;-webkit-tap-highlight-color:transparent}
.launch:hover{transform:scale(1.06);box-shadow:0 8px 28px rgba(15,23,42,.34)}
.launch svg{width:28px;height:28px;grid-area:1/1;transition:transform .25s,opacity .2s}
.launch .x,.launch.open .c{opacity:0;transform:rotate(-90deg) scale(.6)}
.launch.open .x{opacity:1;transform:none}
.badge{position:absolute;top:-3px;right:-3px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#ef4444;color:#fff;font-size:12px;font-weight:700;line-height:18px;text-align:center;border:2px solid #fff}
.badge:empty{display:none}
.panel{position:fixed;right:20px;bottom:92px;z-index:2147483000;width:370px;height:540px;max-height:calc(100vh - 112px);background:#fff;border-radius:18px;box-shadow:0 16px 56px rgba(15,23,42,.22),0 2px 8px rgba(15,23,42,.08);display:flex;flex-direction:column;overflow:hidden;opacity:0;visibility:hidden;transform:translateY(16px) scale(.98);transform-origin:bottom right;transition:opacity .2s,transform .2s,visibility 0s .2s}
.panel.open{opacity:1;visibility:visible;transform:none;transition:opacity .2s,transform .2s}
.head{background:var(--c);background-image:linear-gradient(135deg,rgba(255,255,255,.14),rgba(0,0,0,.08));color:var(--t);padding:16px 14px 16px 18px;display:flex;align-items:center;gap:12px;flex:none}
.av{width:40px;height:40px;border-radius:50%;background:rgba(255,255,255,.2);display:grid;place-items:center;flex:none}
.av svg{width:22px;height:22px}
.hd{flex:1;min-width:0}
.ttl{font-size:16px;font-weight:650;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.st{font-size:12.5px;opacity:.9;display:flex;align-items:center;gap:6px}
.dot{width:8px;height:8px;border-radius:50%;background:#fbbf24;flex:none}
.on .dot{background:#34d399;box-shadow:0 0 0 3px rgba(52,211,153,.3)}
.off .dot{background:#cbd5e1}
.min{width:36px;height:36px;border-radius:50%;display:grid;place-items:center;color:var(--t)}
.min:hover{background:rgba(255,255,255,.16)}
.min svg{width:22px;height:22px}
.list{flex:1;overflow-y:auto;padding:16px 14px 8px;display:flex;flex-direction:column;gap:3px;background:#f6f7fb;overscroll-behavior:contain}
.msg{display:flex;flex-direction:column;align-items:flex-start;max-width:82%;margin-top:6px}
.msg.cont{margin-top:0}
.msg.visitor{align-self:flex-end;align-items:flex-end}
.who{font-size:11.5px;color:#6b7280;margin:0 0 3px 10px}
.cont .who,.who:empty{display:none}
.bub{padding:9px 13px;border-radius:18px;background:#fff;box-shadow:0 1px 2px rgba(15,23,42,.08);white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}
.visitor .bub{background:var(--c);color:var(--t);border-bottom-right-radius:6px}
.agent .bub,.bot .bub,.greet .bub{border-bottom-left-radius:6px}
.bub a{color:inherit;text-decoration:underline}
.bub .img{display:block;margin:-4px -8px;text-decoration:none}
.bub .txt+.img,.bub .txt+.file{margin-top:6px}
.bub img{display:block;max-width:100%;max-height:220px;min-height:40px;border-radius:12px;background:rgba(0,0,0,.05)}
.file{display:inline-flex;align-items:center;gap:6px;font-weight:600}
.file svg{width:16px;height:16px;flex:none}
.bub.media{padding:0;background:none;box-shadow:none}
.bub.media .img{margin:0}
.bub.media img{border-radius:14px;box-shadow:0 1px 3px rgba(15,23,42,.15)}
.msg.system{align-self:center;align-items:center;max-width:92%}
.system .bub{background:none;box-shadow:none;color:#6b7280;font-size:12.5px;text-align:center;padding:4px 8px}
.meta{font-size:11px;color:#9ca3af;margin:3px 6px 0}
.meta:empty{display:none}
.pending .bub{opacity:.75}
.fail .bub{background:#fee2e2;color:#7f1d1d}
.fail .meta{color:#dc2626}
.note{align-self:center;margin:10px 0;padding:7px 12px;border-radius:12px;background:#eceefe;color:#4b5563;font-size:12.5px;text-align:center;max-width:92%}
.typing{flex:none;height:0;overflow:hidden;padding:0 18px;font-size:12px;color:#6b7280;background:#f6f7fb;transition:height .15s}
.typing.show{height:22px}
.typing i{display:inline-block;width:5px;height:5px;margin-right:2px;border-radius:50%;background:#9ca3af;animation:b 1.2s infinite}
.typing i:nth-child(2){animation-delay:.15s}.typing i:nth-child(3){animation-delay:.3s;margin-right:6px}
@keyframes b{0%,60%,100%{transform:none;opacity:.5}30%{transform:translateY(-3px);opacity:1}}
.notice{flex:none;margin:0 12px 8px;padding:8px 12px;border-radius:10px;background:#1f2937;color:#fff;font-size:12.5px}
.notice:empty{display:none}
.comp{flex:none;display:flex;align-items:flex-end;gap:4px;padding:10px 10px calc(10px + env(safe-area-inset-bottom));border-top:1px solid #eceef3;background:#fff}
textarea,input{display:block;width:100%;border:1px solid #e2e5ec;border-radius:12px;background:#fff;padding:9px 12px;outline:0;font-size:14px;line-height:20px;color:#111827}
textarea::placeholder,input::placeholder{color:#9ca3af}
textarea:focus,input:focus{border-color:var(--c);box-shadow:0 0 0 3px color-mix(in srgb,var(--c) 18%,transparent)}
.comp textarea{flex:1;resize:none;min-height:40px;max-height:132px;border-radius:20px;padding:9px 14px;border-color:transparent;background:#f3f4f6}
.ib{width:40px;height:40px;border-radius:50%;display:grid;place-items:center;color:#6b7280;flex:none;transition:background .15s,opacity .15s}
.ib:hover{background:#f3f4f6}
.ib svg{width:21px;height:21px}
.send{background:var(--c);color:var(--t)}
.send:hover{background:var(--c);filter:brightness(1.08)}
.ib:disabled{opacity:.4;cursor:default}
.hide{display:none!important}
.off-pane{flex:none;padding:14px 16px calc(14px + env(safe-area-inset-bottom));border-top:1px solid #eceef3;background:#fff;display:flex;flex-direction:column;gap:8px;max-height:65%;overflow-y:auto}
.off-pane p{color:#4b5563;font-size:13px}
.off-pane form{display:flex;flex-direction:column;gap:8px}
.off-pane textarea{resize:vertical;min-height:72px}
.btn{height:40px;border-radius:12px;background:var(--c);color:var(--t);font-weight:600}
.btn:disabled{opacity:.6}
.link{color:var(--c);font-weight:600;align-self:flex-start;padding:4px 0}
.thanks{color:#065f46;background:#ecfdf5;border-radius:10px;padding:10px 12px;font-size:13px}
[aria-invalid]{border-color:#ef4444}
.err{color:#b91c1c;font-size:12.5px}
.bot .who{color:var(--c);font-weight:600}
.hrow{flex:none;display:flex;justify-content:center;padding:6px 12px 0;background:#fff;border-top:1px solid #eceef3}
.hbtn{font-size:12.5px;font-weight:600;color:var(--c);border:1px solid #d4d7e3;border-radius:14px;padding:4px 12px}
.hbtn:hover{background:#f3f4ff}
.sugg{flex:none;padding:8px 12px 0;background:#fff;border-top:1px solid #eceef3;display:flex;flex-direction:column;gap:4px}
.sugg:empty{display:none}
.sugg p{font-size:11.5px;color:#6b7280;padding:0 2px}
.sugg a{display:block;padding:6px 10px;border-radius:10px;background:#f3f4ff;color:#3730a3;font-size:13px;text-decoration:none;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.sugg a:hover{background:#e7e9ff}
.err:empty{display:none}
.rate{flex:none;padding:12px 16px;border-top:1px solid #eceef3;background:#fff;display:flex;flex-direction:column;gap:8px}
.rate p{font-size:13px;color:#374151;font-weight:600}
.stars{display:flex;gap:6px}
.star{width:40px;height:40px;border-radius:10px;border:1px solid #d4d7e3;font-size:15px;font-weight:700;color:#4b5563}
.star[aria-pressed=true]{background:var(--c);border-color:var(--c);color:var(--t)}
.rate textarea{resize:vertical;min-height:56px}
.dep{flex:none;padding:8px 12px 0;background:#fff;border-top:1px solid #eceef3;display:flex;flex-direction:column;gap:4px}
.dep label{font-size:12px;color:#6b7280;display:flex;flex-direction:column;gap:4px}
.qpos{flex:none;padding:8px 14px;background:#fef3c7;color:#78350f;font-size:13px;font-weight:600;text-align:center;border-bottom:1px solid #fde68a}
.agl{font-size:12px;opacity:.92;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.dep select{display:block;width:100%;height:36px;border:1px solid #e2e5ec;border-radius:10px;background:#fff;padding:0 8px;font-size:14px;color:#111827}
@media (max-width:479px){
.panel{inset:0;width:auto;height:auto;max-height:none;border-radius:0;transform:translateY(24px)}
.launch{right:16px;bottom:16px}
.launch.open{top:calc(14px + env(safe-area-inset-top));right:10px;bottom:auto;width:44px;height:44px;background:transparent;box-shadow:none}
.launch.open:hover{transform:none;background:rgba(255,255,255,.16)}
.launch.open svg{width:24px;height:24px}
.head{padding-top:calc(16px + env(safe-area-inset-top));padding-right:62px}
.min{display:none}
textarea,input{font-size:16px}
.msg{max-width:86%}}
@media (prefers-reduced-motion:reduce){*{transition:none!important;animation:none!important}}`;

  // --- build the UI in an open shadow root ----------------------------------------------------
  const host = document.createElement("helpdesk-chat");
  // Inline !important beats any page rule aimed at the host (display, transform...).
  host.setAttribute("style", "all:initial!important");
  const root = host.attachShadow({ mode: "open" });
  const style = h("style");
  style.textContent = CSS;
  const wrap = h("div", "w");
  root.append(style, wrap);

  const launcher = attr(h("button", "launch"),
    { type: "button", "data-testid": "widget-launcher", "aria-expanded": "false" });
  const badge = h("span", "badge");
  launcher.append(icon(I_CHAT, "c"), icon(I_X, "x"), badge);

  const panel = attr(h("div", "panel"), { role: "dialog" });
  const head = h("div", "head");
  const av = h("div", "av");
  av.append(icon(I_CHAT));
  const hd = h("div", "hd");
  const title = h("div", "ttl");
  const stBox = h("div", "st");
  const stText = attr(h("span"), { "data-testid": "widget-status", role: "status" });
  stBox.append(h("i", "dot"), stText);
  // Who answers (welcome / conversation frames' agent_name) and the place in the queue.
  const agentLine = attr(h("div", "agl hide"), { "data-testid": "widget-agent" });
  hd.append(title, stBox, agentLine);
  const qpos = attr(h("div", "qpos hide"), { "data-testid": "widget-queue-position", role: "status" });
  const minBtn = attr(h("button", "min"), { type: "button" });
  minBtn.append(icon(I_DOWN));
  head.append(av, hd, minBtn);

  const list = attr(h("div", "list"), { role: "log", "aria-live": "polite" });
  const greet = attr(h("div", "msg greet agent"), { "data-testid": "widget-welcome" });
  const greetBub = h("div", "bub");
  greet.append(greetBub);
  const typing = attr(h("div", "typing"), { "aria-live": "polite" });
  const typingText = h("span");
  typing.append(h("i"), h("i"), h("i"), typingText);
  const notice = attr(h("div", "notice"), { role: "alert" });

  // composer
  const comp = h("form", "comp");
  const fileIn = attr(h("input", "hide"), { type: "file", "data-testid": "widget-file", tabindex: "-1" });
  const clip = attr(h("button", "ib"), { type: "button" });
  clip.append(icon(I_CLIP));
  const ta = attr(h("textarea"), { rows: "1", "data-testid": "widget-input", enterkeyhint: "send" });
  const sendBtn = attr(h("button", "ib send"), { type: "submit", "data-testid": "widget-send" });
  sendBtn.append(icon(I_SEND));
  comp.append(fileIn, clip, ta, sendBtn);

  // offline: leave a message
  const offPane = h("div", "off-pane hide");
  const offText = h("p");
  const offForm = attr(h("form"), { "data-testid": "widget-offline-form", novalidate: "" });
  const fName = attr(h("input"), { name: "name", autocomplete: "name", maxlength: "120" });
  const fEmail = attr(h("input"), { name: "email", type: "email", autocomplete: "email", maxlength: "254" });
  const fText = attr(h("textarea"), { name: "message", rows: "3" });
  const fErr = h("div", "err");
  const fBtn = attr(h("button", "btn"), { type: "submit" });
  offForm.append(fName, fEmail, fText, fErr, fBtn);
  const thanks = h("div", "thanks hide");
  const again = attr(h("button", "link hide"), { type: "button" });
  offPane.append(offText, offForm, thanks, again);

  // Help-centre articles matching what the visitor is typing (GET /help/api/KEY/suggest).
  const sugg = attr(h("div", "sugg"), { "aria-live": "polite" });
  // "Talk to a human" (docs/protocol.md, handoff): shown while a bot answers, until an
  // agent has written in the conversation.
  const hrow = h("div", "hrow hide");
  const humanBtn = attr(h("button", "hbtn"), { type: "button", "data-testid": "widget-human" });
  hrow.append(humanBtn);
  // Satisfaction rating (docs/protocol.md, rate): shown when the conversation is resolved.
  const ratePane = attr(h("div", "rate hide"), { "data-testid": "widget-rating" });
  const rateText = h("p");
  const stars = h("div", "stars");
  const starBtns = [1, 2, 3, 4, 5].map((n) => {
    const b = attr(h("button", "star", String(n)),
      { type: "button", "data-testid": "widget-rating-" + n, "aria-pressed": "false" });
    b.addEventListener("click", () => pickRating(n));
    stars.append(b);
    return b;
  });
  const rateComment = attr(h("textarea"),
    { rows: "2", maxlength: "1000", "data-testid": "widget-rating-comment" });
  const rateBtn = attr(h("button", "btn"), { type: "button", "data-testid": "widget-rating-submit" });
  const rateThanks = attr(h("div", "thanks hide"), { "data-testid": "widget-rating-thanks" });
  ratePane.append(rateText, stars, rateComment, rateBtn, rateThanks);
  // Pre-chat department choice (welcome.departments), until the conversation exists.
  const depRow = h("div", "dep hide");
  const depLabel = h("label");
  const depText = h("span");
  const depSel = attr(h("select"), { "data-testid": "widget-department" });
  depLabel.append(depText, depSel);
  depRow.append(depLabel);
  panel.append(head, qpos, list, typing, notice, ratePane, depRow, offPane, sugg, hrow, comp);
  wrap.append(panel, launcher);

  function applyStrings() {
    title.textContent = S.title;
    panel.setAttribute("aria-label", S.title);
    launcher.setAttribute("aria-label", S.title);
    minBtn.setAttribute("aria-label", S.close);
    clip.setAttribute("aria-label", S.attach);
    clip.title = S.attach;
    ta.placeholder = S.placeholder;
    ta.setAttribute("aria-label", S.placeholder);
    sendBtn.setAttribute("aria-label", S.send);
    sendBtn.title = S.send;
    fName.placeholder = S.name;
    fEmail.placeholder = S.email;
    fText.placeholder = S.message;
    for (const [e, k] of [[fName, "name"], [fEmail, "email"], [fText, "message"]]) {
      e.setAttribute("aria-label", S[k]);
    }
    humanBtn.textContent = S.human;
    fBtn.textContent = S.leave_message;
    again.textContent = S.leave_message;
    thanks.textContent = S.leave_sent;
    rateText.textContent = S.rate_prompt;
    starBtns.forEach((b, i) => b.setAttribute("aria-label", S.rate_star.replace("%(n)s", String(i + 1))));
    rateComment.placeholder = S.rate_comment;
    rateComment.setAttribute("aria-label", S.rate_comment);
    rateBtn.textContent = S.rate_submit;
    rateThanks.textContent = S.rate_thanks;
    depText.textContent = S.department;
    depSel.setAttribute("aria-label", S.department);
    fillDepartments();
    const cfg = store.cfg || {};
    greetBub.textContent = cfg.w || "";
    greet.classList.toggle("hide", !cfg.w);
    offText.textContent = cfg.o || "";
    showStatus();
    showRouting();
  }

  function showRouting() {
    const waiting = typeof queuePos === "number" && queuePos > 0 && convStatus !== "resolved";
    qpos.classList.toggle("hide", !waiting);
    qpos.textContent = waiting ? S.queue_position.replace("%(n)s", String(queuePos)) : "";
    if (waiting) qpos.setAttribute("data-position", String(queuePos));
    else qpos.removeAttribute("data-position");
    const chatting = !!agentName && !waiting && convStatus !== "resolved";
    agentLine.classList.toggle("hide", !chatting);
    agentLine.textContent = chatting ? S.chatting_with.replace("%(name)s", agentName) : "";
  }

  function showStatus() {
    let text, cls;
    if (dead) [text, cls] = ["Chat unavailable", "off"];
    else if (!ready) [text, cls] = [attempt ? S.reconnecting : S.connecting, ""];
    else [text, cls] = agentsOnline ? [S.online, "on"] : [S.offline, "off"];
    stText.textContent = text;
    stBox.className = "st " + cls;
    const offline = ready && !agentsOnline && !dead && !botOn;
    offPane.classList.toggle("hide", !offline);
    comp.classList.toggle("hide", offline);
    ta.disabled = sendBtn.disabled = dead;
    clip.disabled = dead || !store.vid;
    depRow.classList.toggle("hide", !(ready && !dead && departments.length && !convId));
  }

  // --- department and rating ------------------------------------------------------------------
  let departments = [], rating = 0;
  function fillDepartments() {
    const keep = depSel.value;
    const opts = [attr(h("option", "", S.department_any), { value: "" })];
    for (const d of departments) {
      if (d && typeof d.id === "number") opts.push(attr(h("option", "", String(d.name || "")), { value: String(d.id) }));
    }
    depSel.replaceChildren(...opts);
    if (departments.some((d) => String(d.id) === keep)) depSel.value = keep;
  }
  function pickRating(n) {
    rating = n;
    starBtns.forEach((b, i) => b.setAttribute("aria-pressed", String(i + 1 === n)));
    rateBtn.disabled = false;
  }
  function showRating(on) {
    ratePane.classList.toggle("hide", !on);
    if (!on) return;
    rating = 0;
    starBtns.forEach((b) => b.setAttribute("aria-pressed", "false"));
    rateComment.value = "";
    for (const e of [rateText, stars, rateComment, rateBtn]) e.classList.remove("hide");
    rateThanks.classList.add("hide");
    rateBtn.disabled = true;
  }
  rateBtn.addEventListener("click", () => {
    if (!rating) return;
    const comment = rateComment.value.trim();
    if (send({ type: "rate", rating, comment: comment || undefined })) rateBtn.disabled = true;
  });
  function rated() {
    for (const e of [rateText, stars, rateComment, rateBtn]) e.classList.add("hide");
    rateThanks.classList.remove("hide");
  }

  function showNotice(text) {
    notice.textContent = text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { notice.textContent = ""; }, 6000);
  }

  // --- messages -------------------------------------------------------------------------------
  const time = (iso) => {
    const d = iso ? new Date(iso) : null;
    return d && !isNaN(d) ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  };

  function safeUrl(u) {
    if (typeof u !== "string" || !u) return "";
    try {
      const x = new URL(u, BASE + "/");
      return x.protocol === "http:" || x.protocol === "https:" ? x.href : "";
    } catch (e) {
      return "";
    }
  }

  function attachmentNode(a) {
    const url = safeUrl(a.url);
    const name = String(a.name || "file");
    if (!url) return h("span", "file", name);
    const link = attr(h("a", a.is_image ? "img" : "file"),
      { href: url, target: "_blank", rel: "noopener noreferrer" });
    if (a.is_image) {
      const img = attr(h("img"), { src: url, alt: name, loading: "lazy" });
      img.onload = () => { if (atBottom) list.scrollTop = list.scrollHeight; };
      link.append(img);
    } else {
      link.append(icon(I_CLIP), h("span", "", name));
      link.setAttribute("download", name);
    }
    return link;
  }

  function bubble(m) {
    const who = ["visitor", "agent", "bot", "system"].includes(m.sender) ? m.sender : "system";
    const row = attr(h("div", "msg " + who), { "data-testid": "widget-message", "data-sender": who });
    if (who === "agent" || who === "bot") row.append(h("div", "who", who === "bot" ? S.bot : m.agent_name || ""));
    const b = h("div", "bub");
    if (!m.text && m.attachment && m.attachment.is_image) b.classList.add("media");
    if (m.text) b.append(who === "bot" ? linked(m.text) : h("span", "txt", m.text));
    if (m.attachment && typeof m.attachment === "object") b.append(attachmentNode(m.attachment));
    row.append(b, h("div", "meta"));
    return row;
  }

  // A bot's answer links its help-centre article: http(s) and root-relative URLs become
  // links (resolved against this server); every other piece stays a text node.
  function linked(text) {
    const span = h("span", "txt");
    const re = /https?:\/\/[^\s<>"']+|(^|\s)\/(?!\/)[^\s<>"']+/g;
    let last = 0, m;
    while ((m = re.exec(text))) {
      const at = m.index + (m[1] || "").length;
      const raw = text.slice(at, m.index + m[0].length).replace(/[.,;:!?)\]]+$/, "");
      const url = safeUrl(raw);
      span.append(text.slice(last, at),
        url ? attr(h("a", "", raw), { href: url, target: "_blank", rel: "noopener noreferrer" }) : raw);
      last = re.lastIndex = at + raw.length;
    }
    span.append(text.slice(last));
    return span;
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  }
  list.addEventListener("scroll", () => { atBottom = nearBottom(); }, { passive: true });

  // Put the DOM in seq order: greeting, messages (with notes), refused, then the outbox.
  function render(scroll) {
    const stick = scroll || atBottom;
    depRow.classList.toggle("hide", !(ready && !dead && departments.length && !convId));
    // Gone once asked for, or once a person has answered (the bot is silent from then on).
    let agentHere = false;
    for (const r of msgs.values()) if (r.m.sender === "agent") { agentHere = true; break; }
    hrow.classList.toggle("hide", !(ready && botOn && convId && store.hq !== convId) ||
      agentHere || comp.classList.contains("hide"));
    const seqs = [...msgs.keys()].sort((a, b) => a - b);
    const order = [greet];
    let ni = 0, prev = null, lastMine = null;
    notes.sort((a, b) => a.after - b.after);
    for (const s of seqs) {
      while (ni < notes.length && notes[ni].after < s) { order.push(notes[ni++].el); prev = null; }
      const r = msgs.get(s), m = r.m;
      r.el.classList.toggle("cont",
        !!prev && prev.sender === m.sender && prev.agent_name === m.agent_name);
      prev = m;
      if (m.sender === "visitor") lastMine = r;
      order.push(r.el);
    }
    while (ni < notes.length) order.push(notes[ni++].el);
    for (const el of failed) order.push(el);
    for (const p of outbox) order.push(p.el);
    let node = list.firstChild;
    for (const el of order) {
      if (el === node) node = node.nextSibling;
      else list.insertBefore(el, node);
    }
    while (node) { const next = node.nextSibling; node.remove(); node = next; }
    // meta lines: time at the end of a run; "Read"/"Delivered" under our last acked
    // message; the outbox state under unacked ones
    seqs.forEach((s, i) => {
      const r = msgs.get(s), next = msgs.get(seqs[i + 1]);
      const runEnd = !next || next.el.previousSibling !== r.el ||
        next.m.sender !== r.m.sender || next.m.agent_name !== r.m.agent_name ||
        new Date(next.m.created_at) - new Date(r.m.created_at) > 120000;
      let t = runEnd || r === lastMine ? time(r.m.created_at) : "";
      if (r === lastMine) {
        const st = readSeq >= s ? S.read : delivSeq >= s ? S.delivered : "";
        if (st) t = t ? t + " · " + st : st;
      }
      const meta = r.el.lastChild;
      if (meta.textContent !== t) meta.textContent = t;
      r.el.classList.remove("pending");
    });
    for (const p of outbox) {
      p.el.classList.add("pending");
      p.el.lastChild.textContent = ready ? S.sending : S.failed;
    }
    if (stick) {
      list.scrollTop = list.scrollHeight;
      atBottom = true;
    }
    showBadge();
  }

  function resetConversation(id) {
    for (const r of msgs.values()) r.el.remove();
    for (const n of notes) n.el.remove();
    msgs.clear();
    notes.length = 0;
    lastSeq = readSeq = delivSeq = myRead = myDeliv = 0;
    convId = id;
    convStatus = null;
    queuePos = agentName = null;
    showRouting();
  }

  // Store a message from the server; returns true if it is new. A message carrying the
  // client_id of an outbox entry is that entry acknowledged: it keeps its bubble.
  function addMessage(m) {
    if (!m || typeof m.seq !== "number" || m.seq < 1) return false;
    if (m.conversation_id && convId && m.conversation_id !== convId) {
      resetConversation(m.conversation_id);
      resume();
    }
    if (m.conversation_id) convId = m.conversation_id;
    if (m.sender === "visitor") {
      if (m.read_at) readSeq = Math.max(readSeq, m.seq);
      if (m.delivered_at || m.read_at) delivSeq = Math.max(delivSeq, m.seq);
    } else {
      if (m.read_at) myRead = Math.max(myRead, m.seq);
      if (m.delivered_at) myDeliv = Math.max(myDeliv, m.seq);
    }
    const old = msgs.get(m.seq);
    const i = m.client_id ? outbox.findIndex((p) => p.cid === m.client_id) : -1;
    if (old) {
      Object.assign(old.m, m);
      if (i >= 0) { outbox[i].el.remove(); outbox.splice(i, 1); save(); }
      return false;
    }
    let el;
    if (i >= 0) {
      const p = outbox.splice(i, 1)[0];
      save();
      // Keep the bubble (no image reload) unless the server's copy differs.
      if ((p.text || "") === (m.text || "")) el = p.el;
      else p.el.remove();
      if (p.kind === "leave") leaveDone();
      if (m.sender === "visitor" && convStatus === "resolved") convStatus = "open";
    }
    el = el || bubble(m);
    el.setAttribute("data-seq", String(m.seq));
    msgs.set(m.seq, { m, el });
    while (msgs.has(lastSeq + 1)) lastSeq++;
    return true;
  }

  // Ask for everything after lastSeq when we know we are missing something.
  function resume() {
    if (!ready || (histFrom.length && Date.now() - histAt < 10000)) return;
    histFrom = [lastSeq];
    histAt = Date.now();
    send({ type: "resume", last_seq: lastSeq });
  }
  function checkGap(serverSeq) {
    let top = serverSeq || 0;
    for (const s of msgs.keys()) if (s > top) top = s;
    if (top > lastSeq) resume();
  }

  // --- receipts and unread --------------------------------------------------------------------
  const seen = () => isOpen && !document.hidden;
  function theirTop() {
    let top = 0;
    for (const [s, r] of msgs) if (r.m.sender !== "visitor" && s > top) top = s;
    return top;
  }
  function receipts() {
    const top = theirTop();
    if (!ready || !convId || !top) return;
    if (seen()) {
      if (top > myRead) {
        myRead = myDeliv = top;
        send({ type: "receipt", seq: top, status: "read" });
      }
    } else if (top > myDeliv) {
      myDeliv = top;
      send({ type: "receipt", seq: top, status: "delivered" });
    }
    showBadge();
  }
  function showBadge() {
    let n = 0;
    if (!isOpen) for (const [s, r] of msgs) if (r.m.sender !== "visitor" && s > myRead) n++;
    badge.textContent = n ? (n > 9 ? "9+" : String(n)) : "";
  }

  // --- socket ---------------------------------------------------------------------------------
  function send(frame) {
    if (ws && ws.readyState === 1) {
      ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (dead) return;
    if (ws) {
      const old = ws;
      ws = null;
      old.onclose = old.onmessage = null;
      try { old.close(); } catch (e) { /* already closed */ }
    }
    ready = false;
    histFrom = [];
    render();
    showStatus();
    let sock;
    try {
      sock = new WebSocket(WS_URL);
    } catch (e) {
      schedule();
      return;
    }
    ws = sock;
    lastFrame = Date.now();
    pingAt = 0;
    let opened = false;
    sock.onopen = () => {
      opened = true;
      lastFrame = Date.now();
      histFrom = [lastSeq];
      send({
        type: "hello",
        visitor_id: store.vid || null,
        visitor_token: store.tok || null,
        last_seq: lastSeq,
        page: { url: location.href, title: document.title, referrer: document.referrer },
        lang: navigator.language || "",
      });
    };
    sock.onmessage = (e) => {
      if (sock !== ws) return;
      lastFrame = Date.now();
      let f;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      try {
        if (f && typeof f.type === "string") onFrame(f);
      } catch (err) {
        if (window.console) console.error("helpdesk widget:", err);
      }
    };
    sock.onclose = (e) => {
      if (sock !== ws) return;
      ws = null;
      ready = false;
      stopAgentTyping();
      if (e.code === 4004) fatal();
      else if (e.code === 4403) fatal(S.blocked);
      else if (opened) schedule();
      // Refused handshake (HTTP 403: origin not allowed) or server down? If the server
      // answers HTTP, it was a refusal: retry only at the longest backoff.
      else fetch(BASE + "/healthz", { mode: "no-cors", cache: "no-store" })
        .then(() => schedule(true), () => schedule());
    };
  }

  function schedule(longest) {
    clearTimeout(retryTimer);
    if (dead) return;
    const d = longest ? 15000 : Math.min(15000, 500 * 2 ** Math.min(attempt, 6));
    attempt++;
    render();
    showStatus();
    retryTimer = setTimeout(connect, d / 2 + Math.random() * (d / 2));
  }

  function fatal(text) {
    dead = true;
    clearTimeout(retryTimer);
    if (ws) { ws.onclose = null; try { ws.close(); } catch (e) { /* ignore */ } ws = null; }
    ready = false;
    showStatus();
    showNotice(text || "This chat is not available (invalid widget key).");
  }

  // Business hours: the server says when they next open or close (hours_change_at); ping
  // then, and the pong brings the new agents_online.
  let hoursAt = 0;
  function hoursTimer(iso) {
    clearTimeout(hoursAt);
    const at = iso ? Date.parse(iso) : NaN;
    if (isNaN(at)) return;
    const wait = Math.max(0, at - Date.now()) + 1000 + Math.random() * 4000;
    if (wait < 2 ** 31 - 1) hoursAt = setTimeout(() => { if (ready) ping(); }, wait);
  }

  // Liveness (docs/protocol.md): ping every 20 s; no frame at all within 10 s of a ping
  // means the socket is dead. A handshake stuck for 45 s is dead too.
  const ping = () => { pingAt = Date.now(); send({ type: "ping" }); };
  function watchdog() {
    if (!ws || dead) return;
    const now = Date.now();
    if (ws.readyState === 1 ? pingAt > lastFrame && now - pingAt > 10000 : now - lastFrame > 45000) {
      connect();
    } else if (ws.readyState === 1 && now - Math.max(pingAt, lastFrame) >= 20000) ping();
  }
  setInterval(watchdog, 2500);

  // After a network change or a long sleep the socket may be silently dead: test it now.
  function probe() {
    if (dead) return;
    if (!ws) { attempt = 0; connect(); } else if (ws.readyState === 1 && pingAt <= lastFrame) ping();
  }
  window.addEventListener("online", probe);
  window.addEventListener("offline", () => { if (!ready) showStatus(); });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    probe();
    receipts();
  });
  const pageView = () =>
    send({ type: "page", page: { url: location.href, title: document.title, referrer: document.referrer } });
  window.addEventListener("popstate", pageView);
  window.addEventListener("hashchange", pageView);

  function onFrame(f) {
    switch (f.type) {
      case "welcome": {
        ready = true;
        attempt = 0;
        store.vid = f.visitor_id;
        store.tok = f.visitor_token;
        S = Object.assign({}, EN, f.strings || {});
        agentsOnline = !!f.agents_online;
        botOn = !!f.bot;
        store.cfg = { s: f.strings || {}, w: f.welcome_text || "", o: f.offline_text || "", a: agentsOnline, b: botOn };
        save();
        if (f.limits) limits = Object.assign(limits, f.limits);
        ta.maxLength = fText.maxLength = limits.max_text || 5000;
        if (Array.isArray(limits.upload_types) && limits.upload_types.length) {
          fileIn.accept = limits.upload_types.join(",");
        }
        const c = f.conversation;
        if (!c) {
          histFrom = []; // no history frame follows
          if (convId || msgs.size) resetConversation(null);
        } else {
          if (convId && c.id !== convId) {
            resetConversation(c.id);
            histFrom.push(0);
            send({ type: "resume", last_seq: 0 });
          }
          convId = c.id;
          if (c.status === "resolved" && convStatus !== "resolved") addNote(S.resolved, c.last_seq);
          convStatus = c.status;
        }
        queuePos = c && typeof c.queue_position === "number" ? c.queue_position : null;
        agentName = c && typeof c.agent_name === "string" && c.agent_name ? c.agent_name : null;
        showRating(!!c && c.status === "resolved" && !c.rated);
        departments = Array.isArray(f.departments) ? f.departments : [];
        hoursTimer(f.hours_change_at);
        applyStrings();
        for (const p of outbox) sendItem(p);
        render();
        break;
      }
      case "history": {
        const from = histFrom.length ? histFrom.shift() : lastSeq;
        if (f.conversation_id && convId && f.conversation_id !== convId) {
          resetConversation(f.conversation_id);
          histFrom = [];
        } else if (f.conversation_id) convId = f.conversation_id;
        let top = 0;
        for (const m of f.messages || []) {
          addMessage(m);
          if (m.seq > top) top = m.seq;
        }
        // The batch holds every seq in (from, top]: the range is complete.
        if (from <= lastSeq && top > lastSeq) lastSeq = top;
        while (msgs.has(lastSeq + 1)) lastSeq++;
        if (f.has_more) resume();
        else checkGap();
        render();
        receipts();
        break;
      }
      case "message": {
        const m = f.message || {};
        if (addMessage(m) && m.sender !== "visitor") stopAgentTyping();
        checkGap();
        render();
        receipts();
        break;
      }
      case "ack": {
        const p = outbox.find((o) => o.cid === f.client_id);
        if (p && typeof f.seq === "number") {
          addMessage({
            seq: f.seq, conversation_id: f.conversation_id, sender: "visitor", client_id: p.cid,
            text: p.text || "", attachment: p.att || null, created_at: f.created_at,
          });
          checkGap();
          render();
        }
        break;
      }
      case "pong":
        if (typeof f.agents_online === "boolean" && f.agents_online !== agentsOnline) {
          agentsOnline = f.agents_online;
          if (store.cfg) { store.cfg.a = agentsOnline; save(); }
          if (agentsOnline) resetLeaveForm();
          showStatus();
        }
        if ("hours_change_at" in f) hoursTimer(f.hours_change_at);
        if (f.conversation_id && !convId) convId = f.conversation_id;
        if (typeof f.last_seq === "number" && f.last_seq > lastSeq) checkGap(f.last_seq);
        break;
      case "typing":
        if (f.sender === "agent") {
          if (f.active) {
            typingText.textContent = (f.agent_name || "Agent") + " " + S.typing;
            typing.classList.add("show");
            clearTimeout(agentTypingTimer);
            agentTypingTimer = setTimeout(stopAgentTyping, 8000);
          } else stopAgentTyping();
        }
        break;
      case "receipt":
        if (typeof f.seq !== "number") break;
        if (f.reader === "agent") {
          delivSeq = Math.max(delivSeq, f.seq);
          if (f.status === "read") readSeq = Math.max(readSeq, f.seq);
          render();
        } else if (f.reader === "visitor") {
          // our own receipt, echoed: another tab may have read them
          myDeliv = Math.max(myDeliv, f.seq);
          if (f.status === "read") myRead = Math.max(myRead, f.seq);
          showBadge();
        }
        break;
      case "availability":
        agentsOnline = !!f.agents_online;
        if (store.cfg) { store.cfg.a = agentsOnline; save(); }
        if (agentsOnline) resetLeaveForm();
        showStatus();
        break;
      case "conversation": {
        const c = f.conversation || {};
        if (c.id) convId = convId || c.id;
        if (c.status === "resolved" && convStatus !== "resolved") {
          addNote(S.resolved, Math.max(lastSeq, ...msgs.keys()));
          showRating(true);
          render();
        } else if (c.status && c.status !== "resolved") showRating(false);
        convStatus = c.status || convStatus;
        if ("agent_name" in c) agentName = typeof c.agent_name === "string" && c.agent_name ? c.agent_name : null;
        if (agentName) queuePos = null;
        showStatus();
        showRouting();
        break;
      }
      case "queue":
        if (!f.conversation_id || !convId || f.conversation_id === convId) {
          if (f.conversation_id) convId = convId || f.conversation_id;
          queuePos = typeof f.position === "number" ? f.position : null;
          showRouting();
        }
        break;
      case "rated":
        rated();
        break;
      case "error":
        onError(f);
        break;
    }
  }

  function onError(f) {
    if (f.code === "invalid_key") { fatal(); return; }
    if (f.code === "blocked") { fatal(S.blocked); return; }
    const i = f.ref ? outbox.findIndex((o) => o.cid === f.ref) : -1;
    if (i >= 0) {
      const p = outbox[i];
      if (f.code === "rate_limited" || f.code === "hello_required") {
        setTimeout(() => { if (outbox.includes(p)) sendItem(p); }, 1500);
        return;
      }
      // Refused for good (too long, bad attachment...): keep it visible, stop resending.
      outbox.splice(i, 1);
      save();
      if (p.kind === "leave") {
        p.el.remove();
        fErr.textContent = f.message || f.code;
        fBtn.disabled = false;
      } else {
        p.el.classList.remove("pending");
        p.el.classList.add("fail");
        p.el.lastChild.textContent = f.message || f.code;
        failed.push(p.el);
      }
      render();
      return;
    }
    if (f.code === "already_hello" || f.code === "no_conversation") return;
    showNotice(f.message || f.code || "Error");
  }

  function addNote(text, after) {
    notes.push({ after: after || 0, el: attr(h("div", "note", text), { "data-testid": "widget-note" }) });
  }

  function stopAgentTyping() {
    clearTimeout(agentTypingTimer);
    typing.classList.remove("show");
  }

  // --- sending --------------------------------------------------------------------------------
  function uid() {
    try { return crypto.randomUUID(); } catch (e) { /* not a secure context */ }
    const a = new Uint8Array(16);
    try { crypto.getRandomValues(a); } catch (e) { a.forEach((_, i) => { a[i] = Math.random() * 256; }); }
    return Array.from(a, (b) => (b | 256).toString(16).slice(1)).join("");
  }

  function sendItem(p) {
    if (!ready) return;
    if (p.kind === "leave") {
      send({ type: "leave_message", client_id: p.cid, name: p.name, email: p.email, text: p.text, department: p.dep });
    } else {
      send({ type: "message", client_id: p.cid, text: p.text || "", attachment_id: p.att ? p.att.id : undefined, department: p.dep });
    }
  }

  function enqueue(p) {
    p.cid = p.cid || uid();
    // The department goes with what opens the conversation (ignored by the server after).
    if (!convId && departments.length && depSel.value) p.dep = parseInt(depSel.value, 10);
    p.el = bubble({ sender: "visitor", text: p.text, attachment: p.att });
    outbox.push(p);
    save();
    render(true);
    sendItem(p);
  }

  function sendTyping(active) {
    typingOn = active;
    typingAt = Date.now();
    if (ready && convId) send({ type: "typing", active });
  }
  function stopTyping() {
    clearTimeout(typingIdle);
    if (typingOn) sendTyping(false);
  }

  function autosize() {
    ta.style.height = "auto";
    ta.style.height = Math.min(ta.scrollHeight + 2, 132) + "px";
  }

  comp.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = ta.value.trim();
    if (!text || dead) return;
    if (text.length > limits.max_text) return showNotice("Message too long");
    stopTyping();
    ta.value = "";
    autosize();
    suggest("");
    enqueue({ kind: "message", text });
    ta.focus();
  });
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      comp.requestSubmit ? comp.requestSubmit() : comp.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });
  let suggTimer = 0, suggQ = "", suggCtl = null;
  function suggest(q) {
    if (q === suggQ) return;
    suggQ = q;
    if (suggCtl) suggCtl.abort();
    suggCtl = null;
    // Three letters, or two Chinese characters, before asking.
    if (q.length < (/[\u3400-\u9fff]/.test(q) ? 2 : 3) || q.length > 200) return sugg.replaceChildren();
    const ctl = suggCtl = new AbortController();
    fetch(BASE + "/help/api/" + encodeURIComponent(KEY) + "/suggest?q=" + encodeURIComponent(q),
      { signal: ctl.signal, credentials: "omit" })
      .then((r) => (r.ok ? r.json() : { results: [] }))
      .then((j) => {
        if (ctl !== suggCtl) return;
        const links = [];
        for (const a of (j && j.results) || []) {
          const url = safeUrl(a.url);
          if (url && a.title) {
            links.push(attr(h("a", "", String(a.title)),
              { href: url, target: "_blank", rel: "noopener noreferrer", "data-testid": "widget-suggestion" }));
          }
        }
        sugg.replaceChildren(...(links.length ? [h("p", "", S.articles || EN.articles), ...links] : []));
      }, () => { /* offline or aborted: keep quiet */ });
  }
  const onType = (e) => {
    const box = e.target; // read now: a shadow-DOM event's target is cleared after dispatch
    clearTimeout(suggTimer);
    suggTimer = setTimeout(() => suggest(box.value.trim()), 300);
  };
  ta.addEventListener("input", onType);
  fText.addEventListener("input", onType);
  ta.addEventListener("input", () => {
    autosize();
    if (!ta.value.trim()) return stopTyping();
    if (!typingOn || Date.now() - typingAt >= 3000) sendTyping(true);
    clearTimeout(typingIdle);
    typingIdle = setTimeout(stopTyping, 3000);
  });

  // Files: upload over HTTP with the visitor's token, then send a message that carries it.
  clip.addEventListener("click", () => fileIn.click());
  fileIn.addEventListener("change", () => {
    const file = fileIn.files && fileIn.files[0];
    fileIn.value = "";
    if (file) upload(file);
  });
  const dropped = (e, files) => {
    if (!files || !files.length || clip.disabled || comp.classList.contains("hide")) return;
    e.preventDefault();
    upload(files[0]);
  };
  ta.addEventListener("paste", (e) => dropped(e, e.clipboardData && e.clipboardData.files));
  panel.addEventListener("dragover", (e) => e.preventDefault());
  panel.addEventListener("drop", (e) => dropped(e, e.dataTransfer && e.dataTransfer.files));
  async function upload(file) {
    const max = limits.max_upload_bytes || Infinity;
    if (file.size > max) {
      return showNotice(S.upload_failed + ": " + file.name + " > " + Math.round(max / 1024) + " KB");
    }
    if (!store.vid) return showNotice(S.upload_failed);
    const body = new FormData();
    body.append("key", KEY);
    body.append("visitor_id", store.vid);
    body.append("visitor_token", store.tok);
    body.append("file", file);
    clip.disabled = true;
    showNotice(S.sending + " " + file.name);
    try {
      const r = await fetch(BASE + "/widget/uploads/", { method: "POST", body });
      const j = await r.json().catch(() => ({}));
      if (!r.ok || !j.attachment) throw new Error((j.error && j.error.message) || "HTTP " + r.status);
      notice.textContent = "";
      enqueue({ kind: "message", text: "", att: j.attachment });
    } catch (err) {
      showNotice(S.upload_failed + ": " + err.message);
    } finally {
      clip.disabled = dead || !store.vid;
    }
  }

  // Offline form: leave_message, acked like any message.
  offForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = fName.value.trim(), email = fEmail.value.trim(), text = fText.value.trim();
    fErr.textContent = "";
    const bad = !name ? fName : !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) ? fEmail : !text ? fText : null;
    for (const f of [fName, fEmail, fText]) f.toggleAttribute("aria-invalid", f === bad);
    if (bad) return bad.focus();
    store.nm = name;
    store.em = email;
    fBtn.disabled = true;
    suggest("");
    enqueue({ kind: "leave", name, email, text });
  });
  function leaveDone() {
    fText.value = "";
    fBtn.disabled = false;
    offForm.classList.add("hide");
    thanks.classList.remove("hide");
    again.classList.remove("hide");
  }
  function resetLeaveForm() {
    offForm.classList.remove("hide");
    thanks.classList.add("hide");
    again.classList.add("hide");
    fErr.textContent = "";
  }
  again.addEventListener("click", resetLeaveForm);
  humanBtn.addEventListener("click", () => {
    if (send({ type: "handoff" })) { store.hq = convId; save(); render(true); }
  });
  fName.value = store.nm || "";
  fEmail.value = store.em || "";

  // --- open / close ---------------------------------------------------------------------------
  function setOpen(open) {
    isOpen = open;
    panel.classList.toggle("open", open);
    launcher.classList.toggle("open", open);
    launcher.setAttribute("aria-expanded", String(open));
    if (open) {
      render(true);
      receipts();
      if (window.innerWidth >= 480) setTimeout(() => {
        // Unless the visitor already clicked into a field of the panel.
        const active = root.activeElement;
        if (!active || !panel.contains(active)) (comp.classList.contains("hide") ? fName : ta).focus();
      }, 50);
    }
    showBadge();
  }
  launcher.addEventListener("click", () => setOpen(!isOpen));
  minBtn.addEventListener("click", () => { setOpen(false); launcher.focus(); });
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { setOpen(false); launcher.focus(); }
  });

  // --- start ----------------------------------------------------------------------------------
  for (const o of store.out || []) {
    if (o && typeof o.cid === "string") {
      outbox.push(Object.assign(o, { el: bubble({ sender: "visitor", text: o.text, attachment: o.att }) }));
    }
  }
  applyStrings();
  render();
  const mount = () => { document.body.append(host); connect(); };
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
