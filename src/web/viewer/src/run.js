// A run's page (or the system logs'): follows live and exactly, resuming
// after the last seq shown when the connection drops or the server
// restarts; filters, search, pause, auto-scroll, a summary by level, and
// downloads of what is in view through the export stream.

import { ansiNodes } from "./ansi.js";
import { Code, explain, isFinal, jobRuns, logQuery, logStream } from "./api.js";
import { h, select, sleep } from "./dom.js";
import { JobRunState, LEVELS, LogLevel, LogStream, LogType, STREAMS, foldAscii, formatLogs, isUuid, levelName, logObject, outcomeName, streamName, timeOfDay } from "./model.js";
import { VirtualList } from "./virtual_list.js";

const ROW_HEIGHT = 20;
const RETRY_FIRST_MS = 250;
const RETRY_MOST_MS = 5000;
const EXPORT_CHUNK = 10000;
const PAINT_EVERY_MS = 40;

export function showRun(main, notify, runId) {
  if (runId !== null && !isUuid(runId)) {
    main.append(h("h1", {}, "Not a run"), h("p", { class: "error" }, `"${runId}" is not a run id: a run id is a UUID, such as 0192f1a0-7c3e-7b2a-9d4e-5f6a7b8c9d01.`), h("p", {}, h("a", { href: "#/" }, "Back to the runs")));
    return { stop() {} };
  }
  const page = new RunPage(main, notify, runId);
  page.follow();
  if (runId) page.describeRun();
  return { stop: () => page.stop() };
}

class RunPage {
  constructor(main, notify, runId) {
    this.notify = notify;
    this.runId = runId;
    this.lines = [];
    this.visible = [];
    this.lastSeq = 0n;
    this.shownThrough = 0n;
    // Lines received so far that the view has taken (all but a pause's).
    this.shownCount = 0;
    this.paused = false;
    this.autoScroll = true;
    this.filters = { minLevel: 0, stream: 0, task: "", search: "" };
    this.counts = Object.fromEntries(LEVELS.map((level) => [level, 0]));
    this.tasks = new Set();
    this.abort = new AbortController();

    this.list = new VirtualList(ROW_HEIGHT, (row, index) => this.drawRow(row, index));
    // Auto-scroll stops when the reader scrolls up and starts again at the
    // bottom. Lines arriving move the bottom away without a scroll event,
    // and the page's own scrolls only go down: neither stops it.
    this.lastTop = 0;
    this.list.viewport.addEventListener("scroll", () => this.followReader(), { passive: true });
    this.list.viewport.setAttribute("aria-label", "log lines: arrow keys pick a line, Enter shows its details, Escape hides them");
    this.list.viewport.addEventListener("keydown", (event) => this.onKey(event));
    // The line picked with the keyboard (an index into the view), if any.
    this.current = null;
    this.status = h("span", { class: "status", role: "status" }, "connecting…");
    this.runState = h("span", { class: "run-state" });
    this.summary = h("div", { class: "summary", "aria-label": "lines by level" });
    this.shown = h("span", { class: "shown" });
    this.pauseButton = h("button", { type: "button", onclick: () => this.togglePause() }, "Pause");
    this.autoScrollBox = h("input", { type: "checkbox", checked: true, onchange: (event) => this.setAutoScroll(event.target.checked, true) });
    this.taskSelect = h("select", { onchange: (event) => this.setFilter("task", event.target.value), "aria-label": "task" }, h("option", { value: "" }, "all tasks"));
    this.details = h("pre", { class: "details", hidden: true });

    const title = runId ? h("h1", {}, "Run ", h("span", { class: "id" }, runId), " ", this.runState) : h("h1", {}, "System logs");
    const levelOptions = [["0", "all levels"], ...LEVELS.map((level, i) => [String(LogLevel.TRACE + i), `${level} and above`])];
    const streamOptions = [["0", "all streams"], ...STREAMS.map((stream, i) => [String(LogStream.STDOUT + i), stream])];
    const controls = h(
      "div",
      { class: "controls" },
      select("Level", levelOptions, "0", (value) => this.setFilter("minLevel", Number(value))),
      runId ? select("Stream", streamOptions, "0", (value) => this.setFilter("stream", Number(value))) : null,
      runId ? h("label", {}, "Task ", this.taskSelect) : null,
      h("label", {}, "Search ", h("input", { type: "search", placeholder: "text in messages", oninput: (event) => this.setFilter("search", event.target.value) })),
      this.pauseButton,
      h("label", {}, this.autoScrollBox, " Auto-scroll"),
      h("span", { class: "downloads" }, "Download ", ["txt", "ndjson", "csv"].map((format) => h("button", { type: "button", onclick: () => this.download(format) }, format.toUpperCase()))),
    );
    main.append(h("p", {}, h("a", { href: "#/" }, "← Runs")), title, h("div", { class: "bar-line" }, this.status, this.shown), this.summary, controls, this.list.viewport, this.details);
    this.renderSummary();
  }

