/**
 * What a scenario gets: the run's agents and configuration, and the hooks the monitoring subsystems feed on
 * (`pushMetric`, `addService`, `addPrometheusSource`, `registerBinary`). It is built by the orchestrator once
 * every agent is ready and the run's services (`RunServices`) are up.
 */
import { Context, Effect } from "effect"
import type { Agent } from "./Agent.ts"
import type { CloudConfig } from "./CloudConfig.ts"
import * as CloudError from "./CloudError.ts"
import { type Faults, unavailable } from "./NetworkFaults.ts"
import { type Hooks, memory } from "./RunServices.ts"

export type { Binary, MetricSample, PrometheusSource, PrometheusTarget, ServiceLink } from "./RunServices.ts"

/** The scenario's entry points into the run's services (`Hooks`: `pushMetric`, `addService`, …) and its agents. */
export class Cloud extends Context.Service<
  Cloud,
  Hooks & {
    readonly namespace: string
    readonly config: CloudConfig
    /** The agents, in the order the scenario asked for them. */
    readonly agents: ReadonlyArray<Agent>
    /** The network faults the backend realizes on the agents (`Network.delay`, `Network.partition`, …). */
    readonly network: Faults
    /** The agent called `name`. */
    agent(name: string): Effect.Effect<Agent, CloudError.CloudError>
  }
>()("@tezt-cloud/core/Cloud") {}

/**
 * The implementation the orchestrator and `TestCloud` use: `hooks` are the run's services, or memory only;
 * `network`, the backend's network faults (none by default).
 */
export const make = (
  config: CloudConfig,
  agents: ReadonlyArray<Agent>,
  hooks: Hooks = memory(),
  network: Faults = unavailable("this deployment has no network faults")
) => {
  // By name in O(1): a scenario looking up each of 1000 agents must not scan the list each time.
  const byName = new Map(agents.map((a) => [a.name, a]))
  return Cloud.of({
    ...hooks,
    namespace: config.namespace,
    config,
    agents,
    network,
    agent: (name) => {
      const agent = byName.get(name)
      return agent === undefined
        ? Effect.fail(
          CloudError.agents(`no agent named ${name}; agents are ${agents.map((a) => a.name).join(", ") || "none"}`)
        )
        : Effect.succeed(agent)
    }
  })
}
