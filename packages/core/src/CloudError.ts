/**
 * The one error type that crosses core's public API. Each failure carries a `reason` that says what happened;
 * recover with `Effect.catchReason`/`catchTag` on the reason's tag, never by matching message text.
 */
import { Schema } from "effect"

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
  ScenarioFailed
])
export type Reason = typeof Reason.Type

/**
 * The error of every core service. `message` is the one line shown to users.
 *
 * @category errors
 */
export class CloudError extends Schema.TaggedError<CloudError>()("CloudError", {
  reason: Reason
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
  }
}

const lastLine = (text: string): string => text.trim().split("\n").at(-1) ?? ""

/** Shorthand constructors: `CloudError.config("--vms-limit", "must be ≥ 0")`. */
export const config = (option: string, message: string) =>
  new CloudError({ reason: new ConfigInvalid({ option, message }) })
export const agents = (message: string) => new CloudError({ reason: new AgentsInvalid({ message }) })
export const deploy = (agent: string, message: string) =>
  new CloudError({ reason: new DeployFailed({ agent, message }) })
export const command = (agent: string, commandLine: string, message: string) =>
  new CloudError({ reason: new CommandFailed({ agent, command: commandLine, message }) })
export const copy = (agent: string, source: string, message: string) =>
  new CloudError({ reason: new CopyFailed({ agent, source, message }) })
export const state = (path: string, message: string) => new CloudError({ reason: new StateFailed({ path, message }) })
export const notAvailable = (feature: string, message: string) =>
  new CloudError({ reason: new NotAvailable({ feature, message }) })
export const metric = (name: string, message: string) =>
  new CloudError({ reason: new MetricInvalid({ metric: name, message }) })
export const service = (name: string, message: string) =>
  new CloudError({ reason: new ServiceFailed({ service: name, message }) })

/** The message of an unknown thrown value. */
export const messageOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause)
