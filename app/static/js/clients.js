/* The client base in the browser: the log-a-contact form shows the fields its outcome
   needs, and the deal board moves cards between stages by drag and drop (losing a deal
   asks for a reason first). Every change is posted to the server with the page's CSRF
   token; a refused move puts the card back and says why. */
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  // --- log a contact ------------------------------------------------------------------------
  function logForm(form) {
    const kind = form.querySelector("[data-log-kind]");
    function update() {
      const outcome = (form.querySelector("[data-log-outcome]:checked") || {}).value || "";
      const k = kind ? kind.value : "";
      const refusal = k !== "complaint" && (outcome === "refuse" || k === "refusal");
      const shown = {
        step: outcome === "advance" || outcome === "postpone",
        refusal: refusal,
        complaint: k === "complaint",
        reasons: refusal || k === "complaint",
      };
      form.querySelectorAll("[data-log-part]").forEach((el) => {
        // A field with an error stays in sight.
        el.hidden = !(shown[el.dataset.logPart] || el.querySelector(".is-invalid"));
      });
    }
    form.addEventListener("change", update);
    update();
  }

  // --- the board ----------------------------------------------------------------------------
  function money(minor, currency, lang) {
    try {
      const digits = new Intl.NumberFormat("en", { style: "currency", currency: currency })
        .resolvedOptions().maximumFractionDigits;
      const whole = new Intl.NumberFormat(lang || undefined, {
        style: "currency", currency: currency, minimumFractionDigits: 0, maximumFractionDigits: 0,
      });
      return whole.format(Math.round(minor / Math.pow(10, digits)));
    } catch (e) {
      return Math.round(minor / 100) + " " + currency;
    }
  }

  function board(root) {
    const error = document.getElementById("deal-board-error");
    const modalEl = document.getElementById("lost-modal");
    const lostForm = document.getElementById("lost-form");
    let dragged = null;
    let pendingLost = null;

    function recount() {
      root.querySelectorAll(".deal-column").forEach((col) => {
        const cards = col.querySelectorAll(".deal-card");
        const count = col.querySelector("[data-count]");
        if (count) count.textContent = String(cards.length);
        const sums = {};
        cards.forEach((c) => {
          const cur = c.dataset.currency;
          sums[cur] = (sums[cur] || 0) + (parseInt(c.dataset.amount, 10) || 0);
        });
        const total = col.querySelector("[data-total]");
        if (total) {
          const parts = Object.keys(sums).sort().map((cur) => money(sums[cur], cur, root.dataset.lang));
          total.textContent = parts.length ? parts.join(" · ") : "\u00a0";
        }
        col.querySelector(".deal-cards").classList.toggle("is-empty", cards.length === 0);
      });
    }

    function say(message) {
      if (!error) return;
      error.textContent = message;
      error.classList.toggle("d-none", !message);
    }

    async function move(card, col, extra) {
      const body = new URLSearchParams(Object.assign({ stage_id: col.dataset.stageId }, extra || {}));
      const home = card.parentElement;
      const after = card.nextSibling;
      col.querySelector(".deal-cards").prepend(card);
      card.classList.add("is-saving");
      recount();
      try {
        const response = await fetch(card.dataset.moveUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": csrf, Accept: "application/json" },
          body: body,
        });
        const data = await response.json().catch(() => null);
        if (!response.ok) {
          const err = data && data.error;
          const fields = err && err.fields ? Object.values(err.fields).flat() : [];
          const parts = err ? [err.message, ...fields.filter((f) => f !== err.message)] : [];
          const text = parts.filter(Boolean).join(" ") || root.dataset.msgFailed;
          throw new Error(text || root.dataset.msgFailed);
        }
        card.dataset.status = data.status;
        card.classList.toggle("is-closed", data.status !== "open");
        const step = card.querySelector(".deal-card-step");
        if (step && data.status !== "open") step.remove();
        say("");
        card.dataset.saved = "1";
        return { ok: true };
      } catch (e) {
        home.insertBefore(card, after);
        recount();
        return { ok: false, message: e.message || root.dataset.msgFailed };
      } finally {
        card.classList.remove("is-saving");
      }
    }

    root.addEventListener("dragstart", (e) => {
      const card = e.target.closest && e.target.closest(".deal-card");
      if (!card) return;
      dragged = card;
      card.classList.add("dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", card.dataset.dealId);
    });
    root.addEventListener("dragend", () => {
      if (dragged) dragged.classList.remove("dragging");
      root.querySelectorAll(".drop-target").forEach((c) => c.classList.remove("drop-target"));
      dragged = null;
    });
    root.querySelectorAll(".deal-column").forEach((col) => {
      col.addEventListener("dragover", (e) => {
        if (!dragged) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = "move";
        col.classList.add("drop-target");
      });
      col.addEventListener("dragleave", (e) => {
        if (!col.contains(e.relatedTarget)) col.classList.remove("drop-target");
      });
      col.addEventListener("drop", async (e) => {
        e.preventDefault();
        col.classList.remove("drop-target");
        const card = dragged;
        dragged = null;
        if (!card) return;
        card.classList.remove("dragging");
        if (card.closest(".deal-column") === col) return;
        if (col.dataset.stageKind === "lost" && modalEl && window.bootstrap) {
          pendingLost = { card: card, col: col };
          lostForm.reset();
          lostForm.elements.reason_id.classList.remove("is-invalid");
          const problem = modalEl.querySelector("[data-lost-error]");
          problem.classList.add("d-none");
          bootstrap.Modal.getOrCreateInstance(modalEl).show();
          return;
        }
        const result = await move(card, col);
        if (!result.ok) say(result.message);
      });
    });

    if (lostForm) {
      lostForm.addEventListener("submit", async (e) => {
        e.preventDefault();
        if (!pendingLost) return;
        const problem = modalEl.querySelector("[data-lost-error]");
        const select = lostForm.elements.reason_id;
        const reason = select.value;
        select.classList.toggle("is-invalid", !reason);
        if (!reason) {
          problem.textContent = select.dataset.required;
          problem.classList.remove("d-none");
          select.focus();
          return;
        }
        const result = await move(pendingLost.card, pendingLost.col, {
          reason_id: reason, note: lostForm.elements.note.value,
        });
        if (result.ok) {
          pendingLost = null;
          bootstrap.Modal.getOrCreateInstance(modalEl).hide();
        } else {
          problem.textContent = result.message;
          problem.classList.remove("d-none");
        }
      });
      modalEl.addEventListener("hidden.bs.modal", () => { pendingLost = null; });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".log-form").forEach(logForm);
    const root = document.getElementById("deal-board");
    if (root) board(root);
  });
})();
