/**
 * A scenario is a value: a title, tags, the agents it needs, and a `run` effect that needs only core services.
 * Scenarios are registered in groups (`BASIC`, `CLOUD`, a user's own); a run selects those that have all the
 * given tags.
 */
import type { Effect, Scope } from "effect"
import type { AgentRequest } from "./AgentConfig.ts"
import type { Cloud } from "./Cloud.ts"
import type { CloudConfig } from "./CloudConfig.ts"

export interface Scenario {
  readonly title: string
  readonly tags: ReadonlyArray<string>
  /**
   * The agents to deploy, computed from the run's configuration. `undefined`: the scenario needs none (a
   * maintenance job), so nothing is deployed and `Cloud.agents` is empty.
   */
  readonly vms: ((config: CloudConfig) => ReadonlyArray<AgentRequest>) | undefined
  /**
   * Whether it holds the namespace's lock while it runs (`NamespaceLock`), as every scenario that deploys does:
   * a maintenance job that must not run beside a live run of the namespace (`CLOUD clean up`).
   */
  readonly exclusive?: boolean | undefined
  readonly run: Effect.Effect<void, unknown, Cloud | Scope.Scope>
}

export interface Group {
  readonly name: string
  readonly description: string
  readonly scenarios: ReadonlyArray<Scenario>
}

export const make = (scenario: {
  readonly title: string
  readonly tags: ReadonlyArray<string>
  readonly vms?: ((config: CloudConfig) => ReadonlyArray<AgentRequest>) | ReadonlyArray<AgentRequest> | undefined
  readonly exclusive?: boolean | undefined
  readonly run: Effect.Effect<void, unknown, Cloud | Scope.Scope>
}): Scenario => ({
  title: scenario.title,
  tags: scenario.tags,
  vms: scenario.vms === undefined
    ? undefined
    : typeof scenario.vms === "function"
    ? scenario.vms
    : ((vms) => () => vms)(scenario.vms),
  exclusive: scenario.exclusive,
  run: scenario.run
})

export const group = (name: string, description: string, scenarios: ReadonlyArray<Scenario>): Group => ({
  name,
  description,
  scenarios
})

/** Scenarios having every one of `tags` (all of them when `tags` is empty). */
export const select = (scenarios: ReadonlyArray<Scenario>, tags: ReadonlyArray<string>): ReadonlyArray<Scenario> =>
  scenarios.filter((s) => tags.every((t) => s.tags.includes(t)))
