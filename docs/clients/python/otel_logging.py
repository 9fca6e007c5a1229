#!/usr/bin/env python3
"""Python's standard logging, shipped to logwell by OpenTelemetry, and a test of it.

No logwell client: the OpenTelemetry SDK's logging handler batches the
records and exports them over OTLP/gRPC to logwell's port, or over
OTLP/HTTP to its --otlp-http-listen address. A service's logs become system
logs; a job's, carrying the OpenTelemetry CI/CD attribute
cicd.pipeline.run.id, job logs of that run (and with
cicd.pipeline.task.run.id, task logs). The second half reads them back with
ListLogs and checks each mapped field, exiting non-zero on a mismatch. It
runs once per transport: gRPC, and HTTP when LOGWELL_OTLP_HTTP is set. CI
runs it against a real server (.ci/client_examples.py).

    python3 -m pip install -r docs/clients/python/requirements.txt
    LOGWELL_SERVER=127.0.0.1:50051 LOGWELL_OTLP_HTTP=127.0.0.1:4318 \
        python3 docs/clients/python/otel_logging.py --stubs /tmp/logwell-stubs
"""

import argparse
import importlib
import logging
import os
import sys

import grpc
from google.protobuf import struct_pb2
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as OTLPHTTPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

SERVER = os.environ.get("LOGWELL_SERVER", "127.0.0.1:50051")
OTLP_HTTP = os.environ.get("LOGWELL_OTLP_HTTP")  # logwell's --otlp-http-listen, if set


# --- Shipping logs: all a service needs ---------------------------------------


def ship_to_logwell(logger_name, exporter, **resource):
    """A logger whose records `exporter` ships, from the resource `resource` describes."""
    provider = LoggerProvider(resource=Resource.create(resource))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(logger_provider=provider))
    return logger, provider


def grpc_exporter():
    """OTLP/gRPC, to logwell's port."""
    return OTLPLogExporter(endpoint=f"http://{SERVER}", insecure=True)


def http_exporter():
    """OTLP/HTTP, to logwell's --otlp-http-listen address."""
    return OTLPHTTPLogExporter(endpoint=f"http://{OTLP_HTTP}/v1/logs")


def readme_example():
    """The README's lines: a CI job's logger, over OTLP/gRPC."""
    job, job_provider = ship_to_logwell("build", grpc_exporter(), **{"service.name": "builder", "cicd.pipeline.run.id": "build-1234"})
    job.warning("cache miss, building from scratch", extra={"log.iostream": "stderr"})
    job_provider.shutdown()  # flushes: answered once committed


TRANSPORTS = {"grpc": grpc_exporter, "http": http_exporter}


def write_logs(transport):
    """The logs of a service and of a CI job, over `transport`. Each
    transport writes as its own instance and run, so that the checks see
    its records only."""
    exporter = TRANSPORTS[transport]
    service_resource = {"service.name": "billing", "service.instance.id": f"instance-{transport}"}
    service, service_provider = ship_to_logwell(f"billing.{transport}", exporter(), **service_resource)
    service.info("payment service started")
    service.warning("card processor slow", extra={"latency_ms": 1800})

    # A CI job: its run id is the CI system's own ("build-grpc"), not a UUID.
    job_resource = {"service.name": "builder", "service.instance.id": f"runner-{transport}", "cicd.pipeline.run.id": f"build-{transport}"}
    job, job_provider = ship_to_logwell(f"build.{transport}", exporter(), **job_resource)
    job.info("checking out sources")
    job.warning("cache miss, building from scratch", extra={"log.iostream": "stderr"})
    job.debug("compiling 120 files", extra={"cicd.pipeline.task.run.id": "compile"})
    try:
        raise ValueError("test database unreachable")
    except ValueError:
        job.exception("integration tests failed")

    # Answered once committed: after this, ListLogs sees every record.
    for provider in (service_provider, job_provider):
        provider.force_flush()
        provider.shutdown()


# --- Checking what logwell stored ---------------------------------------------


def fail(message):
    sys.exit(f"FAILED: {message}")


def check(condition, message):
    if not condition:
        fail(message)
    print(f"ok: {message}", flush=True)


def list_logs(stub, lw, source):
    request = lw.ListLogsRequest(filter=lw.LogFilter(sources=[source]), page_size=100)
    return list(stub.ListLogs(request).logs)


