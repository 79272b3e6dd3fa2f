/**
 * The backend contract: turn agent configurations into ready agents, owned by the caller's scope. When the scope
 * closes, the agents are destroyed (or kept, per the backend's policy). Each backend provides a layer of it, made
 * with the provisioning loop (`Provision.make`).
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { Agent } from "./Agent.ts"
import type { AgentConfig } from "./AgentConfig.ts"
import type * as CloudError from "./CloudError.ts"
import type { Faults } from "./NetworkFaults.ts"

export class Deployment extends Context.Service<Deployment, {
  /** A short name for messages: `localhost/process`, `test`, … */
  readonly backend: string
  /**
   * Creates every agent (in parallel, bounded) and returns them in the order of `configs` once all are ready.
   * Each resource is recorded in the `Ledger` before it exists.
   */
  deploy(configs: ReadonlyArray<AgentConfig>): Effect.Effect<ReadonlyArray<Agent>, CloudError.CloudError, Scope.Scope>
  /**
   * The network faults it realizes on the deployed `agents` (`Network`), whose jitter draws from `random`; what
   * they start lives in the current scope. None: every fault is refused.
   */
  readonly network?:
    | ((
      agents: ReadonlyArray<Agent>,
      random: () => number
    ) => Effect.Effect<Faults, CloudError.CloudError, Scope.Scope>)
    | undefined
}>()("@tezt-cloud/core/Deployment") {}

/** For runs that deploy nothing (maintenance jobs): any request for agents is a defect. */
export const layerNone = Layer.succeed(
  Deployment,
  Deployment.of({
    backend: "none",
    deploy: (configs) =>
      configs.length === 0 ? Effect.succeed([]) : Effect.die(new Error("this run has no backend to deploy agents"))
  })
)
