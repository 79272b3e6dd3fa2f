/**
 * The one error type that crosses core's public API. Each failure carries a `reason` that says what happened;
 * recover with `Effect.catchReason`/`catchTag` on the reason's tag, never by matching message text.
 *
 * **Details**
 *
 * The `message` is one line for users. The error underneath (a Node error with its errno code, an ssh2 or
 * dockerode error, a schema issue…) is kept as the `cause`, out of that line: `Cause.pretty` shows it, and so do
 * `details` (for `--log-level debug`) and the `events.jsonl` of a run. Every constructor takes it:
 * `CloudError.copy(agent, source, CloudError.messageOf(e), { cause: e })`.
 */
import { Effect, Schema } from "effect"

/** A CLI option, a config-file key or an environment variable has a value we cannot use. */
export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>()("ConfigInvalid", {
  option: Schema.String,
  message: Schema.String
}) {}

/** The scenario asks for agents we refuse to create (duplicate names, over `--vms-limit`, …). */
export class AgentsInvalid extends Schema.TaggedError<AgentsInvalid>()("AgentsInvalid", {
  message: Schema.String
}) {}

/** The backend could not create or reach an agent. */
export class DeployFailed extends Schema.TaggedError<DeployFailed>()("DeployFailed", {
  agent: Schema.String,
  message: Schema.String
}) {}

/** A command could not be started or followed on an agent (not: it exited non-zero). */
export class CommandFailed extends Schema.TaggedError<CommandFailed>()("CommandFailed", {
  agent: Schema.String,
  command: Schema.String,
  message: Schema.String
}) {}

/** A command ran and exited with a non-zero code where success was required. */
export class NonZeroExit extends Schema.TaggedError<NonZeroExit>()("NonZeroExit", {
  agent: Schema.String,
  command: Schema.String,
  exitCode: Schema.Number,
  stderr: Schema.String
}) {}

/** Copying files to an agent failed. */
export class CopyFailed extends Schema.TaggedError<CopyFailed>()("CopyFailed", {
  agent: Schema.String,
  source: Schema.String,
  message: Schema.String
}) {}

/** Reading or writing the local state (ledger, artifacts, keys) failed. */
export class StateFailed extends Schema.TaggedError<StateFailed>()("StateFailed", {
  path: Schema.String,
  message: Schema.String
}) {}

/** A feature exists in the CLI but its backend or subsystem is not built yet. */
export class NotAvailable extends Schema.TaggedError<NotAvailable>()("NotAvailable", {
  feature: Schema.String,
  message: Schema.String
}) {}

/** A pushed metric Prometheus would not accept (bad name, label or type); nothing was recorded. */
export class MetricInvalid extends Schema.TaggedError<MetricInvalid>()("MetricInvalid", {
  metric: Schema.String,
  message: Schema.String
}) {}

/** A run-level service (website, Prometheus, Grafana, an exporter) could not start, answer or do what was asked. */
export class ServiceFailed extends Schema.TaggedError<ServiceFailed>()("ServiceFailed", {
  service: Schema.String,
  message: Schema.String
}) {}

/** The scenario body failed; `message` is the rendered cause. */
export class ScenarioFailed extends Schema.TaggedError<ScenarioFailed>()("ScenarioFailed", {
  title: Schema.String,
  message: Schema.String
}) {}

/** A success criterion the run cannot judge (see `Verdict`): invalid, a duplicate, or no Prometheus to judge it. */
export class CriterionInvalid extends Schema.TaggedError<CriterionInvalid>()("CriterionInvalid", {
  criterion: Schema.String,
  message: Schema.String
}) {}

/** The scenario ended, but success criteria were not met; `message` names them with their values. */
export class CriteriaFailed extends Schema.TaggedError<CriteriaFailed>()("CriteriaFailed", {
  title: Schema.String,
  message: Schema.String
}) {}

export const Reason = Schema.Union([
  ConfigInvalid,
  AgentsInvalid,
  DeployFailed,
  CommandFailed,
  NonZeroExit,
  CopyFailed,
  StateFailed,
  NotAvailable,
  MetricInvalid,
  ServiceFailed,
  ScenarioFailed,
  CriterionInvalid,
  CriteriaFailed
])
export type Reason = typeof Reason.Type

/**
 * The error of every core service. `message` is the one line shown to users; `cause`, the error underneath.
 *
 * @category errors
 */
export class CloudError extends Schema.TaggedError<CloudError>()("CloudError", {
  reason: Reason,
  cause: Schema.optionalKey(Schema.Defect())
}) {
  override get message(): string {
    return describe(this.reason)
  }
}

