// Live preview of an article's Markdown in the admin form. The server renders and
// sanitizes (knowledge/rendering.py): the HTML it returns is what the help centre shows.
(() => {
  "use strict";
  const start = () => {
    const body = document.getElementById("id_body");
    const box = document.getElementById("kb-preview");
    if (!body || !box) return;
    const url = location.pathname.replace(/\/(add|\d+\/change)\/?$/, "/preview/");
    const token = (document.querySelector("[name=csrfmiddlewaretoken]") || {}).value || "";
    let timer = 0, seq = 0;
    const refresh = async () => {
      const mine = ++seq;
      const form = new FormData();
      form.append("body", body.value);
      try {
        const r = await fetch(url, { method: "POST", body: form, headers: { "X-CSRFToken": token }, credentials: "same-origin" });
        const j = await r.json();
        if (mine === seq && r.ok) box.innerHTML = j.html; // sanitized server-side by nh3
      } catch (e) { /* keep the last preview */ }
    };
    body.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 400); });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
