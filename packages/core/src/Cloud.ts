/**
 * What a scenario gets: the run's agents and configuration, and the hooks the monitoring subsystems feed on
 * (`pushMetric`, `addService`, `addPrometheusSource`, `registerBinary`), and the run's success criteria
 * (`addCriterion`). It is built by the orchestrator once
 * every agent is ready and the run's services (`RunServices`) are up.
 */
import { Context, Effect } from "effect"
import type { Agent } from "./Agent.ts"
import type { CloudConfig } from "./CloudConfig.ts"
import * as CloudError from "./CloudError.ts"
import { type Faults, unavailable } from "./NetworkFaults.ts"
import { type Hooks, memory } from "./RunServices.ts"
import type * as Verdict from "./Verdict.ts"

export type { Binary, MetricSample, PrometheusSource, PrometheusTarget, ServiceLink } from "./RunServices.ts"

/** The scenario's entry points into the run's services (`Hooks`: `pushMetric`, `addService`, …) and its agents. */
export class Cloud extends Context.Service<
  Cloud,
  Omit<Hooks, "prometheus"> & {
    readonly namespace: string
    readonly config: CloudConfig
    /** The agents, in the order the scenario asked for them. */
    readonly agents: ReadonlyArray<Agent>
    /** The network faults the backend realizes on the agents (`Network.delay`, `Network.partition`, …). */
    readonly network: Faults
    /** The agent called `name`. */
    agent(name: string): Effect.Effect<Agent, CloudError.CloudError>
    /**
     * Declares a success criterion, judged on the run's Prometheus when the scenario ends (and every `every`
     * while it runs): the run fails when it is not met. Refused (`CriterionInvalid`) when invalid, a duplicate, or
     * when the run has no Prometheus.
     */
    addCriterion(criterion: Verdict.Criterion): Effect.Effect<void, CloudError.CloudError>
  }
>()("@tezt-cloud/core/Cloud") {}

/**
 * The implementation the orchestrator and `TestCloud` use: `hooks` are the run's services, or memory only;
 * `network`, the backend's network faults (none by default); `addCriterion`, the run's `Verdict.Registry` (by
 * default criteria are refused).
 */
export const make = (
  config: CloudConfig,
  agents: ReadonlyArray<Agent>,
  hooks: Hooks = memory(),
  network: Faults = unavailable("this deployment has no network faults"),
  addCriterion: (criterion: Verdict.Criterion) => Effect.Effect<void, CloudError.CloudError> = (criterion) =>
    Effect.fail(
      CloudError.criterion(criterion.name, "criteria are judged on a run's Prometheus, and this one has none")
    )
) => {
  const { prometheus: _, ...entries } = hooks
  // By name in O(1): a scenario looking up each of 1000 agents must not scan the list each time.
  const byName = new Map(agents.map((a) => [a.name, a]))
  return Cloud.of({
    ...entries,
    addCriterion,
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