/** The one-line, user-facing text of a reason. */
export const describe = (reason: Reason): string => {
  switch (reason._tag) {
    case "ConfigInvalid":
      return `${reason.option}: ${reason.message}`
    case "AgentsInvalid":
      return reason.message
    case "DeployFailed":
      return `agent ${reason.agent}: deployment failed: ${reason.message}`
    case "CommandFailed":
      return `agent ${reason.agent}: ${reason.command}: ${reason.message}`
    case "NonZeroExit":
      return `agent ${reason.agent}: ${reason.command} exited with code ${reason.exitCode}${
        reason.stderr.trim() === "" ? "" : `: ${lastLine(reason.stderr)}`
      }`
    case "CopyFailed":
      return `agent ${reason.agent}: copy of ${reason.source} failed: ${reason.message}`
    case "StateFailed":
      return `${reason.path}: ${reason.message}`
    case "NotAvailable":
      return `${reason.feature} is not available yet: ${reason.message}`
    case "MetricInvalid":
      return `metric ${reason.metric}: ${reason.message}`
    case "ServiceFailed":
      return `${reason.service}: ${reason.message}`
    case "ScenarioFailed":
      return `${reason.title}: ${reason.message}`
    case "CriterionInvalid":
      return `criterion ${JSON.stringify(reason.criterion)}: ${reason.message}`
    case "CriteriaFailed":
      return `${reason.title}: ${reason.message}`
  }
}

const lastLine = (text: string): string => text.trim().split("\n").at(-1) ?? ""

/** What a constructor may add to the reason: the error underneath. */
export interface Options {
  readonly cause?: unknown
}

const make = (reason: Reason, options: Options | undefined) =>
  new CloudError(options?.cause === undefined ? { reason } : { reason, cause: options.cause })

/** Shorthand constructors: `CloudError.config("--vms-limit", "must be ≥ 0")`, `CloudError.state(file, m, { cause })`. */
export const config = (option: string, message: string, options?: Options) =>
  make(new ConfigInvalid({ option, message }), options)
export const agents = (message: string, options?: Options) => make(new AgentsInvalid({ message }), options)
export const deploy = (agent: string, message: string, options?: Options) =>
  make(new DeployFailed({ agent, message }), options)
export const command = (agent: string, commandLine: string, message: string, options?: Options) =>
  make(new CommandFailed({ agent, command: commandLine, message }), options)
export const copy = (agent: string, source: string, message: string, options?: Options) =>
  make(new CopyFailed({ agent, source, message }), options)
export const state = (path: string, message: string, options?: Options) =>
  make(new StateFailed({ path, message }), options)
export const notAvailable = (feature: string, message: string, options?: Options) =>
  make(new NotAvailable({ feature, message }), options)
export const metric = (name: string, message: string, options?: Options) =>
  make(new MetricInvalid({ metric: name, message }), options)
export const service = (name: string, message: string, options?: Options) =>
  make(new ServiceFailed({ service: name, message }), options)
export const criterion = (name: string, message: string, options?: Options) =>
  make(new CriterionInvalid({ criterion: name, message }), options)

/** The message of an unknown thrown value. */
export const messageOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause)

/**
 * The errors under `error`, outermost first, as a developer reads them: each one's stack (else its name and
 * message), with its `code` when the stack does not say it (ENOENT, ECONNREFUSED…). `undefined` when there is
 * none: for `--log-level debug` and `events.jsonl`, never for the one-line message.
 */
export const details = (error: unknown): string | undefined => {
  const parts: Array<string> = []
  const seen = new Set<unknown>([error])
  let current = causeOf(error)
  while (current !== undefined && !seen.has(current)) {
    seen.add(current)
    parts.push(describeCause(current))
    current = causeOf(current)
  }
  return parts.length === 0 ? undefined : parts.map((part) => `caused by ${part}`).join("\n")
}

/** Logs a failure's one line and `details` at debug level (`--log-level debug`), when it has a cause. */
export const logDetails = (error: unknown): Effect.Effect<void> => {
  const text = details(error)
  return text === undefined ? Effect.void : Effect.logDebug(`${messageOf(error)}\n${text}`)
}

const causeOf = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "cause" in error ? error.cause : undefined

const describeCause = (cause: unknown): string => {
  if (!(cause instanceof Error)) return typeof cause === "string" ? cause : JSON.stringify(cause) ?? String(cause)
  // The frames of Effect's own machinery, from the first one on, say nothing of where the error came from.
  const frames = (cause.stack ?? `${cause.name}: ${cause.message}`).split("\n")
  const machinery = frames.findIndex((line, i) => i > 0 && /~effect\/|node_modules\/effect\//.test(line))
  const text = (machinery === -1 ? frames : frames.slice(0, machinery)).join("\n")
  const code = (cause as { readonly code?: unknown }).code
  return code === undefined || text.includes(String(code)) ? text : `${text}\n  (code ${String(code)})`
}
