/**
 * The contract of network faults (`Network`): what a backend realizes on the agents of one deployment, each fault
 * held until the scope it was made in closes, and the realization of backends that have none.
 */
import { Effect, type Scope } from "effect"
import type { Agent } from "./Agent.ts"
import * as CloudError from "./CloudError.ts"

export interface Delay {
  readonly millis: number
  /** Each piece of data waits `millis ± jitterMillis`. */
  readonly jitterMillis: number
}

/** A backend's realization of network faults on the agents of one deployment. */
export interface Faults {
  /** What realizes each fault on these agents, one line each (the run prints them in its first lines). */
  readonly mechanisms: Effect.Effect<ReadonlyArray<string>, CloudError.CloudError>
  delay(agent: Agent, delay: Delay): Effect.Effect<void, CloudError.CloudError, Scope.Scope>
  /** Drops `percent` % of the packets sent to the agent's ports. */
  loss(agent: Agent, percent: number): Effect.Effect<void, CloudError.CloudError, Scope.Scope>
  /** Caps what goes to and comes from the agent's ports at `bytesPerSecond` each way. */
  bandwidth(agent: Agent, bytesPerSecond: number): Effect.Effect<void, CloudError.CloudError, Scope.Scope>
  partition(groups: ReadonlyArray<ReadonlyArray<Agent>>): Effect.Effect<void, CloudError.CloudError, Scope.Scope>
}

/** Faults where nothing realizes them: each one fails, saying `why`. */
export const unavailable = (why: string): Faults => {
  const refuse = (fault: string) => Effect.fail(CloudError.notAvailable(`network ${fault}`, why))
  return {
    mechanisms: Effect.succeed([`network faults: none (${why})`]),
    delay: () => refuse("delay"),
    loss: () => refuse("loss"),
    bandwidth: () => refuse("bandwidth cap"),
    partition: () => refuse("partition")
  }
}
