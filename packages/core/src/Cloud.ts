/**
 * What a scenario gets: the run's agents and configuration, and the hooks the monitoring subsystems feed on
 * (`pushMetric`, `addService`). It is built by the orchestrator once every agent is ready.
 */
import { Context, Effect } from "effect"
import type { Agent } from "./Agent.ts"
import type { CloudConfig } from "./CloudConfig.ts"
import * as CloudError from "./CloudError.ts"

export interface MetricSample {
  readonly name: string
  readonly value: number
  readonly labels?: Record<string, string> | undefined
  readonly help?: string | undefined
  readonly type?: "counter" | "gauge" | undefined
}

export interface ServiceLink {
  readonly name: string
  readonly url: string
}

export class Cloud extends Context.Service<Cloud, {
  readonly namespace: string
  readonly config: CloudConfig
  /** The agents, in the order the scenario asked for them. */
  readonly agents: ReadonlyArray<Agent>
  /** The agent called `name`. */
  agent(name: string): Effect.Effect<Agent, CloudError.CloudError>
  /** Records the last value of a metric per (name, labels); served on `/metrics` when the website runs. */
  pushMetric(sample: MetricSample): Effect.Effect<void>
  /** Links a service on the run's website. */
  addService(link: ServiceLink): Effect.Effect<void>
  /** The last value of every pushed metric. */
  readonly metrics: Effect.Effect<ReadonlyArray<MetricSample>>
  readonly services: Effect.Effect<ReadonlyArray<ServiceLink>>
}>()("@tezt-cloud/core/Cloud") {}

/** The in-process implementation the orchestrator and `TestCloud` use. */
export const make = (config: CloudConfig, agents: ReadonlyArray<Agent>) => {
  const metrics = new Map<string, MetricSample>()
  const services: Array<ServiceLink> = []
  return Cloud.of({
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
    pushMetric: (sample) =>
      Effect.sync(() => {
        const labels = Object.entries(sample.labels ?? {}).toSorted(([a], [b]) => a.localeCompare(b))
        metrics.set(`${sample.name}${JSON.stringify(labels)}`, sample)
      }),
    addService: (link) => Effect.sync(() => void services.push(link)),
    metrics: Effect.sync(() => [...metrics.values()]),
    services: Effect.sync(() => [...services])
  })
}