def load_stubs(stubs_dir):
    """logwell's generated messages and query stub, in one namespace."""
    sys.path.insert(0, stubs_dir)
    lw = argparse.Namespace()
    for module in ("log_pb2", "filter_pb2", "log_query_service_pb2", "log_query_service_pb2_grpc"):
        loaded = importlib.import_module(f"logwell.v1.{module}")
        for name in dir(loaded):
            if not name.startswith("_"):
                setattr(lw, name, getattr(loaded, name))
    return lw


def check_logs(lw, transport):
    print(f"--- over {transport}", flush=True)
    stub = lw.LogQueryServiceStub(grpc.insecure_channel(SERVER))
    service = {log.message: log for log in list_logs(stub, lw, f"billing/instance-{transport}")}
    check(set(service) == {"payment service started", "card processor slow"}, f"the service's two logs: {sorted(service)}")
    started, slow = service["payment service started"], service["card processor slow"]
    check(started.type == lw.LOG_TYPE_SYSTEM and started.stream == lw.LOG_STREAM_SYSTEM, "a service's logs are system logs")
    check(started.level == lw.LOG_LEVEL_INFO and slow.level == lw.LOG_LEVEL_WARN, "INFO and WARNING become info and warn")
    check(slow.metadata["latency_ms"] == 1800, "an extra attribute is metadata")
    check(started.metadata["otel.scope.name"] == f"billing.{transport}", "the logger's name is the scope")
    check(started.metadata["resource.telemetry.sdk.language"] == "python", "resource attributes are metadata under resource.")

    job = {log.message: log for log in list_logs(stub, lw, f"builder/runner-{transport}")}
    expected = {"checking out sources", "cache miss, building from scratch", "compiling 120 files", "integration tests failed"}
    check(set(job) == expected, f"the job's four logs: {sorted(job)}")
    runs = {log.job_run_id for log in job.values()}
    check(len(runs) == 1 and "" not in runs, f"one job run for build-{transport}: {runs}")
    check(job["checking out sources"].metadata["resource.cicd.pipeline.run.id"] == f"build-{transport}", "the CI system's run id is kept")
    check(job["checking out sources"].type == lw.LOG_TYPE_JOB, "cicd.pipeline.run.id makes a job log")
    check(job["checking out sources"].stream == lw.LOG_STREAM_STDOUT, "a job log's stream is stdout by default")
    check(job["cache miss, building from scratch"].stream == lw.LOG_STREAM_STDERR, "log.iostream stderr is the stderr stream")
    task = job["compiling 120 files"]
    check(task.type == lw.LOG_TYPE_TASK and task.task_run_id != "", "cicd.pipeline.task.run.id makes a task log")
    check(task.level == lw.LOG_LEVEL_DEBUG, "DEBUG becomes debug")
    failed = job["integration tests failed"]
    check(failed.level == lw.LOG_LEVEL_ERROR, "logger.exception is an error")
    check(failed.metadata["exception.type"] == "ValueError", "the exception's type is metadata")
    check("Traceback" in failed.metadata["exception.stacktrace"], "and its traceback")
    check(failed.time.seconds > 0, "the record's time")


def check_readme_example(lw):
    print("--- the README's lines", flush=True)
    stub = lw.LogQueryServiceStub(grpc.insecure_channel(SERVER))
    # The SDK names the instance (a random service.instance.id): ask by run.
    run = lw.MetadataCondition(key="resource.cicd.pipeline.run.id", equals=struct_pb2.Value(string_value="build-1234"))
    [log] = stub.ListLogs(lw.ListLogsRequest(filter=lw.LogFilter(metadata=[run]))).logs
    check(log.source.startswith("builder/"), f"the source is the service and the SDK's instance: {log.source}")
    check(log.message == "cache miss, building from scratch" and log.type == lw.LOG_TYPE_JOB, "the README's job log")
    check(log.stream == lw.LOG_STREAM_STDERR and log.level == lw.LOG_LEVEL_WARN, "on stderr, at warn")
    check(log.metadata["resource.cicd.pipeline.run.id"] == "build-1234", "of CI run build-1234")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stubs", default=os.environ.get("LOGWELL_STUBS"), required="LOGWELL_STUBS" not in os.environ)
    args = parser.parse_args()
    lw = load_stubs(args.stubs)
    readme_example()
    check_readme_example(lw)
    transports = ["grpc", "http"] if OTLP_HTTP else ["grpc"]
    for transport in transports:
        write_logs(transport)
        check_logs(lw, transport)
    print(f"otel logging: all checks passed over {' and '.join(transports)}", flush=True)


if __name__ == "__main__":
    main()
