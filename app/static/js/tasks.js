/* Tasks in the browser: live lists (my day, the board, a run, a task and its comments)
   fetched again on the person's task events (crm:feed from app.js), steps checked as they
   are clicked, rows added to the step and stage editors, selects filtered by typing, and
   cards dragged between the board's columns. */
(function () {
  "use strict";

  // --- live parts -----------------------------------------------------------------------

  const timers = new Map();

  function later(key, fn) {
    clearTimeout(timers.get(key));
    timers.set(key, setTimeout(fn, 150));
  }

  function busy(el) {
    // Someone typing in, or dragging across, the part: do not pull it from under them.
    return Boolean(el.querySelector("form[data-dirty]") || el.querySelector(".dragging"));
  }

  function refresh(el) {
    if (!window.htmx || !el.id) return;
    if (busy(el)) { el.dataset.stale = "1"; return; }
    later(el.id, () => {
      htmx.ajax("GET", el.dataset.url, { target: `#${el.id}`, swap: "outerHTML", select: `#${el.id}` });
    });
  }

  function refreshTask(page) {
    later("task-live", () => {
      htmx.ajax("GET", page.dataset.liveUrl, { target: "#task-steps", swap: "outerHTML" });
    });
  }

  function refreshComments(page) {
    later("task-comments", () => {
      htmx.ajax("GET", page.dataset.commentsUrl, { target: "#task-comment-list", swap: "outerHTML" });
    });
  }

  document.addEventListener("crm:feed", (e) => {
    const { kind, payload } = e.detail;
    if (!kind || !kind.startsWith("task.")) return;
    const p = payload || {};
    document.querySelectorAll("[data-task-live]").forEach((el) => {
      if (el.dataset.runId && Number(el.dataset.runId) !== Number(p.run_id)) return;
      refresh(el);
    });
    const page = document.getElementById("task-page");
    if (page) {
      const id = Number(page.dataset.taskId);
      if (kind === "task.comment" && Number(p.task_id) === id) refreshComments(page);
      else if (kind === "task.changed" && Number(p.id) === id) refreshTask(page);
    }
  });

  // --- forms ----------------------------------------------------------------------------

  document.addEventListener("input", (e) => {
    const form = e.target.closest && e.target.closest("form[data-track-dirty]");
    if (form) form.dataset.dirty = "1";
  });

  document.addEventListener("change", (e) => {
    const el = e.target;
    if (el.matches && el.matches("[data-submit-on-change]")) {
      const form = el.form || el.closest("form");
      if (form) form.requestSubmit();
    }
  });

  document.addEventListener("htmx:afterRequest", (e) => {
    const form = e.detail.elt;
    if (form && form.matches && form.matches("form[data-reset-on-success]") && e.detail.successful) {
      form.reset();
    }
  });

  document.addEventListener("htmx:afterSwap", (e) => {
    const target = e.detail.target;
    if (target && target.id === "preview") target.hidden = false;
  });

  // A search box above a select hides the options that do not match what is typed.
  document.addEventListener("input", (e) => {
    const box = e.target;
    if (!box.dataset || !box.dataset.filterSelect) return;
    const select = document.getElementById(box.dataset.filterSelect);
    if (!select) return;
    const words = box.value.trim().toLocaleLowerCase().split(/\s+/).filter(Boolean);
    let first = null;
    select.querySelectorAll("option").forEach((opt) => {
      const text = opt.textContent.toLocaleLowerCase();
      const show = words.every((w) => text.includes(w));
      opt.hidden = !show;
      if (show && !first && opt.value) first = opt;
    });
    select.querySelectorAll("optgroup").forEach((group) => {
      group.hidden = !Array.from(group.children).some((o) => !o.hidden);
    });
    if (!select.multiple && first && select.selectedOptions[0] && select.selectedOptions[0].hidden) {
      select.value = first.value;
    }
  });

  // --- row editors (steps of a new task, stages of a programme) ---------------------------

  function renumber(body) {
    body.querySelectorAll("[data-row]").forEach((row, i) => {
      const n = row.querySelector("[data-row-number]");
      if (n) n.textContent = String(i + 1);
    });
  }

  document.addEventListener("click", (e) => {
    const add = e.target.closest("[data-add-row]");
    if (add) {
      const name = add.dataset.addRow;
      const template = document.querySelector(`template[data-row-template="${name}"]`);
      const body = (add.closest("fieldset") || document).querySelector("[data-rows-body]");
      if (!template || !body) return;
      let next = 0;
      body.querySelectorAll("[name]").forEach((input) => {
        const m = input.name.match(new RegExp(`^${name}-(\\d+)-`));
        if (m) next = Math.max(next, Number(m[1]) + 1);
      });
      const html = template.innerHTML.replaceAll("__i__", String(next));
      const holder = document.createElement(body.tagName === "TBODY" ? "tbody" : "div");
      holder.innerHTML = html;
      const row = holder.firstElementChild;
      body.append(row);
      renumber(body);
      const first = row.querySelector("input:not([type=hidden]):not([type=checkbox]), select, textarea");
      if (first) first.focus();
      return;
    }
    const remove = e.target.closest("[data-remove-row]");
    if (remove) {
      const row = remove.closest("[data-row]");
      const body = row && row.parentElement;
      if (row) row.remove();
      if (body) renumber(body);
    }
  });

  // --- the board: drag a card to another column -----------------------------------------

  let dragged = null;

  document.addEventListener("dragstart", (e) => {
    const card = e.target.closest && e.target.closest(".board-card[draggable=true]");
    if (!card) return;
    dragged = card;
    card.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.dataset.taskId);
  });

  document.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    document.querySelectorAll(".board-col.drop-ok").forEach((c) => c.classList.remove("drop-ok"));
    const board = document.getElementById("task-board");
    if (board && board.dataset.stale) { delete board.dataset.stale; refresh(board); }
  });

  function allowed(col) {
    if (!dragged || !col) return false;
    const moves = { open: ["in_progress", "done"], in_progress: ["done"], done: ["open"] };
    return (moves[dragged.dataset.status] || []).includes(col.dataset.status);
  }

  document.addEventListener("dragover", (e) => {
    const col = e.target.closest && e.target.closest(".board-col");
    if (!allowed(col)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "move";
    document.querySelectorAll(".board-col.drop-ok").forEach((c) => { if (c !== col) c.classList.remove("drop-ok"); });
    col.classList.add("drop-ok");
  });

  document.addEventListener("drop", (e) => {
    const col = e.target.closest && e.target.closest(".board-col");
    if (!allowed(col)) return;
    e.preventDefault();
    const form = document.getElementById("board-move");
    if (!form) return;
    form.elements.task_id.value = dragged.dataset.taskId;
    form.elements.from.value = dragged.dataset.status;
    form.elements.to.value = col.dataset.status;
    form.submit();
  });
})();
