// A logwell client in plain JavaScript (Node 20, ES modules), written as a
// user would write one, and a test of it: every step checks what the server
// answered and exits non-zero with a message saying what was not as expected.
// CI runs it against a real server (.ci/client_examples.py); the guide is
// docs/clients/README.md.
//
//   cd docs/clients/node && npm ci
//   LOGWELL_SERVER=127.0.0.1:50051 node example.js
//
// The .proto files are read at run time from LOGWELL_PROTO_DIR (default: this
// repository's proto/ folder). No code is generated.

import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { getProtoPath } from 'google-proto-files';
import protobuf from 'protobufjs';
import { v7 as uuidv7 } from 'uuid';

const SERVER = process.env.LOGWELL_SERVER ?? '127.0.0.1:50051';
const PROTO_DIR = process.env.LOGWELL_PROTO_DIR ?? fileURLToPath(new URL('../../../proto', import.meta.url));

function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function ok(message) {
  console.log(`ok: ${message}`);
}

// --- Stubs -------------------------------------------------------------------

// keepCase: field names as in the .proto (job_run_id, page_size), as grpcurl
//   and the error details spell them; a camelCase name is silently ignored.
// longs: String: int64 fields (seq, after_seq) arrive as decimal strings, not
//   Long objects. enums: String: enums arrive as wire names (LOG_LEVEL_WARN).
// defaults: true: unset fields arrive with their defaults, not undefined.
// oneofs: true: a oneof's name says which member is set (message.event).
const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const PROTO_FILES = [
  'logwell/v1/job_log_service.proto',
  'logwell/v1/task_log_service.proto',
  'logwell/v1/log_query_service.proto',
  'logwell/v1/log_stream_service.proto',
  'logwell/v1/job_run_service.proto',
];
const definition = protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
const lw = grpc.loadPackageDefinition(definition).logwell.v1;

// google.rpc.Status, BadRequest and RetryInfo, to decode error details. The
// google-proto-files package ships their .proto files; protobufjs loads them.
const googleProtos = path.dirname(getProtoPath());
const googleRpc = new protobuf.Root();
googleRpc.resolvePath = (_origin, target) => path.join(googleProtos, target);
googleRpc.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
const RpcStatus = googleRpc.lookupType('google.rpc.Status');

/** A client-chosen id: a UUIDv7, time-ordered, which keeps the server's index cheap. */
const newId = () => uuidv7();

