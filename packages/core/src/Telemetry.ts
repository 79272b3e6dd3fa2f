/**
 * The tool's own telemetry (`--open-telemetry`), as core sees it: the orchestrator's metrics, updated where the
 * work happens (commands, deployment, teardown, ssh reconnects, executor restarts), the shape of a span as the
 * artifacts and the website keep it, and the `Telemetry` service the run's monitoring stack reads (the spans for
 * the timeline, the metrics' scrape target). The exporting itself lives in `@tezt-cloud/monitoring/Telemetry`,
 * loaded only when the option is on.
 *
 * **Details**
 *
 * The metrics are Effect metrics in the process' registry: updating them is a map lookup, whether or not anything
 * exports them. Spans come from `Effect.fn` / `Effect.withSpan` where the work happens; without a tracer installed
 * they go nowhere.
 */
import { Context, Effect, Metric } from "effect"

/** Commands run on agents (the scenario's and the run's own), counted once they end. */
export const commands = Metric.counter("tezt_cloud_commands", {
  description: "Commands run on agents",
  incremental: true
})

/** How long commands on agents take, in seconds. */
export const commandSeconds = Metric.histogram("tezt_cloud_command_seconds", {
  description: "Duration of commands run on agents, in seconds",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
})

/** How long the last deployment took, in seconds. */
export const deploySeconds = Metric.gauge("tezt_cloud_deploy_seconds", {
  description: "Duration of the last deployment of the agents, in seconds"
})

/** How long the last teardown took, in seconds. */
export const teardownSeconds = Metric.gauge("tezt_cloud_teardown_seconds", {
  description: "Duration of the last teardown, in seconds"
})

/** Connections to ssh hosts established again after a drop. */
export const sshReconnects = Metric.counter("tezt_cloud_ssh_reconnects", {
  description: "ssh connections re-established after a drop",
  incremental: true
})

/** Persistent executors started again after one was lost. */
export const executorRestarts = Metric.counter("tezt_cloud_executor_restarts", {
  description: "Persistent executors started again after one was lost",
  incremental: true
})

/** A command on an agent has ended after `millis`. */
export const commandRan = (millis: number) =>
  Metric.update(commands, 1).pipe(Effect.andThen(Metric.update(commandSeconds, millis / 1000)))

/**
 * A span as the artifacts (`spans.jsonl`, one per line) and the website's timeline keep it: times in milliseconds
 * since the epoch; `end` absent while it runs.
 */
export interface SpanRecord {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string | undefined
  readonly start: number
  readonly end?: number | undefined
  readonly status: "running" | "ok" | "error" | "interrupted"
  /** The first error's message, for a failed span. */
  readonly error?: string | undefined
  readonly attributes: Readonly<Record<string, string | number | boolean>>
}

/** What the exporting layer offers the run's monitoring stack. */
export class Telemetry extends Context.Service<Telemetry, {
  /** The recent spans (the running ones included), oldest first, for the website's timeline. */
  readonly spans: Effect.Effect<ReadonlyArray<SpanRecord>>
  /** Where the orchestrator's metrics are served (`host:port`, path `/metrics`), for the run's Prometheus. */
  readonly metricsTarget: string | undefined
  /** Where the spans go: the OTLP endpoint, or the artifacts' file. */
  readonly destination: string
}>()("@tezt-cloud/core/Telemetry") {}
