/**
 * Failures of the Docker transport, each with a `reason` saying what happened. Backends translate them into
 * core's `CloudError` at their boundary.
 */
import { Schema } from "effect"

/** No engine answers on the socket (not installed, not started, wrong `DOCKER_HOST`). */
export class EngineUnreachable extends Schema.TaggedError<EngineUnreachable>()("EngineUnreachable", {
  message: Schema.String
}) {}

/** The engine has no such container, image or network. */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { message: Schema.String }) {}

/** A build, import or push reported an error in its progress stream. */
export class StreamFailed extends Schema.TaggedError<StreamFailed>()("StreamFailed", { message: Schema.String }) {}

/** Any other refusal of the engine (conflict, bad request, server error). */
export class Refused extends Schema.TaggedError<Refused>()("Refused", {
  message: Schema.String,
  statusCode: Schema.optionalKey(Schema.Number)
}) {}

/**
 * A container or network of the name asked for exists but lacks the labels that make it ours: it is someone
 * else's, and is left alone.
 */
export class NotOurs extends Schema.TaggedError<NotOurs>()("NotOurs", {
  /** `container` or `network`. */
  kind: Schema.String,
  name: Schema.String,
  /** The labels it should carry, `key=value`. */
  expected: Schema.String
}) {
  override get message(): string {
    return `the ${this.kind} ${this.name} is not ours (it lacks the label ${this.expected}): it is left alone`
  }
}

export const Reason = Schema.Union([EngineUnreachable, NotFound, StreamFailed, Refused, NotOurs])
export type Reason = typeof Reason.Type

export class DockerError extends Schema.TaggedError<DockerError>()("DockerError", {
  /** What was asked of the engine: `run teztcloud-ns-a`, `build debian`, … */
  operation: Schema.String,
  reason: Reason,
  /** The engine's own error (dockerode's, with its status code and body), out of the message. */
  cause: Schema.optionalKey(Schema.Defect())
}) {
  override get message(): string {
    return `docker ${this.operation}: ${this.reason.message}`
  }
}

/** Classifies a dockerode rejection. */
export const fromCause = (operation: string, cause: unknown): DockerError => {
  const e = cause as { message?: string; statusCode?: number; code?: string; json?: { message?: string } }
  const message = e?.json?.message ?? e?.message ?? String(cause)
  const reason = e?.code === "ENOENT" || e?.code === "ECONNREFUSED" || e?.code === "EACCES"
    ? new EngineUnreachable({ message })
    : e?.statusCode === 404
    ? new NotFound({ message })
    : new Refused({ message, ...(typeof e?.statusCode === "number" ? { statusCode: e.statusCode } : {}) })
  return new DockerError({ operation, reason, cause })
}
