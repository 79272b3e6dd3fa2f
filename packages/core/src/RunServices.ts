/**
 * The run-level services (website, Prometheus, Grafana, per-agent exporters) as core sees them: something the
 * orchestrator starts once the agents are ready, in the run's scope, and that the scenario feeds through `Cloud`
 * (`pushMetric`, `addService`, `addPrometheusSource`, `registerBinary`).
 *
 * **Details**
 *
 * The CLI provides `RunServices` per the defaults cascade (`CloudConfig.resolve`: what each mode turns on). Without it (`TestCloud`, maintenance
 * jobs, tests) `Cloud` falls back to `memory()`: metrics and links are kept in memory, sources, binaries and alerts
 * (once checked) are accepted and ignored, notifications only logged, as Tezt cloud does when Prometheus or process monitoring is off. Started after the
 * deployment, the services stop before the agents are torn down and after the scenario's own daemons.
 */
import { Context, Effect, type Scope } from "effect"
import type { Agent } from "./Agent.ts"
import { type Alert, check } from "./Alert.ts"
import type * as CloudError from "./CloudError.ts"
import type * as Verdict from "./Verdict.ts"

/**
 * One value of a metric; `/metrics` keeps the last one per (name, labels). A push sets the value, counters too, as
 * Tezt cloud's `push_metric` does: pushing a counter of 1 twice serves 1, not 2; the scenario keeps the running
 * total and pushes it (`value: pings`).
 */
export interface MetricSample {
  readonly name: string
  /** The metric's value from now on (never added to the previous one). */
  readonly value: number
  readonly labels?: Record<string, string> | undefined
  readonly help?: string | undefined
  readonly type?: "counter" | "gauge" | undefined
}

/** A link shown on the run's website. */
export interface ServiceLink {
  readonly name: string
  readonly url: string
}

/** One endpoint Prometheus scrapes: a port of an agent, labelled `app=<appName>`. */
export interface PrometheusTarget {
  readonly agent: Agent
  readonly port: number
  readonly appName: string
}

/** A Prometheus job; adding one whose name exists merges its targets. */
export interface PrometheusSource {
  readonly name: string
  /** Defaults to `/metrics`. */
  readonly metricsPath?: string | undefined
  readonly targets: ReadonlyArray<PrometheusTarget>
}

/** An executable whose processes the agents' process exporters report on. */
export interface Binary {
  readonly name: string
  /** Defaults to `tezt-cloud`. */
  readonly group?: string | undefined
  /** Defaults to every agent. */
  readonly agents?: ReadonlyArray<Agent> | undefined
}

/** The running services' entry points, which `Cloud` gives the scenario. */
export interface Hooks {
  /**
   * Sets the value of a metric per (name, labels), counters too (a push is never added to the last one: push the
   * running total); served on `/metrics` when the website runs. A name or
   * label that Prometheus would not accept is a `MetricInvalid` error.
   */
  pushMetric(sample: MetricSample): Effect.Effect<void, CloudError.CloudError>
  /** Links a service on the run's website. */
  addService(link: ServiceLink): Effect.Effect<void, CloudError.CloudError>
  /** Adds a Prometheus job (merging targets into a job of the same name); nothing without Prometheus. */
  addPrometheusSource(source: PrometheusSource): Effect.Effect<void, CloudError.CloudError>
  /**
   * Adds an executable to the agents' process exporters (restarting them), with a Prometheus job per agent, and
   * lists it on the website; nothing but the listing without process monitoring.
   */
  registerBinary(binary: Binary): Effect.Effect<void, CloudError.CloudError>
  /** The last value of every pushed metric. */
  readonly metrics: Effect.Effect<ReadonlyArray<MetricSample>>
  readonly services: Effect.Effect<ReadonlyArray<ServiceLink>>
  /** The run's Prometheus, where success criteria are judged (`Cloud.addCriterion`); absent when it is off. */
  readonly prometheus?: Verdict.Source | undefined
  /**
   * Adds a Prometheus alerting rule and its Alertmanager route (starting Alertmanager the first time), and
   * reloads both; returns once both have loaded it. Replaces an alert of the same name. Nothing without
   * Prometheus. A bad alert is a `ConfigInvalid` error naming it.
   */
  addAlert(alert: Alert): Effect.Effect<void, CloudError.CloudError>
  /**
   * The scenario's own report: always a line of the run's log and events, and a Slack message when the run has a
   * Slack channel and bot token. Never fails: a Slack that does not take it is a warning in the log.
   */
  notify(text: string): Effect.Effect<void>
}

export class RunServices extends Context.Service<RunServices, {
  /** Starts the services for `agents` in the current scope (the run's) and returns their entry points. */
  start(agents: ReadonlyArray<Agent>): Effect.Effect<Hooks, CloudError.CloudError, Scope.Scope>
}>()("@tezt-cloud/core/RunServices") {}

/** Hooks that only remember: the last value per (name, labels) and the links. */
export const memory = (): Hooks => {
  const metrics = new Map<string, MetricSample>()
  const services: Array<ServiceLink> = []
  return {
    pushMetric: (sample) =>
      Effect.sync(() => {
        const labels = Object.entries(sample.labels ?? {}).toSorted(([a], [b]) => a.localeCompare(b))
        metrics.set(`${sample.name}${JSON.stringify(labels)}`, sample)
      }),
    addService: (link) => Effect.sync(() => void services.push(link)),
    addPrometheusSource: () => Effect.void,
    registerBinary: () => Effect.void,
    metrics: Effect.sync(() => [...metrics.values()]),
    services: Effect.sync(() => [...services]),
    // Checked as the run would (a bad name or duration fails a hermetic test too), then ignored; Slack is not checked.
    addAlert: (alert) => {
      const invalid = check(alert, { channel: "any", hasToken: true })
      return invalid === undefined ? Effect.void : Effect.fail(invalid)
    },
    notify: logNotification
  }
}

/** How a notification shows in the run's log and events. */
export const logNotification = (text: string): Effect.Effect<void> => Effect.logInfo(`notification: ${text}`)
