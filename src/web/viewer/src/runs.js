// The list of job runs: state, outcome, counts by level and last activity,
// filtered by name, state, outcome and level; refreshed every few seconds.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { explain, jobRuns } from "./api.js";
import { h, select } from "./dom.js";
import { JobRunOutcome, JobRunState, LEVELS, LogLevel, isUuid, outcomeName } from "./model.js";

const REFRESH_MS = 5000;
const PAGE_SIZE = 100;

export function showRuns(main, notify) {
  const filters = { name: "", state: "", outcome: "", minLevel: "" };
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true, onclick: () => load(false) }, "More runs");
  let nextPageToken = "";
  let timer;
  let stopped = false;

  const request = (pageToken) => ({
    name: filters.name.trim(),
    state: filters.state === "" ? JobRunState.UNSPECIFIED : Number(filters.state),
    outcomes: filters.outcome === "" ? [] : [Number(filters.outcome)],
    minLevel: filters.minLevel === "" ? LogLevel.UNSPECIFIED : Number(filters.minLevel),
    pageSize: PAGE_SIZE,
    pageToken,
  });

  async function load(fromStart) {
    clearTimeout(timer);
    try {
      const answer = await jobRuns.listJobRuns(request(fromStart ? "" : nextPageToken));
      if (stopped) return;
      if (fromStart) body.replaceChildren();
      body.append(...answer.jobRuns.map(row));
      if (fromStart && answer.jobRuns.length === 0) body.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No runs match.")));
      nextPageToken = answer.nextPageToken;
      more.hidden = !nextPageToken;
      notify(null);
    } catch (error) {
      if (!stopped) notify(explain(error).text);
    }
    // Refreshes the first page only: a reader paging back is not disturbed.
    if (!stopped && fromStart && !nextPageToken) timer = setTimeout(() => load(true), REFRESH_MS);
  }

  const open = h("form", {
    class: "open-run",
    onsubmit: (event) => {
      event.preventDefault();
      const id = event.target.elements.run.value.trim();
      if (isUuid(id)) location.hash = `#/runs/${id}`;
      else notify(`"${id}" is not a run id: a run id is a UUID, such as 0192f1a0-7c3e-7b2a-9d4e-5f6a7b8c9d01`);
    },
  }, h("label", {}, "Open run ", h("input", { name: "run", placeholder: "run id (UUID)", size: 38, "aria-label": "run id" })), h("button", {}, "Open"));

  const apply = (name) => (value) => {
    filters[name] = value;
    load(true);
  };
  const form = h(
    "form",
    { class: "filters", onsubmit: (event) => (event.preventDefault(), load(true)) },
    h("label", {}, "Name ", h("input", { type: "search", placeholder: "any", oninput: (event) => (filters.name = event.target.value), onchange: () => load(true) })),
    select("State", [["", "any"], [String(JobRunState.OPEN), "open"], [String(JobRunState.COMPLETE), "complete"]], "", apply("state")),
    select("Outcome", [["", "any"], ...[JobRunOutcome.SUCCEEDED, JobRunOutcome.FAILED, JobRunOutcome.CANCELLED].map((o) => [String(o), outcomeName(o)])], "", apply("outcome")),
    select("Logged at least", [["", "any level"], ...LEVELS.map((level, i) => [String(LogLevel.TRACE + i), level])], "", apply("minLevel")),
  );

  main.append(
    h("h1", {}, "Job runs"),
    h("p", {}, h("a", { href: "#/system" }, "System logs"), " · ", open),
    form,
    h("table", { class: "runs" }, h("thead", {}, h("tr", {}, ["Run", "State", "Outcome", "Logs by level", "Logs", "Last activity"].map((title) => h("th", { scope: "col" }, title)))), body),
    more,
  );
  load(true);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

function row(run) {
  const counts = run.levelCounts ?? {};
  const badges = LEVELS.filter((level) => Number(counts[level] ?? 0) > 0).map((level) => h("span", { class: `count lvl-${level}`, title: level }, `${level} ${Number(counts[level])}`));
  const state = run.state === JobRunState.COMPLETE ? "complete" : "open";
  const outcome = outcomeName(run.outcome);
  return h(
    "tr",
    {},
    h("td", {}, h("a", { href: `#/runs/${run.jobRunId}` }, run.name || run.jobRunId), run.name ? h("div", { class: "id" }, run.jobRunId) : null),
    h("td", {}, h("span", { class: `state ${state}` }, state)),
    h("td", {}, outcome ? h("span", { class: `outcome ${outcome}` }, outcome) : ""),
    h("td", {}, badges),
    h("td", { class: "number" }, String(run.logCount)),
    h("td", {}, run.lastActivityTime ? timestampDate(run.lastActivityTime).toLocaleString() : ""),
  );
}
