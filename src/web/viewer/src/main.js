// logwell's viewer: the runs, a run's live logs, the system logs. Pages by
// the URL's fragment (#/, #/runs/ID, #/system), so that each can be linked.

import { token } from "./api.js";
import { h } from "./dom.js";
import { showRun } from "./run.js";
import { showRuns } from "./runs.js";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
let page = null;

/** Shows `text` above the page (null hides it). */
function notify(text) {
  notice.hidden = !text;
  notice.textContent = text ?? "";
}

function route() {
  page?.stop();
  main.replaceChildren();
  notify(null);
  const fragment = location.hash || "#/";
  const run = fragment.match(/^#\/runs\/(.*)$/);
  if (run) page = showRun(main, notify, decodeURIComponent(run[1]).trim());
  else if (fragment === "#/system") page = showRun(main, notify, null);
  else page = showRuns(main, notify);
}

function tokenForm() {
  const input = h("input", { type: "password", name: "token", autocomplete: "off", placeholder: "lw_…", "aria-label": "token", size: 30 });
  const form = h(
    "form",
    {
      class: "token",
      hidden: true,
      onsubmit: (event) => {
        event.preventDefault();
        token.set(input.value.trim());
        input.value = "";
        form.hidden = true;
        route();
      },
    },
    h("label", {}, "Token ", input),
    h("button", {}, "Use"),
    h("button", { type: "button", onclick: () => (token.set(""), (form.hidden = true), route()) }, "Forget"),
    h("span", { class: "hint" }, "kept in this tab only"),
  );
  const button = document.getElementById("token-button");
  button.addEventListener("click", () => {
    form.hidden = !form.hidden;
    if (!form.hidden) input.focus();
  });
  button.after(form);
}

tokenForm();
window.addEventListener("hashchange", route);
route();