/** Calls a unary method and returns a promise of its response. */
function unary(client, method, request, { timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + timeoutMs }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

// --- Guards and converters: the Node traps -----------------------------------

/** The wire names of a logwell.v1 enum, from the loaded definition. */
function enumNames(name) {
  return definition[`logwell.v1.${name}`].type.value.map((value) => value.name);
}
const ENUMS = { level: enumNames('LogLevel'), stream: enumNames('LogStream') };

/**
 * Refuses what protobufjs would silently turn into something else: an enum
 * name it does not know (sent as 0, stored as INFO / STDOUT), metadata that is
 * not a google.protobuf.Struct (sent as {}), a time that is not
 * {seconds, nanos} (a Date is sent as 1970-01-01T00:00:00Z).
 */
function checkEntry(entry) {
  for (const [field, names] of Object.entries(ENUMS)) {
    if (entry[field] !== undefined && !names.includes(entry[field])) {
      throw new TypeError(`${field} ${JSON.stringify(entry[field])} is not one of ${names.join(', ')}`);
    }
  }
  if (entry.metadata !== undefined) checkStruct(entry.metadata, 'metadata');
  if (entry.time !== undefined && entry.time.seconds === undefined) {
    throw new TypeError('time must be a google.protobuf.Timestamp {seconds, nanos}: convert it with toTimestamp()');
  }
  return entry;
}

// The members of google.protobuf.Value. Well-known types keep protobufjs's
// camelCase names even under keepCase: true, and a Value with none of them
// (e.g. {string_value: 'x'}) is sent empty, which the server refuses.
const VALUE_KINDS = ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'];

function checkStruct(struct, where) {
  if (typeof struct?.fields !== 'object' || struct.fields === null) {
    throw new TypeError(`${where} must be a google.protobuf.Struct {fields: ...}: wrap the object with toStruct()`);
  }
  for (const [key, value] of Object.entries(struct.fields)) checkValue(value, `${where}.${key}`);
}

function checkValue(value, where) {
  const keys = Object.keys(value ?? {});
  if (keys.length !== 1 || !VALUE_KINDS.includes(keys[0])) {
    throw new TypeError(`${where} must be a google.protobuf.Value with one of ${VALUE_KINDS.join(', ')}, got {${keys}}`);
  }
  if (keys[0] === 'structValue') checkStruct(value.structValue, where);
  if (keys[0] === 'listValue') value.listValue.values.forEach((item, i) => checkValue(item, `${where}[${i}]`));
}

/** A plain JSON-like object as a google.protobuf.Struct. */
function toStruct(object) {
  const toValue = (value) => {
    if (value === null) return { nullValue: 'NULL_VALUE' };
    if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
    switch (typeof value) {
      case 'string':
        return { stringValue: value };
      case 'boolean':
        return { boolValue: value };
      case 'number':
        // Struct numbers are doubles: send ids and large integers as strings.
        if (!Number.isFinite(value)) throw new TypeError(`metadata numbers must be finite, got ${value}`);
        return { numberValue: value };
      case 'object':
        return { structValue: toStruct(value) };
      default:
        throw new TypeError(`${typeof value} cannot go into metadata (a bigint? send it as a string)`);
    }
  };
  return { fields: Object.fromEntries(Object.entries(object).map(([key, value]) => [key, toValue(value)])) };
}

/** A google.protobuf.Struct, as read with oneofs: true, back into a plain object. */
function fromStruct(struct) {
  const fromValue = (value) => {
    switch (value.kind) {
      case 'structValue':
        return fromStruct(value.structValue);
      case 'listValue':
        return value.listValue.values.map(fromValue);
      case 'nullValue':
        return null;
      default:
        return value[value.kind];
    }
  };
  return Object.fromEntries(Object.entries(struct.fields).map(([key, value]) => [key, fromValue(value)]));
}

/** A Date as a google.protobuf.Timestamp. */
function toTimestamp(date) {
  const millis = date.getTime();
  return { seconds: Math.floor(millis / 1000), nanos: (((millis % 1000) + 1000) % 1000) * 1e6 };
}

// --- Retries and error details -----------------------------------------------

/** The google.rpc.Status details of an error (from the grpc-status-details-bin trailer), decoded. */
function statusDetails(err) {
  const [bytes] = err.metadata?.get('grpc-status-details-bin') ?? [];
  if (!bytes) return [];
  return RpcStatus.decode(bytes).details.flatMap((any) => {
    const type = googleRpc.lookup(any.type_url.slice(any.type_url.lastIndexOf('/') + 1));
    return type ? [{ type: type.fullName.slice(1), value: type.toObject(type.decode(any.value), { longs: Number }) }] : [];
  });
}

/** The google.rpc.RetryInfo delay of an error in milliseconds, or undefined. */
function retryDelayMs(err) {
  const info = statusDetails(err).find((detail) => detail.type === 'google.rpc.RetryInfo');
  if (!info) return undefined;
  const { seconds = 0, nanos = 0 } = info.value.retry_delay ?? {};
  return seconds * 1000 + nanos / 1e6;
}

/**
 * Runs call() again while a retry can fix what went wrong.
 *
 * UNAVAILABLE (server down or restarting, database unreachable: nothing was
 * stored) is retried with exponential backoff and a little jitter.
 * RESOURCE_EXHAUSTED is retried only when the server says when, with a
 * google.rpc.RetryInfo (rate limit, full write queue); without one it is a
 * hard limit (a request too large) that no retry fixes.
 *
 * Retrying writes is safe because every log carries a client-chosen id: a
 * resend of something already stored answers duplicate: true, stores nothing.
 * `seen` (an array) records {code, delayMs} for each retry.
 */
async function withRetry(call, { attempts = 8, firstBackoffMs = 100, maxDelayMs = 30_000, seen } = {}) {
  let backoffMs = firstBackoffMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      let delayMs;
      if (err.code === grpc.status.UNAVAILABLE) {
        delayMs = backoffMs * (0.9 + Math.random() * 0.2);
        backoffMs *= 2;
      } else if (err.code === grpc.status.RESOURCE_EXHAUSTED && (delayMs = retryDelayMs(err)) !== undefined) {
        // The server said when the rate limit will let this batch through.
      } else {
        throw err;
      }
      if (attempt === attempts) throw err;
      seen?.push({ code: err.code, delayMs });
      await sleep(Math.min(delayMs, maxDelayMs));
    }
  }
}

