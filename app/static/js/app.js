/* The shell: CSRF for htmx, the live channel, the notification bell and toasts, the
   per-person feed of changes (applied once each, in order, re-synced after a gap or a
   reconnect) and presence dots. */
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content;

  // Buttons that destroy ask first: <button data-confirm="Are you sure?">.
  document.addEventListener("submit", (e) => {
    const question = e.submitter && e.submitter.dataset.confirm;
    if (question && !window.confirm(question)) e.preventDefault();
  });
  document.addEventListener("htmx:configRequest", (e) => {
    if (csrf) e.detail.headers["X-CSRFToken"] = csrf;
  });
  document.addEventListener("DOMContentLoaded", () => {
    if (window.htmx) {
      // Validation errors (422) and refusals come with a body worth showing.
      htmx.config.responseHandling = [
        { code: "204", swap: false },
        { code: "[23]..", swap: true },
        { code: "4..", swap: true, error: true },
        { code: "...", swap: false, error: true },
      ];
    }
    connect();
  });

  function setUnread(n) {
    const badge = document.getElementById("bell-count");
    if (!badge) return;
    badge.textContent = n;
    badge.classList.toggle("d-none", !n);
  }

  function toast(title, body, url, options) {
    const box = document.getElementById("toasts");
    if (!box || !window.bootstrap) return;
    const el = document.createElement("div");
    el.className = "toast";
    el.setAttribute("role", "status");
    el.dataset.testid = "toast";
    const head = document.createElement("div");
    head.className = "toast-header";
    const strong = document.createElement("strong");
    strong.className = "me-auto";
    strong.textContent = title;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close";
    close.dataset.bsDismiss = "toast";
    head.append(strong, close);
    el.append(head);
    if (body || url) {
      const b = document.createElement("div");
      b.className = "toast-body";
      b.textContent = body || "";
      if (url && url.startsWith("/")) {
        const a = document.createElement("a");
        a.href = url;
        a.className = "stretched-link";
        b.append(a);
      }
      el.append(b);
    }
    if (options && options.kind) el.dataset.kind = options.kind;
    box.append(el);
    new bootstrap.Toast(el, { delay: (options && options.delay) || 6000 }).show();
    el.addEventListener("hidden.bs.toast", () => el.remove());
  }

  // The numbered feed of changes for this person. Each event is applied once, in order:
  // the next number is applied at once, an older one is ignored, and after a gap (or on
  // connecting) the events after the last one applied are asked for and applied in order.
  function feedClient(socket) {
    let last = parseInt(document.body.dataset.feedSeq || "0", 10) || 0;
    let syncing = false;
    let again = false;
    let idle = 0; // answers that said "there is more" but brought nothing

    function apply(ev) {
      last = ev.seq;
      document.body.dataset.feedSeq = String(last);
      const payload = ev.payload || {};
      if (payload.counts && typeof payload.counts.mail_unread === "number") {
        setMailUnread(payload.counts.mail_unread);
      }
      document.dispatchEvent(new CustomEvent("crm:feed", {
        detail: { seq: ev.seq, kind: ev.kind, payload: payload },
      }));
    }

    function receive(ev) {
      if (!ev || typeof ev.seq !== "number" || ev.seq <= last) return;
      if (ev.seq === last + 1) apply(ev);
      else sync(); // a gap: something was missed
    }

    function sync() {
      if (syncing) { again = true; return; }
      syncing = true;
      again = false;
      socket.timeout(15000).emit("feed.sync", { after: last }, (err, answer) => {
        syncing = false;
        if (err || !answer || answer.error) {
          setTimeout(sync, 2000); // the server did not answer: try again shortly
          return;
        }
        if (answer.reset) { window.location.reload(); return; }
        for (const ev of answer.events || []) {
          if (ev.seq === last + 1) apply(ev);
        }
        const behind = typeof answer.last === "number" && answer.last > last;
        if (behind && !(answer.events || []).length) {
          // Committed meanwhile, or no longer kept: look once more, then start afresh.
          idle += 1;
          if (idle > 3) { window.location.reload(); return; }
          setTimeout(sync, 500);
          return;
        }
        idle = 0;
        if (answer.more || again || behind) sync();
      });
    }

    return { receive: receive, sync: sync };
  }

  function setMailUnread(n) {
    document.querySelectorAll("[data-mail-unread]").forEach((el) => {
      el.textContent = n;
      el.classList.toggle("d-none", !n);
    });
  }

  // Presence: every 30 s, when the tab is shown or hidden, and when new names appear on
  // the page, tell the server whether this person is here and ask about the names shown.
  function presenceClient(socket) {
    const CLASSES = { active: "online", away: "away", offline: "offline" };
    let known = new Set();
    let timer = null;

    function ids() {
      const out = new Set();
      document.querySelectorAll("[data-presence-user]").forEach((el) => {
        const id = parseInt(el.dataset.presenceUser, 10);
        if (id) out.add(id);
      });
      return Array.from(out).slice(0, 500);
    }

    function show(states) {
      document.querySelectorAll("[data-presence-user]").forEach((el) => {
        const state = states[el.dataset.presenceUser];
        if (!state) return;
        el.classList.remove("online", "away", "offline");
        el.classList.add(CLASSES[state] || "offline");
        el.dataset.presence = CLASSES[state] || "offline";
        const text = document.body.dataset[`presence${state[0].toUpperCase()}${state.slice(1)}`];
        if (text) { el.title = text; el.setAttribute("aria-label", text); }
      });
    }

    function ping() {
      if (!socket.connected) return;
      const list = ids();
      known = new Set(list);
      socket.emit("presence.ping", { state: document.hidden ? "away" : "active", ids: list },
        (answer) => { if (answer && !answer.error) show(answer); });
    }

    setInterval(ping, 30000);
    document.addEventListener("visibilitychange", ping);
    document.addEventListener("htmx:afterSettle", () => {
      if (ids().some((id) => !known.has(id))) {
        clearTimeout(timer);
        timer = setTimeout(ping, 300);
      }
    });
    return { ping: ping };
  }

  function connect() {
    if (!document.body.dataset.userId || !window.io) return;
    const socket = io({ transports: ["websocket", "polling"] });
    window.crmSocket = socket; // one connection per page, shared by every module's script
    window.crmToast = toast;
    const feed = feedClient(socket);
    const presence = presenceClient(socket);
    socket.on("connect", () => {
      document.body.dataset.live = "1";
      feed.sync();
      presence.ping();
    });
    socket.on("disconnect", () => document.body.dataset.live = "0");
    socket.on("feed", feed.receive);
    // Back from a network outage: reconnect now rather than at the next backoff step, or,
    // if the socket survived it, ask for what was missed.
    window.addEventListener("online", () => {
      if (socket.connected) feed.sync();
      else socket.disconnect().connect();
    });
    socket.on("notification", (n) => {
      setUnread(n.unread);
      toast(n.title, n.body, n.url);
      // Pages that show live data listen for this instead of opening their own socket.
      document.dispatchEvent(new CustomEvent("crm:notification", { detail: n }));
    });
    socket.on("notifications_read", (n) => setUnread(n.unread));
    // This tab may itself be signing out: never cut its own navigation short.
    let leaving = false;
    window.addEventListener("beforeunload", () => { leaving = true; });
    socket.on("session_ended", () => {
      socket.disconnect();
      if (!leaving) window.location.assign("/login");
    });
  }
})();
