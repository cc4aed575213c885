/* Import of clients: while a long file is read, checked or saved, the page shows how far it
   got, from the server's progress for this form's token. */
(function () {
  "use strict";
  document.addEventListener("submit", (e) => {
    const form = e.target.closest("form[data-import-progress]");
    if (!form) return;
    const box = form.querySelector("#import-progress") || document.getElementById("import-progress");
    const token = form.querySelector('input[name="progress"]')?.value;
    if (!box || !token) return;
    const bar = box.querySelector(".progress-bar");
    const label = box.querySelector("[data-progress-label]");
    box.classList.remove("d-none");
    form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    const url = box.dataset.url.replace("TOKEN", token);
    const tick = () => {
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then((r) => (r.ok ? r.json() : null))
        .then((p) => {
          if (!p) return;
          const rows = `${p.done.toLocaleString()} ${box.dataset.rows}`;
          if (p.total) {
            const pct = Math.min(100, Math.round((100 * p.done) / p.total));
            bar.classList.remove("w-100", "progress-bar-animated");
            bar.style.width = `${pct}%`;
            bar.parentElement.setAttribute("aria-valuenow", String(pct));
            label.textContent = `${p.label}: ${rows} / ${p.total.toLocaleString()} (${pct}%)`;
          } else {
            bar.classList.add("w-100", "progress-bar-animated");
            label.textContent = p.done ? `${p.label}: ${rows}` : p.label || box.dataset.wait;
          }
        })
        .catch(() => {})
        .finally(() => { window.setTimeout(tick, 700); });
    };
    window.setTimeout(tick, 400);
  });
})();