// --- the steps ---------------------------------------------------------------

/** Job logs with our own ids; resending the batch stores nothing new. */
async function writeWithClientIds(clients, runId) {
  // A job run comes into being with its first log: until then it is unknown.
  const before = await unary(clients.runs, 'GetJobRun', { job_run_id: runId }).catch((err) => err);
  check(before.code === grpc.status.NOT_FOUND, `a fresh run should be NOT_FOUND before its first log, got ${before.code ?? 'a run'}`);

  const logs = [
    { id: newId(), job_run_id: runId, stream: 'LOG_STREAM_SYSTEM', source: 'runner-3', message: 'job started', time: toTimestamp(new Date()) },
    { id: newId(), job_run_id: runId, level: 'LOG_LEVEL_WARN', stream: 'LOG_STREAM_STDERR', source: 'runner-3', message: 'cache miss, building from scratch' },
    { id: newId(), job_run_id: runId, source: 'runner-3', message: 'built', metadata: toStruct({ attempt: 2, build_id: '9007199254740993' }) },
  ].map(checkEntry);
  const first = (await withRetry(() => unary(clients.jobs, 'WriteJobLogs', { logs }))).receipts;
  check(first.every((receipt, i) => receipt.id === logs[i].id), 'the receipts should carry our ids');
  // seq is an int64: a decimal string with longs: String.
  check(first.map((receipt) => receipt.seq).join() === '1,2,3', `a new run should get seqs 1, 2, 3, got ${first.map((r) => r.seq)}`);
  check(first.every((receipt) => !receipt.duplicate), 'the first write answered duplicate: true');

  // A client that timed out cannot know whether the batch was stored: it resends.
  const again = (await withRetry(() => unary(clients.jobs, 'WriteJobLogs', { logs }))).receipts;
  check(again.every((receipt) => receipt.duplicate), `the resend should answer duplicate: true, got ${again.map((r) => r.duplicate)}`);
  check(again.map((r) => r.seq).join() === first.map((r) => r.seq).join(), `the resend should answer the stored seqs, got ${again.map((r) => r.seq)}`);

  const { job_run: run } = await unary(clients.runs, 'GetJobRun', { job_run_id: runId });
  check(run.state === 'JOB_RUN_STATE_OPEN' && run.log_count === '3', `the run should be open with 3 logs, got ${run.state} with ${run.log_count}`);
  ok(`wrote 3 job logs to run ${runId} (seqs 1-3; the run exists since its first log); the resend answered duplicate: true with the same seqs`);
  return logs.length;
}

