// logwell's names for levels, streams and types, times as RFC 3339, and the
// export formats the CLI writes (`logwell export`): TXT, NDJSON and CSV.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { JobRunOutcome, JobRunState } from "../gen/logwell/v1/job_run_service_pb.js";
import { LogLevel, LogStream, LogType } from "../gen/logwell/v1/log_pb.js";

export const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
export const STREAMS = ["stdout", "stderr", "system"];
export { JobRunOutcome, JobRunState, LogLevel, LogStream, LogType };

export const levelName = (level) => LEVELS[level - LogLevel.TRACE] ?? "unspecified";
export const streamName = (stream) => STREAMS[stream - LogStream.STDOUT] ?? "unspecified";
export const typeName = (type) => ["system", "job", "task"][type - LogType.SYSTEM] ?? "unspecified";
export const outcomeName = (outcome) => ({ [JobRunOutcome.SUCCEEDED]: "succeeded", [JobRunOutcome.FAILED]: "failed", [JobRunOutcome.CANCELLED]: "cancelled" })[outcome] ?? "";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (text) => UUID.test(text);

/** A timestamp as RFC 3339 in UTC, to the microsecond, as logwell stores it. */
export function rfc3339(timestamp) {
  if (!timestamp) return "";
  const whole = new Date(Number(timestamp.seconds) * 1000).toISOString().slice(0, 19);
  return `${whole}.${String(Math.floor(timestamp.nanos / 1000)).padStart(6, "0")}Z`;
}

/** The time of day, local, to the millisecond: what a reader scans. */
export function timeOfDay(timestamp) {
  if (!timestamp) return "-";
  const date = timestampDate(timestamp);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

/** Case-insensitive for ASCII letters only, as the server's `ignore_case`. */
export const foldAscii = (text) => text.replace(/[A-Z]/g, (letter) => letter.toLowerCase());

/** A log as the CLI's NDJSON object. */
export function logObject(log) {
  return {
    id: log.id,
    type: typeName(log.type),
    job_run_id: log.jobRunId,
    task_run_id: log.taskRunId,
    seq: Number(log.seq),
    time: rfc3339(log.time),
    received_at: rfc3339(log.receivedAt),
    level: levelName(log.level),
    stream: streamName(log.stream),
    source: log.source,
    message: log.message,
    metadata: log.metadata ?? {},
  };
}

const CSV_HEADER = ["id", "type", "job_run_id", "task_run_id", "seq", "time", "received_at", "level", "stream", "source", "message", "metadata"];

/** One CSV field, quoted when RFC 4180 needs it. */
function csvField(value) {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Logs in one of the export formats: `txt`, `ndjson` or `csv`. */
export function formatLogs(logs, format) {
  if (format === "ndjson") return logs.map((log) => `${JSON.stringify(logObject(log))}\n`).join("");
  if (format === "csv") {
    const rows = logs.map((log) => {
      const object = logObject(log);
      return CSV_HEADER.map((key) => csvField(key === "metadata" ? JSON.stringify(object.metadata) : object[key])).join(",");
    });
    return [CSV_HEADER.join(","), ...rows].map((row) => `${row}\r\n`).join("");
  }
  return logs
    .map((log) => {
      const owner = log.jobRunId ? (log.taskRunId ? `${log.jobRunId.slice(0, 8)}/${log.taskRunId.slice(0, 8)}` : log.jobRunId.slice(0, 8)) : "system";
      const source = log.source ? ` [${log.source}]` : "";
      return `${rfc3339(log.time)} ${levelName(log.level).toUpperCase().padEnd(5)} ${owner}${source} ${log.message}\n`;
    })
    .join("");
}
