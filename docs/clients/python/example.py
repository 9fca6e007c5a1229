#!/usr/bin/env python3
"""A logwell client in Python, written as a user would write one, and a test of it.

Every step checks what the server answered and exits non-zero with a message
saying what was not as expected. CI runs it against a real server
(.ci/client_examples.py); see docs/clients/README.md for the guide.

    python3 -m pip install -r docs/clients/python/requirements.txt
    mkdir -p /tmp/logwell-stubs
    python3 -m grpc_tools.protoc -I proto --python_out=/tmp/logwell-stubs \
        --grpc_python_out=/tmp/logwell-stubs proto/logwell/v1/*.proto
    LOGWELL_SERVER=127.0.0.1:50051 python3 docs/clients/python/example.py --stubs /tmp/logwell-stubs

The stubs folder may also come from LOGWELL_STUBS. If it holds no stubs yet,
the example generates them there with the same protoc command.
"""

import argparse
import importlib
import json
import os
import random
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

import grpc
import uuid6
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

SERVER = os.environ.get("LOGWELL_SERVER", "127.0.0.1:50051")
REPO_PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "proto")
lw = None  # the generated messages, enums and stubs, once load_stubs() has run


def fail(message):
    sys.exit(f"FAILED: {message}")


def check(condition, message):
    if not condition:
        fail(message)


def ok(message):
    print(f"ok: {message}", flush=True)


# --- Stubs --------------------------------------------------------------------


def load_stubs(stubs_dir, proto_dir):
    """Imports the generated modules, generating them first if the folder has none.

    Generated code is never committed: it belongs to the grpcio-tools version
    that made it, so each checkout generates its own.
    """
    if not os.path.exists(os.path.join(stubs_dir, "logwell", "v1", "log_pb2.py")):
        os.makedirs(stubs_dir, exist_ok=True)
        protos = [os.path.join("logwell", "v1", name) for name in sorted(os.listdir(os.path.join(proto_dir, "logwell", "v1")))]
        # `python -m grpc_tools.protoc` adds the bundled google/protobuf/*.proto
        # to the include path by itself (calling protoc.main() would not).
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={stubs_dir}", f"--grpc_python_out={stubs_dir}", *protos],
            check=True,
        )
    # The generated *_grpc.py files import "logwell.v1.log_pb2": the folder
    # must be on sys.path (the generated folders are namespace packages).
    sys.path.insert(0, stubs_dir)
    # One namespace for every message, enum and service stub, to keep the code
    # below short: lw.LogEntry, lw.LOG_LEVEL_WARN, lw.JobLogServiceStub.
    global lw
    lw = argparse.Namespace()
    for proto in ("log", "job_log_service", "task_log_service", "log_query_service", "log_stream_service", "job_run_service"):
        for module in (importlib.import_module(f"logwell.v1.{proto}_pb2"), importlib.import_module(f"logwell.v1.{proto}_pb2_grpc")):
            for name in dir(module):
                if not name.startswith("_"):
                    setattr(lw, name, getattr(module, name))


def new_id():
    """A client-chosen id: a UUIDv7, time-ordered, which keeps the server's index cheap."""
    return str(uuid6.uuid7())


# --- Retries ------------------------------------------------------------------


def retry_delay_hint(err):
    """The google.rpc.RetryInfo delay in seconds the server put in the status details, or None.

    The details travel in the grpc-status-details-bin trailer as a google.rpc.Status;
    grpc_status.rpc_status decodes it (and checks it matches the call's status).
    """
    status = rpc_status.from_call(err)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


def call_with_retry(rpc, request, *, attempts=8, first_backoff=0.1, max_delay=30.0, timeout=30.0, seen=None):
    """Calls a unary RPC, retrying what a retry can fix.

    UNAVAILABLE (server down or restarting, database unreachable: nothing was
    stored) is retried with exponential backoff and a little jitter.
    RESOURCE_EXHAUSTED is retried only when the server says when: a
    google.rpc.RetryInfo (rate limit, full write queue). Without one it is a
    hard limit (a request too large) and retrying cannot help.

    Retrying writes is safe because every log carries a client-chosen id: a
    resend of something already stored answers duplicate=true, stores nothing.
    `seen` (a list) records (code, delay) for each retry, to check and to log.
    """
    backoff = first_backoff
    for attempt in range(1, attempts + 1):
        try:
            return rpc(request, timeout=timeout)
        except grpc.RpcError as err:
            code = err.code()
            if code == grpc.StatusCode.UNAVAILABLE:
                delay = backoff * random.uniform(0.9, 1.1)
                backoff *= 2
            elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and (hint := retry_delay_hint(err)) is not None:
                delay = hint
            else:
                raise
            if attempt == attempts:
                raise
            if seen is not None:
                seen.append((code, delay))
            time.sleep(min(delay, max_delay))


