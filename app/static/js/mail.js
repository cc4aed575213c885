/* Mail in the browser: the recipient picker, the compose form, bulk selection, and live
   updates of the open folder and conversation from the person's feed (crm:feed events
   dispatched by app.js), with a toast (and a desktop notice) for new mail. */
(function () {
  "use strict";
  const script = document.currentScript;
  const text = (key, fallback) => (script && script.dataset[key]) || fallback;

  // --- the recipient picker -------------------------------------------------------------

  function pickerOf(el) { return el.closest("[data-picker]"); }
  function resultsOf(picker) { return picker.querySelector("[data-picker-results]"); }
  function inputOf(picker) { return picker.querySelector(".picker-input"); }
  function options(picker) { return Array.from(picker.querySelectorAll(".picker-option")); }

  function changed(picker) {
    // The compose form autosaves on this; list forms ignore it.
    picker.dispatchEvent(new CustomEvent("crm:picked", { bubbles: true }));
  }

  function closeResults(picker) {
    const results = resultsOf(picker);
    results.replaceChildren();
    inputOf(picker).setAttribute("aria-expanded", "false");
  }

  function addChip(picker, token, label) {
    const chips = picker.querySelector("[data-picker-chips]");
    const exists = Array.from(chips.querySelectorAll(".chip"))
      .some((c) => c.dataset.token === token);
    if (!exists) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.token = token;
      const name = document.createElement("span");
      name.className = "chip-label";
      name.textContent = label;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn-close";
      remove.dataset.chipRemove = "";
      remove.setAttribute("aria-label", (picker.dataset.removeLabel || "%s").replace("%s", label));
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = picker.dataset.name;
      input.value = token;
      chip.append(name, remove, input);
      chips.append(chip);
    }
    const input = inputOf(picker);
    input.value = "";
    closeResults(picker);
    input.focus();
    changed(picker);
  }

  function highlight(picker, index) {
    const opts = options(picker);
    opts.forEach((o, i) => {
      o.classList.toggle("is-active", i === index);
      o.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    if (opts[index]) opts[index].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("mousedown", (e) => {
    // Keep the focus in the input while a suggestion is clicked.
    if (e.target.closest(".picker-option")) e.preventDefault();
  });

  document.addEventListener("click", (e) => {
    const option = e.target.closest(".picker-option");
    if (option) {
      addChip(pickerOf(option), option.dataset.token, option.dataset.label);
      return;
    }
    const remove = e.target.closest("[data-chip-remove]");
    if (remove) {
      const picker = pickerOf(remove);
      remove.closest(".chip").remove();
      inputOf(picker).focus();
      changed(picker);
      return;
    }
    const box = e.target.closest("[data-picker-box]");
    if (box && !e.target.closest(".chip")) inputOf(pickerOf(box)).focus();
  });

  document.addEventListener("keydown", (e) => {
    const input = e.target.closest && e.target.closest(".picker-input");
    if (!input) return;
    const picker = pickerOf(input);
    const opts = options(picker);
    const current = opts.findIndex((o) => o.classList.contains("is-active"));
    if (e.key === "ArrowDown" && opts.length) {
      e.preventDefault();
      highlight(picker, (current + 1) % opts.length);
    } else if (e.key === "ArrowUp" && opts.length) {
      e.preventDefault();
      highlight(picker, current <= 0 ? opts.length - 1 : current - 1);
    } else if (e.key === "Enter") {
      e.preventDefault(); // never submit the form from the picker
      const chosen = opts[current >= 0 ? current : 0];
      if (chosen) addChip(picker, chosen.dataset.token, chosen.dataset.label);
    } else if (e.key === "Escape") {
      closeResults(picker);
    } else if (e.key === "Backspace" && !input.value) {
      const chips = picker.querySelectorAll(".chip");
      if (chips.length) {
        chips[chips.length - 1].remove();
        changed(picker);
      }
    }
  });

  document.addEventListener("focusout", (e) => {
    const picker = e.target.closest && e.target.closest("[data-picker]");
    if (!picker) return;
    setTimeout(() => { if (!picker.contains(document.activeElement)) closeResults(picker); }, 150);
  });

  document.addEventListener("htmx:afterSwap", (e) => {
    const target = e.detail.target;
    if (target && target.matches && target.matches("[data-picker-results]")) {
      const picker = pickerOf(target);
      const input = inputOf(picker);
      if (document.activeElement !== input) { target.replaceChildren(); return; }
      input.setAttribute("aria-expanded", target.children.length ? "true" : "false");
      if (options(picker).length) highlight(picker, 0);
    }
    if (target && target.id === "preview") {
      target.hidden = false;
      previewButton(true);
    }
    if (target && target.id === "mail-list") restoreSelection();
  });

  // --- compose ---------------------------------------------------------------------------

  function showForKind(form) {
    const select = form.querySelector("[data-kind-select]");
    if (!select) return;
    form.querySelectorAll("[data-show-for-kind]").forEach((el) => {
      el.hidden = el.dataset.showForKind !== select.value;
    });
  }

  document.addEventListener("change", (e) => {
    if (e.target.matches("[data-kind-select]")) showForKind(e.target.form);
    if (e.target.matches("[data-select-all]")) {
      const form = e.target.form;
      form.querySelectorAll('input[name="ids"]').forEach((box) => { box.checked = e.target.checked; });
    }
    if (e.target.matches('#bulk-form input[name="ids"], [data-select-all]')) selectionChanged();
  });

  document.addEventListener("input", (e) => {
    const form = e.target.form;
    if (form && form.hasAttribute("data-track-dirty")) form.dataset.dirty = "1";
  });

  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form.hasAttribute("data-compose") && !e.defaultPrevented) {
      form.dataset.sending = "1"; // no autosave from now on, and one send per click
      setTimeout(() => form.querySelectorAll("button[name=action]").forEach((b) => { b.disabled = true; }), 0);
    }
  });

  // An autosave must not race the send it would duplicate.
  document.addEventListener("htmx:confirm", (e) => {
    const form = document.getElementById("compose-form");
    if (form && form.dataset.sending && (e.target === form || e.target.closest("#compose-files"))) {
      e.preventDefault();
    }
    // The preview button hides the preview when it is showing.
    if (e.target.matches && e.target.matches("[data-preview-toggle]")) {
      const preview = document.getElementById("preview");
      if (preview && !preview.hidden) {
        e.preventDefault();
        preview.hidden = true;
        previewButton(false);
      }
    }
  });

  function previewButton(showing) {
    const button = document.querySelector("[data-preview-toggle]");
    if (!button) return;
    if (!button.dataset.textShow) button.dataset.textShow = button.textContent;
    button.textContent = showing ? button.dataset.textHide : button.dataset.textShow;
  }

  // --- bulk selection in a folder ---------------------------------------------------------

  function selectionChanged() {
    const form = document.getElementById("bulk-form");
    if (!form) return;
    const boxes = form.querySelectorAll('input[name="ids"]');
    const chosen = Array.from(boxes).filter((b) => b.checked);
    form.querySelectorAll("[data-needs-selection]").forEach((b) => { b.disabled = !chosen.length; });
    const all = form.querySelector("[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && chosen.length === boxes.length;
      all.indeterminate = chosen.length > 0 && chosen.length < boxes.length;
    }
    const count = form.querySelector("[data-selection-count]");
    if (count) count.textContent = chosen.length ? String(chosen.length) + " ✓" : "";
  }

  let kept = new Set();
  function keepSelection() {
    kept = new Set(Array.from(document.querySelectorAll('#bulk-form input[name="ids"]:checked'))
      .map((b) => b.value));
  }
  function restoreSelection() {
    document.querySelectorAll('#bulk-form input[name="ids"]').forEach((b) => {
      if (kept.has(b.value)) b.checked = true;
    });
    kept = new Set();
    selectionChanged();
  }

  // --- live updates ------------------------------------------------------------------------

  let listTimer = null;
  function refreshList() {
    const list = document.getElementById("mail-list");
    if (!list || !window.htmx) return;
    clearTimeout(listTimer);
    listTimer = setTimeout(() => {
      keepSelection();
      htmx.ajax("GET", list.dataset.listUrl, { target: "#mail-list", swap: "outerHTML" });
    }, 250);
  }

  function threadConcerned(thread, kind, p) {
    if (kind === "message.read") return false; // our own reading changes nothing shown
    const ids = (thread.dataset.messageIds || "").split(",").map(Number);
    const root = Number(thread.dataset.threadId);
    if (p.thread_id && Number(p.thread_id) === root) return true;
    if (p.id && ids.includes(Number(p.id))) return true;
    return false;
  }

  let threadTimer = null;
  function refreshThread() {
    const thread = document.getElementById("thread");
    if (!thread || !window.htmx) return;
    const dirty = thread.querySelector("form[data-dirty]");
    const open = thread.querySelector("details[open] form, .dropdown-menu.show");
    if (dirty || open) {
      const note = thread.querySelector("[data-thread-changed]");
      if (note) note.hidden = false;
      return;
    }
    clearTimeout(threadTimer);
    threadTimer = setTimeout(() => {
      htmx.ajax("GET", thread.dataset.threadUrl, { target: "#thread", swap: "outerHTML" });
    }, 150);
  }

  document.addEventListener("click", (e) => {
    if (e.target.closest("[data-thread-reload]")) {
      const thread = document.getElementById("thread");
      if (thread) htmx.ajax("GET", thread.dataset.threadUrl, { target: "#thread", swap: "outerHTML" });
    }
  });

  function announce(p) {
    const thread = document.getElementById("thread");
    const viewing = thread && Number(thread.dataset.threadId) === Number(p.thread_id) && !document.hidden;
    if (viewing) return;
    const base = document.body.dataset.mailUrl || "/mail/";
    const url = base + p.id;
    const title = (p.sender && p.sender.name) || "";
    const subject = p.subject || text("noSubject", "(no subject)");
    if (window.crmToast) window.crmToast(title, subject, url, { kind: "mail", delay: 8000 });
    if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
      try {
        const n = new Notification(title, { body: subject, tag: `mail-${p.id}` });
        n.onclick = () => { window.focus(); window.location.assign(url); };
      } catch (_err) { /* some browsers allow notices only from a service worker */ }
    }
  }

  document.addEventListener("crm:feed", (e) => {
    const { kind, payload } = e.detail;
    if (!kind.startsWith("message.") && kind !== "mailbox.reload") return;
    const p = payload || {};
    if (kind === "message.new" && p.role === "recipient") announce(p);
    if (document.getElementById("mail-list")) refreshList();
    const thread = document.getElementById("thread");
    if (thread && threadConcerned(thread, kind, p)) refreshThread();
  });

  // --- desktop notifications (settings page) --------------------------------------------

  function showPermission() {
    const state = document.querySelector("[data-notify-state]");
    if (!state) return;
    const value = "Notification" in window ? Notification.permission : "unsupported";
    const key = `text${value[0].toUpperCase()}${value.slice(1)}`;
    state.textContent = state.dataset[key] || value;
    const button = document.querySelector("[data-notify-permission]");
    if (button) button.hidden = value !== "default";
  }

  document.addEventListener("click", (e) => {
    if (e.target.closest("[data-notify-permission]") && "Notification" in window) {
      Notification.requestPermission().then(showPermission);
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form[data-compose]").forEach(showForKind);
    showPermission();
    selectionChanged();
    const current = document.querySelector("#thread .mail-message.current");
    const first = document.querySelector("#thread .mail-message");
    if (current && current !== first && !window.location.hash) current.scrollIntoView({ block: "start" });
  });
})();