/** A server that is not there: UNAVAILABLE, retried with growing delays, then given up. */
async function retriesUnavailableWithBackoff(runId) {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => probe.once('listening', resolve));
  const deadAddress = `127.0.0.1:${probe.address().port}`;
  await new Promise((resolve) => probe.close(resolve)); // now nothing listens there

  const dead = new lw.JobLogService(deadAddress, grpc.credentials.createInsecure());
  const seen = [];
  const request = { logs: [checkEntry({ id: newId(), job_run_id: runId, message: 'never arrives' })] };
  const outcome = await withRetry(() => unary(dead, 'WriteJobLogs', request, { timeoutMs: 5000 }), { attempts: 4, firstBackoffMs: 50, seen }).catch((err) => err);
  dead.close();
  check(outcome.code === grpc.status.UNAVAILABLE, `expected UNAVAILABLE from ${deadAddress}, got ${outcome.code ?? 'success'}`);
  const delays = seen.map((retry) => retry.delayMs);
  check(seen.length === 3 && seen.every((retry) => retry.code === grpc.status.UNAVAILABLE), `expected 3 retries on UNAVAILABLE, saw ${JSON.stringify(seen)}`);
  check(delays.every((delay, i) => i === 0 || delay > delays[i - 1]), `backoff should grow, got ${delays}`);
  ok(`UNAVAILABLE retried 3 times with backoff ${delays.map((d) => `${d.toFixed(0)} ms`).join(', ')}, then given up`);
}

/** Writing faster than the server's rate limit: RESOURCE_EXHAUSTED + RetryInfo, honoured. */
async function retriesRateLimit(clients, runId, storedBefore, { batches = 3, size = 1000 } = {}) {
  const seen = [];
  const receipts = [];
  const started = Date.now();
  for (let batch = 0; batch < batches; batch++) {
    const logs = Array.from({ length: size }, (_, i) => checkEntry({ id: newId(), job_run_id: runId, message: `batch ${batch} line ${i}` }));
    receipts.push(...(await withRetry(() => unary(clients.jobs, 'WriteJobLogs', { logs }), { seen })).receipts);
  }
  const limited = seen.filter((retry) => retry.code === grpc.status.RESOURCE_EXHAUSTED).map((retry) => retry.delayMs);
  check(limited.length > 0, `${batches} batches of ${size} logs never met RESOURCE_EXHAUSTED with a RetryInfo: is the server rate-limited (--rate-limit-logs-per-second)? retries seen: ${JSON.stringify(seen)}`);
  check(new Set(receipts.map((r) => r.id)).size === batches * size, 'the receipts should name every log once');
  check(
    receipts.every((receipt, i) => Number(receipt.seq) === storedBefore + 1 + i),
    `seqs should run ${storedBefore + 1}..${storedBefore + batches * size} without gaps or repeats`,
  );
  ok(
    `wrote ${batches} x ${size} logs in ${((Date.now() - started) / 1000).toFixed(1)} s; the rate limit refused ${limited.length} times, ` +
      `retried after the server's RetryInfo delays (${limited.map((d) => `${(d / 1000).toFixed(2)} s`).join(', ')})`,
  );
  return storedBefore + batches * size;
}

/** INVALID_ARGUMENT carries google.rpc.BadRequest naming each offending field. */
async function decodesBadRequest(clients, runId) {
  async function fieldViolations(client, method, request) {
    const err = await unary(client, method, request).then(() => fail(`the server accepted ${JSON.stringify(request)}`), (err) => err);
    check(err.code === grpc.status.INVALID_ARGUMENT, `expected INVALID_ARGUMENT, got ${err.code}: ${err.details}`);
    const violations = statusDetails(err)
      .filter((detail) => detail.type === 'google.rpc.BadRequest')
      .flatMap((detail) => detail.value.field_violations);
    for (const { field, description } of violations) console.log(`    ${field}: ${description}`);
    return violations.map((violation) => violation.field);
  }

  // A task log must name its task run.
  const taskFields = await fieldViolations(clients.tasks, 'WriteTaskLog', { log: { job_run_id: runId, message: 'which task?' } });
  check(taskFields.join() === 'log.task_run_id', `expected a violation on log.task_run_id, got ${taskFields}`);
  // A level number outside LogLevel gets through protobufjs (a wrong *name*
  // would silently become INFO: checkEntry stops those); the server refuses it.
  const levelFields = await fieldViolations(clients.jobs, 'WriteJobLog', { log: { job_run_id: runId, message: 'too loud', level: 42 } });
  check(levelFields.join() === 'log.level', `expected a violation on log.level, got ${levelFields}`);
  ok('INVALID_ARGUMENT decoded: google.rpc.BadRequest named log.task_run_id and log.level');
}