  stop() {
    this.stopped = true;
    this.abort.abort();
  }

  async describeRun() {
    try {
      const { jobRun } = await jobRuns.getJobRun({ jobRunId: this.runId });
      this.showRunState(jobRun);
    } catch (error) {
      const { code, text } = explain(error);
      this.runState.textContent = code === Code.NotFound ? "(no logs yet)" : "";
      if (code !== Code.NotFound) this.notify(text);
    }
  }

  showRunState(jobRun) {
    if (!jobRun) return;
    const outcome = outcomeName(jobRun.outcome);
    this.runState.replaceChildren(
      jobRun.name ? h("span", { class: "name" }, jobRun.name) : "",
      " ",
      h("span", { class: `state ${jobRun.state === JobRunState.COMPLETE ? "complete" : "open"}` }, jobRun.state === JobRunState.COMPLETE ? "complete" : "open"),
      outcome ? " " : "",
      outcome ? h("span", { class: `outcome ${outcome}` }, outcome) : "",
    );
  }

  /** Follows from the last seq received, reconnecting until the run completes or the page closes. */
  async follow() {
    let delay = RETRY_FIRST_MS;
    let lastPaint = -Infinity;
    while (!this.stopped) {
      const request = this.runId ? { jobRunId: this.runId } : { system: true };
      request.start = { case: "afterSeq", value: this.lastSeq };
      try {
        for await (const message of logStream.streamLogs(request, { signal: this.abort.signal })) {
          this.setStatus("live", "live");
          this.notify(null);
          delay = RETRY_FIRST_MS;
          const event = message.event;
          if (event.case === "log") this.receive(event.value);
          else if (event.case === "expired") this.notify(`Logs before seq ${event.value.firstRetainedSeq} have expired.`);
          else if (event.case === "completed") return this.complete(event.value.jobRun);
          // A long history arrives faster than it is drawn: let the page
          // paint between bursts, the first line at once.
          if (performance.now() - lastPaint > PAINT_EVERY_MS) {
            await new Promise((resolve) => setTimeout(resolve, 0));
            lastPaint = performance.now();
          }
        }
      } catch (error) {
        if (this.stopped) return;
        const { code, text } = explain(error);
        if (isFinal(code)) {
          this.setStatus("stopped", "error");
          return this.notify(text);
        }
        this.setStatus(`reconnecting… (${text})`, "reconnecting");
      }
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MOST_MS);
    }
  }

  complete(jobRun) {
    this.flush();
    this.showRunState(jobRun);
    this.setStatus(`completed: ${outcomeName(jobRun?.outcome) || "done"}${jobRun?.summary ? ` (${jobRun.summary})` : ""}`, "completed");
  }

  setStatus(text, kind) {
    this.status.textContent = text;
    this.status.className = `status ${kind}`;
  }

  /** A log from the stream: each seq once, in order. */
  receive(log) {
    if (log.seq <= this.lastSeq) return;
    this.lastSeq = log.seq;
    this.lines.push(log);
    this.counts[levelName(log.level)] += 1;
    if (log.taskRunId && !this.tasks.has(log.taskRunId)) {
      this.tasks.add(log.taskRunId);
      this.taskSelect.append(h("option", { value: log.taskRunId }, log.taskRunId));
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  /** Shows what arrived since the last frame, unless paused. */
  flush() {
    this.flushScheduled = false;
    this.renderSummary();
    if (this.paused) return;
    this.takeMatching(this.shownCount, this.lines.length);
    this.shownCount = this.lines.length;
    this.shownThrough = this.lastSeq;
    this.list.setCount(this.visible.length);
    this.renderShown();
    // In this frame: the lines are on screen when it paints.
    if (this.autoScroll) this.list.scrollToBottom();
    this.list.render();
    // For DevTools and the viewer's benchmark: when the first line showed.
    if (this.visible.length > 0 && !this.firstLineMarked) {
      this.firstLineMarked = true;
      requestAnimationFrame(() => performance.mark("logwell:first-line"));
    }
  }

  /** Adds the lines from `from` to `to` (not included) that match to the view. */
  takeMatching(from, to) {
    for (let index = from; index < to; index++) {
      if (this.matches(this.lines[index])) this.visible.push(index);
    }
  }

  matches(log) {
    const { minLevel, stream, task, search } = this.filters;
    return (
      log.level >= minLevel &&
      (stream === 0 || log.stream === stream) &&
      (task === "" || log.taskRunId === task) &&
      (search === "" || foldAscii(log.message).includes(foldAscii(search)))
    );
  }

  followReader() {
    const top = this.list.viewport.scrollTop;
    if (top < this.lastTop - 1) this.setAutoScroll(false);
    else if (this.list.isAtBottom()) this.setAutoScroll(true);
    this.lastTop = top;
  }

  setFilter(name, value) {
    this.filters[name] = value;
    // Fewer lines pull the view up: that is not the reader scrolling.
    this.lastTop = 0;
    this.current = null;
    this.visible = [];
    this.takeMatching(0, this.shownCount);
    this.list.setCount(this.visible.length);
    this.list.refresh();
    this.renderShown();
    if (this.autoScroll) requestAnimationFrame(() => this.list.scrollToBottom());
  }

  togglePause() {
    this.paused = !this.paused;
    this.pauseButton.textContent = this.paused ? "Resume" : "Pause";
    this.pauseButton.setAttribute("aria-pressed", String(this.paused));
    this.flush();
  }

  setAutoScroll(on, scroll = false) {
    this.autoScroll = on;
    this.autoScrollBox.checked = on;
    if (on && scroll) this.list.scrollToBottom();
  }

  renderSummary() {
    this.summary.replaceChildren(...LEVELS.map((level) => h("span", { class: `count lvl-${level}` }, `${level} ${this.counts[level]}`)));
    this.renderShown();
  }

  renderShown() {
    const waiting = this.paused ? ` · paused, ${this.lines.length - this.shownCount} new` : "";
    this.shown.textContent = `${this.visible.length} of ${this.lines.length} lines shown${waiting}`;
  }

  drawRow(row, index) {
    const log = this.lines[this.visible[index]];
    if (!log) return row.replaceChildren();
    const level = levelName(log.level);
    row.className = `row lvl-${level}${index === this.current ? " current" : ""}`;
    row.onclick = () => this.showDetails(log);
    const cells = [
      h("span", { class: "time" }, timeOfDay(log.time)),
      h("span", { class: "level" }, level.toUpperCase()),
      h("span", { class: "stream" }, streamName(log.stream)),
    ];
    if (log.taskRunId) cells.push(h("span", { class: "task", title: log.taskRunId }, log.taskRunId.slice(0, 8)));
    cells.push(h("span", { class: "message" }, ansiNodes(log.message)));
    row.replaceChildren(...cells);
  }

  /** Arrow keys pick a line, Enter shows its details, Escape hides them. */
  onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey || this.visible.length === 0) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const from = this.current ?? this.list.firstInView();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.current = this.current === null ? from : Math.max(0, Math.min(this.visible.length - 1, from + step));
      this.list.reveal(this.current);
    } else if (event.key === "Enter" && this.current !== null) {
      this.showDetails(this.lines[this.visible[this.current]]);
    } else if (event.key === "Escape") {
      this.details.hidden = true;
    } else {
      return;
    }
    event.preventDefault();
  }

  showDetails(log) {
    this.details.hidden = false;
    this.details.textContent = JSON.stringify(logObject(log), null, 2);
  }

  /** Downloads the lines in view, read again through the export stream. */
  async download(format) {
    const { minLevel, stream, task, search } = this.filters;
    const filter = {
      jobRunIds: this.runId ? [this.runId] : [],
      types: this.runId ? [] : [LogType.SYSTEM],
      minLevel,
      streams: stream ? [stream] : [],
      taskRunIds: task ? [task] : [],
      text: search,
      ignoreCase: search !== "",
    };
    // The view ends at the last seq shown (a paused view, or logs since).
    const through = this.shownThrough;
    const logs = [];
    try {
      for await (const chunk of logQuery.exportLogs({ filter, chunkSize: EXPORT_CHUNK })) {
        logs.push(...chunk.logs.filter((log) => log.seq <= through));
      }
    } catch (error) {
      return this.notify(`Download failed: ${explain(error).text}`);
    }
    const types = { txt: "text/plain", ndjson: "application/x-ndjson", csv: "text/csv" };
    const blob = new Blob([formatLogs(logs, format)], { type: `${types[format]};charset=utf-8` });
    const link = h("a", { href: URL.createObjectURL(blob), download: `${this.runId ? `run-${this.runId}` : "system"}.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  }
}
