/**
 * What a scenario gets: the run's agents and configuration, and the hooks the monitoring subsystems feed on
 * (`pushMetric`, `addService`, `addPrometheusSource`, `registerBinary`). It is built by the orchestrator once
 * every agent is ready and the run's services (`RunServices`) are up.
 */
import { Context, Effect } from "effect"
import type { Agent } from "./Agent.ts"
import type { CloudConfig } from "./CloudConfig.ts"
import * as CloudError from "./CloudError.ts"
import {
  type Binary,
  type Hooks,
  memory,
  type MetricSample,
  type PrometheusSource,
  type ServiceLink
} from "./RunServices.ts"

export type { Binary, MetricSample, PrometheusSource, PrometheusTarget, ServiceLink } from "./RunServices.ts"

export class Cloud extends Context.Service<Cloud, {
  readonly namespace: string
  readonly config: CloudConfig
  /** The agents, in the order the scenario asked for them. */
  readonly agents: ReadonlyArray<Agent>
  /** The agent called `name`. */
  agent(name: string): Effect.Effect<Agent, CloudError.CloudError>
  /**
   * Records the last value of a metric per (name, labels); served on `/metrics` when the website runs. A name or
   * label that Prometheus would not accept is a `MetricInvalid` error.
   */
  pushMetric(sample: MetricSample): Effect.Effect<void, CloudError.CloudError>
  /** Links a service on the run's website. */
  addService(link: ServiceLink): Effect.Effect<void, CloudError.CloudError>
  /** Adds a Prometheus job (merging targets into a job of the same name); nothing without Prometheus. */
  addPrometheusSource(source: PrometheusSource): Effect.Effect<void, CloudError.CloudError>
  /**
   * Adds an executable to the agents' process exporters (restarting them), with a Prometheus job per agent, and
   * lists it on the website; nothing without process monitoring.
   */
  registerBinary(binary: Binary): Effect.Effect<void, CloudError.CloudError>
  /** The last value of every pushed metric. */
  readonly metrics: Effect.Effect<ReadonlyArray<MetricSample>>
  readonly services: Effect.Effect<ReadonlyArray<ServiceLink>>
}>()("@tezt-cloud/core/Cloud") {}

/** The implementation the orchestrator and `TestCloud` use: `hooks` are the run's services, or memory only. */
export const make = (config: CloudConfig, agents: ReadonlyArray<Agent>, hooks: Hooks = memory()) =>
  Cloud.of({
    namespace: config.namespace,
    config,
    agents,
    agent: (name) => {
      const agent = agents.find((a) => a.name === name)
      return agent === undefined
        ? Effect.fail(
          CloudError.agents(`no agent named ${name}; agents are ${agents.map((a) => a.name).join(", ") || "none"}`)
        )
        : Effect.succeed(agent)
    },
    pushMetric: (sample) => hooks.pushMetric(sample),
    addService: (link) => hooks.addService(link),
    addPrometheusSource: (source) => hooks.addPrometheusSource(source),
    registerBinary: (binary: Binary) => hooks.registerBinary(binary),
    metrics: hooks.metrics,
    services: hooks.services
  })