/** ListLogs, one page at a time, until next_page_token is empty. */
async function pagesThrough(clients, runId, expected, pageSize = 500) {
  const seqs = [];
  let pages = 0;
  let pageToken = '';
  do {
    const page = await unary(clients.query, 'ListLogs', { job_run_id: runId, page_size: pageSize, page_token: pageToken });
    pages++;
    seqs.push(...page.logs.map((log) => Number(log.seq)));
    pageToken = page.next_page_token;
  } while (pageToken);
  check(seqs.length === expected, `expected ${expected} logs, paging found ${seqs.length}`);
  check(seqs.every((seq, i) => seq === i + 1), 'pages should hold seqs 1..N once each, in order');
  ok(`paged through ${expected} logs in ${pages} pages of at most ${pageSize}`);
}

/** Follow the run, disconnect, resume with after_seq, and see the run complete. */
async function followsAndResumes(clients, runId, history, { stopAfter = 100, live = 5 } = {}) {
  const deadline = () => ({ deadline: Date.now() + 60_000 });

  // First connection: read some logs, then go away (a crash, a deploy...).
  const received = [];
  const first = clients.stream.StreamLogs({ job_run_id: runId }, deadline());
  for await (const message of first) {
    if (message.event === 'log') received.push(message.log.seq);
    if (received.length === stopAfter) {
      // Leaving the loop does not end the call: cancel it, or the server keeps following for us.
      first.cancel();
      break;
    }
  }
  const lastSeq = received.at(-1);

  // Second connection: everything after the last seq we have, history then
  // live. When it has caught up, write a few more logs and complete the run.
  const resumed = [];
  let completion;
  for await (const message of clients.stream.StreamLogs({ job_run_id: runId, after_seq: lastSeq }, deadline())) {
    if (message.event === 'log') {
      resumed.push(Number(message.log.seq));
      if (Number(message.log.seq) === history) {
        const logs = Array.from({ length: live }, (_, i) => checkEntry({ id: newId(), job_run_id: runId, message: `live line ${i}` }));
        await withRetry(() => unary(clients.jobs, 'WriteJobLogs', { logs }));
        const done = { job_run_id: runId, outcome: 'JOB_RUN_OUTCOME_SUCCEEDED', summary: 'all good' };
        await withRetry(() => unary(clients.runs, 'CompleteJobRun', done));
      }
    } else if (message.event === 'completed') {
      completion = message.completed.job_run;
    } // a heartbeat only says the run is idle: nothing to do
  }
  const total = history + live;
  check(received.map(Number).every((seq, i) => seq === i + 1), `the first connection should get seqs 1..${stopAfter}`);
  check(
    resumed.length === total - Number(lastSeq) && resumed.every((seq, i) => seq === Number(lastSeq) + 1 + i),
    `the resumed stream should get seqs ${Number(lastSeq) + 1}..${total} exactly once`,
  );
  check(completion !== undefined, 'the stream ended without a completed event');
  check(completion.outcome === 'JOB_RUN_OUTCOME_SUCCEEDED', `expected JOB_RUN_OUTCOME_SUCCEEDED, got ${completion.outcome}`);
  check(Number(completion.log_count) === total, `the completed run should hold ${total} logs, says ${completion.log_count}`);
  ok(
    `followed seqs 1-${lastSeq}, resumed after_seq=${lastSeq} and got ${Number(lastSeq) + 1}-${total} exactly once; ` +
      `the stream ended with completed (${completion.outcome}, ${completion.log_count} logs)`,
  );
}

