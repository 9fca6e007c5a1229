#!/usr/bin/env python3
"""Runs the client examples of docs/clients/ against a freshly started `logwell serve`.

The Python examples are two: a logwell client (example.py), and Python's
standard logging shipped by OpenTelemetry over OTLP/gRPC and OTLP/HTTP
(otel_logging.py), whose lines include the README's snippet.

The examples are tests: each checks what the server answered and exits
non-zero saying what was not as expected. This script installs what they
need (pip requirements, generated Python stubs, npm packages), starts the
server on a free port with a temporary SQLite database and a rate limit low
enough that the examples' 3 x 1,000-log writes meet RESOURCE_EXHAUSTED, runs
both examples with LOGWELL_SERVER pointing at it, and stops the server with
SIGTERM. Exit status: non-zero if any example failed.

    LOGWELL_BINARY=target/release/logwell python3 .ci/client_examples.py

Stdlib only (Python 3.11).
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENTS = os.path.join(REPO, "docs", "clients")
PYTHON_DIR = os.path.join(CLIENTS, "python")
NODE_DIR = os.path.join(CLIENTS, "node")
PROTO_DIR = os.path.join(REPO, "proto")
BINARY = os.path.join(REPO, os.environ.get("LOGWELL_BINARY", os.path.join("target", "release", "logwell")))
# Low enough that 3 batches of 1,000 logs written back to back are refused
# with RESOURCE_EXHAUSTED + RetryInfo (the burst holds one batch), high
# enough that the waits stay short (2 s a batch).
RATE_LIMIT = ["--rate-limit-logs-per-second", "500", "--rate-limit-burst-logs", "1000"]
EXAMPLE_TIMEOUT = 120


def step(message):
    print(f"--- {message}", flush=True)


def run(command, **kwargs):
    """Runs a setup command; on failure prints its output and exits."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def install_python_requirements():
    step("pip install -r docs/clients/python/requirements.txt")
    run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore", "-r", os.path.join(PYTHON_DIR, "requirements.txt")])


def generate_python_stubs(out_dir):
    step(f"python -m grpc_tools.protoc -I proto ... into {out_dir}")
    os.makedirs(out_dir, exist_ok=True)  # protoc does not create it
    protos = sorted(os.path.relpath(path, PROTO_DIR) for path in glob.glob(os.path.join(PROTO_DIR, "logwell", "v1", "*.proto")))
    run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *protos])


def install_node_packages():
    """npm ci, unless node_modules already matches package-lock.json.

    npm keeps a copy of the lock it installed as node_modules/.package-lock.json;
    it is stale when the lock file (or package.json) is newer.
    """
    installed = os.path.join(NODE_DIR, "node_modules", ".package-lock.json")
    sources = [os.path.join(NODE_DIR, name) for name in ("package.json", "package-lock.json")]
    if os.path.exists(installed) and all(os.path.getmtime(installed) >= os.path.getmtime(source) for source in sources):
        step("docs/clients/node/node_modules is up to date")
        return
    if not shutil.which("npm"):
        sys.exit("npm is not installed: the Node example needs Node 20 and npm")
    step("npm ci in docs/clients/node")
    run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(workdir):
    if not os.path.exists(BINARY):
        sys.exit(f"no server binary at {BINARY}: run cargo build, or set LOGWELL_BINARY")
    port = free_port()
    address = f"127.0.0.1:{port}"
    otlp_http = f"127.0.0.1:{free_port()}"
    log_path = os.path.join(workdir, "server.log")
    command = [BINARY, "serve", "--listen", address, "--otlp-http-listen", otlp_http, "--database-url", f"sqlite:{os.path.join(workdir, 'logwell.db')}", *RATE_LIMIT]
    step(" ".join(command))
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    # Poll until it accepts connections (migrations run before it listens).
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            sys.exit(f"logwell serve exited with {server.returncode}:\n{open(log_path).read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, address, otlp_http, log_path
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                sys.exit(f"logwell serve did not listen on {address} within 30 s:\n{open(log_path).read()}")
            time.sleep(0.05)


def stop_server(server):
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


def run_example(name, command, cwd, env):
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT)
        code, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as timeout:
        # What it printed before it was killed (bytes here, despite text=True).
        printed = [part.decode(errors="replace") if isinstance(part, bytes) else part for part in (timeout.stdout, timeout.stderr) if part]
        code, output = "timeout", "".join(printed) + f"\n(killed after {EXAMPLE_TIMEOUT} s)"
    passed = code == 0
    step(f"{name} example {'passed' if passed else 'FAILED (exit %s)' % code} in {time.monotonic() - started:.1f} s: {' '.join(command)}")
    print(output.rstrip(), flush=True)
    return passed


def readme_snippet_is_in_otel_example():
    """The README's "ship Python logging" snippet is otel_logging.py's, line for line, so running that runs it."""
    readme = open(os.path.join(REPO, "README.md")).read()
    snippet = readme.split("<!-- ci:otel-python -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    example = {line.strip() for line in open(os.path.join(PYTHON_DIR, "otel_logging.py"))}
    missing = [line for line in snippet.splitlines() if line.strip() and line.strip() not in example]
    step(f"the README's OpenTelemetry snippet is in otel_logging.py: {'yes' if not missing else 'NO, missing ' + repr(missing)}")
    return not missing


def main():
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="logwell-clients-")
    stubs = os.path.join(workdir, "python-stubs")
    install_python_requirements()
    generate_python_stubs(stubs)
    install_node_packages()
    print(f"--- setup took {time.monotonic() - started:.1f} s", flush=True)

    server, address, otlp_http, log_path = start_server(workdir)
    results = {}
    try:
        env = dict(os.environ, LOGWELL_SERVER=address, LOGWELL_OTLP_HTTP=otlp_http)
        results["python"] = run_example("python", [sys.executable, "example.py", "--stubs", stubs], PYTHON_DIR, env)
        otel = [sys.executable, "otel_logging.py", "--stubs", stubs]
        results["python otel logging"] = readme_snippet_is_in_otel_example() and run_example("python otel logging", otel, PYTHON_DIR, env)
        results["node"] = run_example("node", ["node", "example.js"], NODE_DIR, env)
    finally:
        code = stop_server(server)
    if code != 0:
        print(f"--- logwell serve exited with {code} after SIGTERM")
    if not all(results.values()) or code != 0:
        print(f"--- server log ({log_path}):\n{open(log_path).read()}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    passed = sum(results.values())
    print(f"--- took {time.monotonic() - started:.1f} s")
    print(f"client examples: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) and code == 0 else 1)


if __name__ == "__main__":
    main()
