/* The shell: CSRF for htmx, the live channel, the notification bell and toasts. */
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

  function toast(title, body, url) {
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
    box.append(el);
    new bootstrap.Toast(el, { delay: 6000 }).show();
    el.addEventListener("hidden.bs.toast", () => el.remove());
  }

  function connect() {
    if (!document.body.dataset.userId || !window.io) return;
    const socket = io({ transports: ["websocket", "polling"] });
    window.crmSocket = socket; // one connection per page, shared by every module's script
    socket.on("connect", () => document.body.dataset.live = "1");
    socket.on("disconnect", () => document.body.dataset.live = "0");
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
