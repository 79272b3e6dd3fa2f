/**
 * A backend as a value: everything the CLI needs of one way to run agents (local processes, Docker containers,
 * an ssh host, …), so that it can keep them in one list and never name a backend anywhere else. Each backend
 * package exports one.
 *
 * **Details**
 *
 * - `select`: whether it runs this run's agents. A backend the user asked for and that cannot run refuses (a
 *   `CloudError` naming the option and the fix); one that does not apply passes, saying why.
 * - `reattach`: runners for the agents of a live run, from their descriptors, from another process
 *   (`tezt-cloud agents exec|copy`).
 * - `kinds` and `cleanUp`: the ledger records it writes, and how `CLOUD clean up` releases them after a killed
 *   run; `leftovers` says what of a namespace it still sees (for tests, and to check a clean-up).
 * - `forceKill`: the second Ctrl+C's last resort: synchronous, and bounded in time.
 * - `jobs`: the `CLOUD` maintenance jobs it contributes.
 */
import { Data, type Effect, type Layer, type Schema, type Scope } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import type { Descriptor } from "./Agent.ts"
import type { CloudConfig } from "./CloudConfig.ts"
import type * as CloudError from "./CloudError.ts"
import type { Deployment } from "./Deployment.ts"
import type { Ledger } from "./Ledger.ts"
import type { RunEvents } from "./RunEvents.ts"
import type { Runner } from "./Runner.ts"
import type { Scenario } from "./Scenario.ts"

/** What a backend's deployment layer and reattached runners may ask of the run. */
export type Services = Ledger | RunEvents | ChildProcessSpawner.ChildProcessSpawner

/** A backend's answer to a run's configuration. */
export type Choice = Data.TaggedEnum<{
  /** It runs the agents: `description` tells the user which backend and why; `layer` deploys them. */
  Take: { readonly description: string; readonly layer: Layer.Layer<Deployment, never, Services> }
  /** It does not apply, and why. */
  Pass: { readonly why: string }
}>
export const { Pass, Take } = Data.taggedEnum<Choice>()

export interface SelectContext {
  readonly stateDir: string
  readonly artifactsDir: string
  /** Why the backends before this one in the list passed (a fallback says so in its description). */
  readonly passed: ReadonlyArray<string>
}

export interface ReattachOptions {
  /** The configuration of the command that reattaches (its namespace is the run's). */
  readonly config: CloudConfig
  readonly stateDir: string
  /** Each runner runs a single command (`agents exec`): what pays off only over many commands is skipped. */
  readonly oneCommandEach: boolean
}

export interface CleanUpOptions {
  readonly stateDir: string
  readonly config: CloudConfig
}

export interface Backend {
  /** Its name in the list, and the `backend` field of its agents' descriptors. */
  readonly id: string
  /**
   * The part of the run's configuration it reads: fields of `CloudConfig.CloudConfig` with their schemas
   * (`CloudConfig.pick`), among them those of the options it owns (`CloudConfig.ownedBy`).
   */
  readonly config: Schema.Struct<Schema.Struct.Fields>
  /** Whether it runs the agents of a run of `config` (see the module's details). */
  readonly select: (config: CloudConfig, context: SelectContext) => Effect.Effect<Choice, CloudError.CloudError>
  /** Runners for agents of a live run, by name (in any order), owned by the current scope. */
  readonly reattach: (
    descriptors: ReadonlyArray<Descriptor>,
    options: ReattachOptions
  ) => Effect.Effect<ReadonlyArray<readonly [string, Runner]>, CloudError.CloudError, Scope.Scope | Services>
  /** Where one of its agents is, for `tezt-cloud agents list`. */
  readonly where: (descriptor: Descriptor) => string
  /** The ledger kinds it records. */
  readonly kinds: ReadonlyArray<string>
  /** Removes what killed runs of the namespace left; returns what it did, one line each. */
  readonly cleanUp: (options: CleanUpOptions) => Effect.Effect<ReadonlyArray<string>, CloudError.CloudError, Ledger>
  /** What of the namespace it still sees (processes, directories, containers…), one line each; none: nothing. */
  readonly leftovers: (options: CleanUpOptions) => Effect.Effect<ReadonlyArray<string>, CloudError.CloudError>
  /** Kills what it runs for the namespace now, synchronously, in bounded time; returns how many it killed. */
  readonly forceKill: (namespace: string) => number
  /** The `CLOUD` jobs it contributes. */
  readonly jobs: (options: { readonly stateDir: string }) => ReadonlyArray<Scenario>
}