/** The traps: what protobufjs silently does with plausible input, read back from the server, and the fix. */
async function nodeTraps(clients) {
  const runId = newId(); // a run of its own, so the counts above stay simple
  const now = new Date();
  const wrong = [
    { message: 'level warn', level: 'warn' },
    { message: 'level WARN', level: 'WARN' },
    { message: 'level LOG_LEVEL_WARNING', level: 'LOG_LEVEL_WARNING', stream: 'stderr' },
    { message: 'plain metadata', metadata: { attempt: 2, build_id: '42' } },
    { message: 'snake_case Value', metadata: { fields: { build_id: { string_value: '42' } } } },
    { message: 'a Date', time: now },
  ];
  const right = [
    { message: 'level LOG_LEVEL_WARN', level: 'LOG_LEVEL_WARN', stream: 'LOG_STREAM_STDERR' },
    { message: 'toStruct metadata', metadata: toStruct({ attempt: 2, build_id: '42', tags: ['a', 'b'], cache: { hit: false, size: null } }) },
    { message: 'toTimestamp', time: toTimestamp(now) },
  ];
  // The guard catches every wrong entry before it is sent...
  for (const entry of wrong) {
    let refused;
    try {
      checkEntry(entry);
    } catch (err) {
      refused = err.message;
    }
    check(refused !== undefined, `checkEntry let ${JSON.stringify(entry)} through`);
    console.log(`    checkEntry refused "${entry.message}": ${refused}`);
  }
  // An empty Value is the one trap the server catches itself: INVALID_ARGUMENT
  // naming the key (so it cannot share a batch with the others).
  const snake = wrong.find((entry) => entry.message === 'snake_case Value');
  const refusal = await unary(clients.jobs, 'WriteJobLog', { log: { ...snake, job_run_id: runId } }).then(
    () => fail('an empty Value ({string_value}) was accepted'),
    (err) => err,
  );
  const refusedFields = statusDetails(refusal)
    .filter((detail) => detail.type === 'google.rpc.BadRequest')
    .flatMap((detail) => detail.value.field_violations.map((violation) => violation.field));
  check(refusal.code === grpc.status.INVALID_ARGUMENT && refusedFields.includes('log.metadata.build_id'), `an empty Value should be refused on log.metadata.build_id, got ${refusal.code} ${refusedFields}`);
  // ...and here is what the server would have stored of the others without it.
  const toWrite = [...wrong.filter((entry) => entry !== snake), ...right.map(checkEntry)];
  const logs = toWrite.map((entry) => ({ ...entry, id: newId(), job_run_id: runId }));
  await withRetry(() => unary(clients.jobs, 'WriteJobLogs', { logs }));
  const stored = Object.fromEntries((await unary(clients.query, 'ListLogs', { job_run_id: runId })).logs.map((log) => [log.message, log]));

  for (const message of ['level warn', 'level WARN', 'level LOG_LEVEL_WARNING']) {
    check(stored[message].level === 'LOG_LEVEL_INFO', `"${message}": expected it silently stored as LOG_LEVEL_INFO, got ${stored[message].level}`);
  }
  check(stored['level LOG_LEVEL_WARNING'].stream === 'LOG_STREAM_STDOUT', 'stream "stderr" should be silently stored as LOG_STREAM_STDOUT');
  check(stored['level LOG_LEVEL_WARN'].level === 'LOG_LEVEL_WARN' && stored['level LOG_LEVEL_WARN'].stream === 'LOG_STREAM_STDERR', 'wire names should be stored as sent');
  ok("enums: 'warn', 'WARN', 'LOG_LEVEL_WARNING' were stored as LOG_LEVEL_INFO and 'stderr' as LOG_STREAM_STDOUT; 'LOG_LEVEL_WARN' and 'LOG_STREAM_STDERR' as sent");

  check(Object.keys(stored['plain metadata'].metadata.fields).length === 0, 'a plain metadata object should be silently stored as {}');
  const metadata = fromStruct(stored['toStruct metadata'].metadata);
  const sent = { attempt: 2, build_id: '42', tags: ['a', 'b'], cache: { hit: false, size: null } };
  check(isDeepStrictEqual(metadata, sent), `toStruct metadata should come back as sent, got ${JSON.stringify(metadata)}`);
  ok(`metadata: a plain object was stored as {}, {string_value} refused on log.metadata.build_id; toStruct() came back as ${JSON.stringify(metadata)}`);

  check(stored['a Date'].time.seconds === '0' && stored['a Date'].time.nanos === 0, `a Date should be silently stored as 1970-01-01T00:00:00Z, got ${JSON.stringify(stored['a Date'].time)}`);
  const { seconds, nanos } = stored.toTimestamp.time;
  check(Number(seconds) * 1000 + nanos / 1e6 === now.getTime(), `toTimestamp() should store ${now.toISOString()}, got ${JSON.stringify(stored.toTimestamp.time)}`);
  ok(`time: a Date was stored as 1970-01-01T00:00:00Z; toTimestamp() stored ${now.toISOString()}`);

  // int64: strings with longs: String (compare as numbers: '10' < '9' as strings),
  // Long objects with the loader's defaults (which also give enums as numbers).
  const seq = stored.toTimestamp.seq;
  check(typeof seq === 'string' && Number(seq) === logs.length, `with longs: String, seq should be the string '${logs.length}', got ${JSON.stringify(seq)}`);
  const rawDefinition = protoLoader.loadSync(PROTO_FILES, { includeDirs: [PROTO_DIR] });
  const rawQuery = new (grpc.loadPackageDefinition(rawDefinition).logwell.v1.LogQueryService)(SERVER, grpc.credentials.createInsecure());
  const [raw] = (await unary(rawQuery, 'ListLogs', { jobRunId: runId, pageSize: 1 })).logs;
  rawQuery.close();
  check(typeof raw.seq === 'object' && raw.seq.toString() === '1' && raw.level === 3, `with the loader's defaults seq should be a Long and level a number, got ${JSON.stringify(raw.seq)}, ${raw.level}`);
  ok(`int64: seq arrived as the string '${seq}' (longs: String); with the loader's defaults as a Long ${JSON.stringify(raw.seq)} and the level as the number ${raw.level}`);

  // keepCase: true means the .proto's names; a camelCase name is silently dropped.
  const camel = await unary(clients.query, 'ListLogs', { job_run_id: runId, pageSize: 2 });
  check(camel.logs.length === logs.length, `pageSize (camelCase) should be ignored under keepCase: true, got ${camel.logs.length} logs`);
  ok(`field names: with keepCase: true, pageSize: 2 was ignored (${camel.logs.length} logs came back); page_size is the name`);
}

async function main() {
  const credentials = grpc.credentials.createInsecure();
  const clients = {
    jobs: new lw.JobLogService(SERVER, credentials),
    tasks: new lw.TaskLogService(SERVER, credentials),
    query: new lw.LogQueryService(SERVER, credentials),
    stream: new lw.LogStreamService(SERVER, credentials),
    runs: new lw.JobRunService(SERVER, credentials),
  };
  ok(`stubs loaded from ${PROTO_DIR}; server ${SERVER}`);
  const started = Date.now();

  // A job run comes into being with its first log: we just pick its id.
  const runId = newId();
  const stored = await writeWithClientIds(clients, runId);
  await retriesUnavailableWithBackoff(runId);
  const history = await retriesRateLimit(clients, runId, stored);
  await decodesBadRequest(clients, runId);
  await pagesThrough(clients, runId, history);
  await followsAndResumes(clients, runId, history);
  await nodeTraps(clients);

  for (const client of Object.values(clients)) client.close();
  console.log(`node example: all checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((err) => fail(err.stack ?? String(err)));