# --- the steps ----------------------------------------------------------------


def write_with_client_ids(job_logs, runs_stub, run_id):
    """Job logs with our own ids; resending the batch stores nothing new."""
    # A job run comes into being with its first log: until then it is unknown.
    try:
        runs_stub.GetJobRun(lw.GetJobRunRequest(job_run_id=run_id), timeout=10)
        fail(f"a fresh run {run_id} should be NOT_FOUND before its first log")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.NOT_FOUND, f"a fresh run should be NOT_FOUND, got {err.code()}")

    entries = [
        # time: when it happened, by our clock (the server's receipt time if
        # unset). The constructor takes an aware datetime for a Timestamp.
        lw.LogEntry(id=new_id(), job_run_id=run_id, stream=lw.LOG_STREAM_SYSTEM, source="runner-3", message="job started", time=datetime.now(timezone.utc)),
        lw.LogEntry(id=new_id(), job_run_id=run_id, level=lw.LOG_LEVEL_WARN, stream=lw.LOG_STREAM_STDERR, source="runner-3", message="cache miss, building from scratch"),
        # metadata is a google.protobuf.Struct; the constructor takes a dict
        # (or call entry.metadata.update(d)). Ids and large integers go as
        # strings: Struct numbers are doubles.
        lw.LogEntry(
            id=new_id(), job_run_id=run_id, source="runner-3", message="built",
            metadata={"attempt": 2, "build_id": "9007199254740993", "as_number": 9007199254740993, "cached": False},
        ),
    ]
    # Enum names are checked here, not silently turned into a default.
    try:
        lw.LogEntry(level="warn")
        fail('LogEntry(level="warn") was accepted')
    except ValueError:
        pass

    first = call_with_retry(job_logs.WriteJobLogs, lw.WriteJobLogsRequest(logs=entries)).receipts
    check([r.id for r in first] == [e.id for e in entries], f"receipts carry other ids than ours: {[r.id for r in first]}")
    check([r.seq for r in first] == [1, 2, 3], f"a new run should get seqs 1, 2, 3, got {[r.seq for r in first]}")
    check(not any(r.duplicate for r in first), "the first write answered duplicate=true")

    # A client that timed out cannot know whether the batch was stored: it resends.
    again = call_with_retry(job_logs.WriteJobLogs, lw.WriteJobLogsRequest(logs=entries)).receipts
    check(all(r.duplicate for r in again), f"the resend should answer duplicate=true for every log, got {[r.duplicate for r in again]}")
    check([r.seq for r in again] == [r.seq for r in first], f"the resend should answer the stored seqs {[r.seq for r in first]}, got {[r.seq for r in again]}")

    run = runs_stub.GetJobRun(lw.GetJobRunRequest(job_run_id=run_id), timeout=10).job_run
    check(run.state == lw.JOB_RUN_STATE_OPEN and run.log_count == 3, f"the run should be open with 3 logs, got {lw.JobRunState.Name(run.state)} with {run.log_count}")
    ok(f"wrote 3 job logs to run {run_id} (seqs 1-3; the run exists since its first log); the resend answered duplicate=true with the same seqs")
    return entries


def numbers_come_back_as_floats(query_stub, entry):
    """Struct numbers are JSON doubles: integers come back as floats, large ones rounded."""
    stored = query_stub.GetLog(lw.GetLogRequest(id=entry.id)).log
    metadata = json_format.MessageToDict(stored.metadata)
    check(metadata["attempt"] == 2 and isinstance(metadata["attempt"], float), f"expected attempt 2.0 (a float), got {metadata['attempt']!r}")
    check(metadata["build_id"] == "9007199254740993", f"the id sent as a string should come back exact, got {metadata['build_id']!r}")
    check(metadata["as_number"] == 9007199254740992.0, f"9007199254740993 as a number should come back as ...992.0, got {metadata['as_number']!r}")
    check(metadata["cached"] is False, f"expected cached False, got {metadata['cached']!r}")
    ok(f"metadata read back as {json.dumps(metadata, sort_keys=True)}: integers are floats, send ids as strings")


