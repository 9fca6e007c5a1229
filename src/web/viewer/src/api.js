// The gRPC-Web clients, with the token the reader entered (kept in this
// tab's session storage, never in the URL), and what their errors mean.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { JobRunService } from "../gen/logwell/v1/job_run_service_pb.js";
import { LogQueryService } from "../gen/logwell/v1/log_query_service_pb.js";
import { LogStreamService } from "../gen/logwell/v1/log_stream_service_pb.js";

const TOKEN_KEY = "logwell.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? "",
  set(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

const withToken = (next) => (request) => {
  const value = token.get();
  if (value) request.header.set("authorization", `Bearer ${value}`);
  return next(request);
};

const transport = createGrpcWebTransport({ baseUrl: location.origin, interceptors: [withToken] });

export const jobRuns = createClient(JobRunService, transport);
export const logQuery = createClient(LogQueryService, transport);
export const logStream = createClient(LogStreamService, transport);
export { Code };

/** An error as a status code and one line for the reader. */
export function explain(error) {
  const status = ConnectError.from(error);
  const name = Code[status.code] ?? "Unknown";
  const hints = {
    [Code.Unauthenticated]: " (enter a token with the Token button)",
    [Code.PermissionDenied]: " (this token does not allow it)",
  };
  return { code: status.code, text: `${name}: ${status.rawMessage}${hints[status.code] ?? ""}` };
}

/** Errors a retry cannot mend: the reader has to act. */
export function isFinal(code) {
  return [Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument, Code.NotFound, Code.FailedPrecondition].includes(code);
}