def retries_unavailable_with_backoff(run_id):
    """A server that is not there: UNAVAILABLE, retried with growing delays, then given up."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_address = "127.0.0.1:%d" % probe.getsockname()[1]
    with grpc.insecure_channel(dead_address) as channel:
        seen = []
        request = lw.WriteJobLogsRequest(logs=[lw.LogEntry(id=new_id(), job_run_id=run_id, message="never arrives")])
        try:
            call_with_retry(lw.JobLogServiceStub(channel).WriteJobLogs, request, attempts=4, first_backoff=0.05, timeout=5, seen=seen)
            fail(f"a write to {dead_address}, where nothing listens, succeeded")
        except grpc.RpcError as err:
            check(err.code() == grpc.StatusCode.UNAVAILABLE, f"expected UNAVAILABLE from {dead_address}, got {err.code()}")
    delays = [delay for _, delay in seen]
    check(len(seen) == 3 and all(code == grpc.StatusCode.UNAVAILABLE for code, _ in seen), f"expected 3 retries on UNAVAILABLE, saw {seen}")
    check(all(later > earlier for earlier, later in zip(delays, delays[1:])), f"backoff should grow, got {delays}")
    ok(f"UNAVAILABLE retried 3 times with backoff {', '.join('%.3f s' % d for d in delays)}, then given up")


def retries_rate_limit(job_logs, run_id, stored_before, batches=3, size=1000):
    """Writing faster than the server's rate limit: RESOURCE_EXHAUSTED + RetryInfo, honoured."""
    seen, receipts = [], []
    started = time.monotonic()
    for batch in range(batches):
        entries = [lw.LogEntry(id=new_id(), job_run_id=run_id, message=f"batch {batch} line {i}") for i in range(size)]
        receipts += call_with_retry(job_logs.WriteJobLogs, lw.WriteJobLogsRequest(logs=entries), seen=seen).receipts
    limited = [delay for code, delay in seen if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    check(limited, f"{batches} batches of {size} logs never met RESOURCE_EXHAUSTED with a RetryInfo: is the server rate-limited (--rate-limit-logs-per-second)? retries seen: {seen}")
    seqs = [r.seq for r in receipts]
    check(len(set(r.id for r in receipts)) == batches * size, "receipts should name every log once")
    expected = list(range(stored_before + 1, stored_before + batches * size + 1))
    check(seqs == expected, f"seqs should run {expected[0]}..{expected[-1]} without gaps or repeats")
    ok(
        f"wrote {batches} x {size} logs in {time.monotonic() - started:.1f} s; the rate limit refused {len(limited)} times, "
        f"retried after the server's RetryInfo delays ({', '.join('%.2f s' % d for d in limited)})"
    )
    return stored_before + batches * size


def decodes_bad_request(job_logs, task_logs, run_id):
    """INVALID_ARGUMENT carries google.rpc.BadRequest naming each offending field."""

    def field_violations(rpc, request):
        try:
            rpc(request, timeout=10)
        except grpc.RpcError as err:
            check(err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"expected INVALID_ARGUMENT, got {err.code()}: {err.details()}")
            violations = []
            for detail in rpc_status.from_call(err).details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad_request = error_details_pb2.BadRequest()
                    detail.Unpack(bad_request)
                    violations += [(v.field, v.description) for v in bad_request.field_violations]
            return violations
        fail(f"the server accepted {request}")

    # A task log must name its task run.
    violations = field_violations(task_logs.WriteTaskLog, lw.WriteTaskLogRequest(log=lw.LogEntry(job_run_id=run_id, message="which task?")))
    for field, description in violations:
        print(f"    {field}: {description}")
    check([f for f, _ in violations] == ["log.task_run_id"], f"expected a violation on log.task_run_id, got {violations}")

    # A level that is not in LogLevel (Python's protobuf lets any int through; the server does not).
    violations = field_violations(job_logs.WriteJobLog, lw.WriteJobLogRequest(log=lw.LogEntry(job_run_id=run_id, message="too loud", level=42)))
    for field, description in violations:
        print(f"    {field}: {description}")
    check([f for f, _ in violations] == ["log.level"], f"expected a violation on log.level, got {violations}")
    ok("INVALID_ARGUMENT decoded: google.rpc.BadRequest named log.task_run_id and log.level")


def pages_through(query_stub, run_id, expected, page_size=500):
    """ListLogs, one page at a time, until next_page_token is empty."""
    seqs, pages, token = [], 0, ""
    while True:
        page = query_stub.ListLogs(lw.ListLogsRequest(job_run_id=run_id, page_size=page_size, page_token=token), timeout=30)
        pages += 1
        seqs += [log.seq for log in page.logs]
        token = page.next_page_token
        if not token:
            break
    check(len(seqs) == expected, f"expected {expected} logs, paging found {len(seqs)}")
    check(seqs == list(range(1, expected + 1)), "pages should hold seqs 1..N once each, in order")
    ok(f"paged through {expected} logs in {pages} pages of at most {page_size}")


def follows_and_resumes(job_logs, stream_stub, runs_stub, run_id, history, stop_after=100, live=5):
    """Follow the run, disconnect, resume with after_seq, and see the run complete."""
    # First connection: read some logs, then go away (a crash, a deploy...).
    first = stream_stub.StreamLogs(lw.StreamLogsRequest(job_run_id=run_id), timeout=60)
    received = []
    for message in first:
        if message.WhichOneof("event") == "log":
            received.append(message.log.seq)
            if len(received) == stop_after:
                break
    first.cancel()  # leaving the loop does not end the call: cancel it, or the server keeps following for us
    last_seq = received[-1]

    # Second connection: everything after the last seq we have, history then
    # live. When it has caught up, write a few more logs and complete the run.
    resumed, completion = [], None
    for message in stream_stub.StreamLogs(lw.StreamLogsRequest(job_run_id=run_id, after_seq=last_seq), timeout=60):
        event = message.WhichOneof("event")
        if event == "log":
            resumed.append(message.log.seq)
            if message.log.seq == history:
                entries = [lw.LogEntry(id=new_id(), job_run_id=run_id, message=f"live line {i}") for i in range(live)]
                call_with_retry(job_logs.WriteJobLogs, lw.WriteJobLogsRequest(logs=entries))
                done = lw.CompleteJobRunRequest(job_run_id=run_id, outcome=lw.JOB_RUN_OUTCOME_SUCCEEDED, summary="all good")
                call_with_retry(runs_stub.CompleteJobRun, done)
        elif event == "completed":
            completion = message.completed.job_run
        # A heartbeat would only say the run is idle: nothing to do.
    total = history + live
    check(received == list(range(1, stop_after + 1)), f"the first connection should get seqs 1..{stop_after}")
    check(resumed == list(range(last_seq + 1, total + 1)), f"the resumed stream should get seqs {last_seq + 1}..{total} exactly once")
    check(completion is not None, "the stream ended without a completed event")
    check(completion.outcome == lw.JOB_RUN_OUTCOME_SUCCEEDED, f"expected JOB_RUN_OUTCOME_SUCCEEDED, got {lw.JobRunOutcome.Name(completion.outcome)}")
    check(completion.log_count == total, f"the completed run should hold {total} logs, says {completion.log_count}")
    ok(
        f"followed seqs 1-{last_seq}, resumed after_seq={last_seq} and got {last_seq + 1}-{total} exactly once; "
        f"the stream ended with completed ({lw.JobRunOutcome.Name(completion.outcome)}, {completion.log_count} logs)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stubs", default=os.environ.get("LOGWELL_STUBS"), help="folder of the generated stubs (or LOGWELL_STUBS)")
    parser.add_argument("--proto-dir", default=os.environ.get("LOGWELL_PROTO_DIR", REPO_PROTO_DIR), help="the proto/ folder, to generate stubs")
    args = parser.parse_args()
    if not args.stubs:
        parser.error("say where the generated stubs are (or go): --stubs DIR or LOGWELL_STUBS=DIR")
    load_stubs(args.stubs, args.proto_dir)
    ok(f"stubs loaded from {args.stubs}; server {SERVER}")

    # A job run comes into being with its first log: we just pick its id.
    run_id = new_id()
    started = time.monotonic()
    try:
        run_steps(run_id)
    except grpc.RpcError as err:  # one the steps did not expect
        fail(f"{err.code().name} from {SERVER}: {err.details()}")
    print(f"python example: all checks passed in {time.monotonic() - started:.1f} s")


def run_steps(run_id):
    with grpc.insecure_channel(SERVER) as channel:
        job_logs = lw.JobLogServiceStub(channel)
        task_logs = lw.TaskLogServiceStub(channel)
        query_stub = lw.LogQueryServiceStub(channel)
        stream_stub = lw.LogStreamServiceStub(channel)
        runs_stub = lw.JobRunServiceStub(channel)

        entries = write_with_client_ids(job_logs, runs_stub, run_id)
        numbers_come_back_as_floats(query_stub, entries[2])
        retries_unavailable_with_backoff(run_id)
        history = retries_rate_limit(job_logs, run_id, stored_before=len(entries))
        decodes_bad_request(job_logs, task_logs, run_id)
        pages_through(query_stub, run_id, expected=history)
        follows_and_resumes(job_logs, stream_stub, runs_stub, run_id, history)


if __name__ == "__main__":
    main()
