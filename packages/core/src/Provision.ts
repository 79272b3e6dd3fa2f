/**
 * The provisioning loop every backend runs on. A backend only says how to make one agent's machine or sandbox
 * (`Provisioner`): what to record in the ledger, how to create it, how to tell it is ready and how to remove it.
 * Everything around that is done here, once, the same way for every backend.
 *
 * **Details**
 *
 * - Names: every agent name is checked before anything is created: one path segment of letters, digits, '.', '_'
 *   or '-', starting with a letter or digit, at most 63 characters (it becomes a directory, a container or a host
 *   name, which teardown removes).
 * - Ports: agent `i`'s range starts at `vm-base-port + i × ports-per-vm` and is `ports-per-vm` ports long.
 * - Ledger: an agent's resource is recorded before it is created and released once it is removed. A removal that
 *   fails is reported as the teardown step `agent <name>` and keeps its record, for `CLOUD clean up`.
 * - Bounds: at most `Limits.deploys` agents are created at once; agents are torn down `Limits.teardowns` at a
 *   time (`Teardown.pool`), the newest first, each holding only itself.
 * - Events: `agent-ready` once an agent answers, `agent-down` once it is removed, counted within the deployment.
 * - Clock: with `--faketime`, every agent's clock is skewed (`Agent.setFaketime`) before it counts as ready; an
 *   agent without libfaketime fails its deployment, naming the package.
 * - Scopes: what `prepare` acquires lives as long as the deployment and goes after every agent; what `ready`
 *   acquires (a connection) goes before its agent's resource is removed.
 */
import { Effect, Layer, Schema, type Scope } from "effect"
import * as path from "node:path"
import * as Agent from "./Agent.ts"
import type { AgentConfig } from "./AgentConfig.ts"
import * as CloudConfig from "./CloudConfig.ts"
import * as CloudError from "./CloudError.ts"
import { Deployment } from "./Deployment.ts"
import * as Ledger from "./Ledger.ts"
import { Limits } from "./Limits.ts"
import type { Faults } from "./NetworkFaults.ts"
import { RunEvents } from "./RunEvents.ts"
import type { Runner } from "./Runner.ts"
import * as Sandbox from "./Sandbox.ts"
import * as Teardown from "./Teardown.ts"

/** What the loop reads of the run's configuration; a backend's own slice extends it. */
export const Config = Schema.Struct(
  CloudConfig.pick("namespace", "vmBasePort", "portsPerVm", "checkFileConsistency", "faketime")
)
export type Config = typeof Config.Type

/** One agent's place in the deployment, as the loop gives it to the backend. */
export interface Slot {
  readonly index: number
  readonly name: string
  readonly config: AgentConfig
  readonly ports: Agent.PortRange
  /** Where its files go on this machine: `<artifacts dir>/<agent>`. */
  readonly artifactsDir: string
  /** Its sandbox, with its home at `home` on the machine that runs it. */
  sandbox(home: string): Sandbox.Sandbox
}

/** What a backend hands back for a ready agent: how to reach and drive it. */
export interface Machine {
  readonly point: Agent.Agent["point"]
  readonly connect: string
  readonly descriptor: Agent.Descriptor
  readonly runner: Runner
}

/** How a backend makes one agent; `Shared` is what its agents share, `Created` the handle of one's resource. */
export interface Provisioner<Shared, Created> {
  /** A short name for messages: `localhost/process`, `ssh-host user@host:22`, … */
  readonly backend: string
  /**
   * Each agent has a machine of its own (VMs): every agent's port range then starts at `--vm-base-port`, as its
   * sshd does. Otherwise agents share a machine and agent `i`'s range starts at `vm-base-port + i × ports-per-vm`.
   */
  readonly machinePerAgent?: boolean | undefined
  /** Once per deployment, before any agent (a connection, images, a network…), in the deployment's scope. */
  readonly prepare: (configs: ReadonlyArray<AgentConfig>) => Effect.Effect<Shared, CloudError.CloudError, Scope.Scope>
  /** The ledger record of the agent's resource, written before it is created. */
  readonly record: (shared: Shared, slot: Slot) => Ledger.Resource
  /** Creates the agent's resource (not interrupted once started: it is then always removed). */
  readonly create: (shared: Shared, slot: Slot) => Effect.Effect<Created, CloudError.CloudError>
  /** Waits until the agent answers and says how to drive it, in the agent's own scope. */
  readonly ready: (
    shared: Shared,
    slot: Slot,
    created: Created
  ) => Effect.Effect<Machine, CloudError.CloudError, Scope.Scope>
  /** Removes the agent's resource; a failure is reported and keeps its ledger record. */
  readonly destroy: (shared: Shared, slot: Slot, created: Created) => Effect.Effect<void, unknown>
  /** The network faults it realizes on the ready agents (`Deployment.network`); none by default. */
  readonly network?:
    | ((
      agents: ReadonlyArray<Agent.Agent>,
      random: () => number
    ) => Effect.Effect<Faults, CloudError.CloudError, Scope.Scope | Ledger.Ledger | RunEvents>)
    | undefined
}

/** A provisioner, its types inferred from its `prepare` and `create`. */
export const provisioner = <Shared, Created>(p: Provisioner<Shared, Created>): Provisioner<Shared, Created> => p

/** Agent names every backend accepts (the orchestrator refuses others first). */
export const validName = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/

/** The first port of agent `index`'s range. */
export const portStart = (config: Config, index: number) => config.vmBasePort + index * config.portsPerVm

/** The slot of agent `index` (`config`) in a deployment (with a machine of its own: see `Provisioner`). */
export const slot = (
  config: Config,
  options: { readonly artifactsDir: string },
  agent: AgentConfig,
  index: number,
  machinePerAgent = false
): Slot => {
  const start = machinePerAgent ? config.vmBasePort : portStart(config, index)
  return {
    index,
    name: agent.name,
    config: agent,
    ports: { start, end: start + config.portsPerVm - 1 },
    artifactsDir: path.join(options.artifactsDir, agent.name),
    sandbox: (home) =>
      Sandbox.make({
        name: agent.name,
        home,
        namespace: config.namespace,
        binariesPath: agent.binariesPath,
        checkFileConsistency: config.checkFileConsistency,
        portStart: start
      })
  }
}

/** What the loop already has, for the backend's provisioner. */
export interface Services {
  readonly ledger: Ledger.Ledger["Service"]
  readonly events: RunEvents["Service"]
  readonly limits: Limits
}

/**
 * The `Deployment` layer of a backend: `build` makes its provisioner (once per layer, with the run's services),
 * which then runs in the loop (see the module's details).
 */
export const layer = <Shared, Created, E, R>(
  options: { readonly config: Config; readonly artifactsDir: string },
  build: (services: Services) => Effect.Effect<Provisioner<Shared, Created>, E, R>
): Layer.Layer<Deployment, E, R | Ledger.Ledger | RunEvents> =>
  Layer.effect(
    Deployment,
    Effect.gen(function*() {
      const services: Services = { ledger: yield* Ledger.Ledger, events: yield* RunEvents, limits: yield* Limits }
      return make(options, services, yield* build(services))
    })
  )

const make = <Shared, Created>(
  options: { readonly config: Config; readonly artifactsDir: string },
  { events, ledger, limits }: Services,
  backend: Provisioner<Shared, Created>
) => {
  const withServices = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(Effect.provideService(Ledger.Ledger, ledger), Effect.provideService(RunEvents, events))
  /** A deployment failure says which backend failed, besides which agent and why. */
  const named = <A, R>(effect: Effect.Effect<A, CloudError.CloudError, R>) =>
    Effect.mapError(effect, (e) =>
      e.reason._tag === "DeployFailed"
        ? CloudError.deploy(e.reason.agent, `${backend.backend}: ${e.reason.message}`, { cause: e.cause })
        : e)

  const deploy = Effect.fn("Provision.deploy")(function*(configs: ReadonlyArray<AgentConfig>) {
    yield* Effect.annotateCurrentSpan({ backend: backend.backend, agents: configs.length })
    for (const config of configs) {
      if (!validName.test(config.name)) {
        return yield* CloudError.deploy(
          config.name,
          "an agent name must be letters, digits, '.', '_' or '-' (at most 63, starting with a letter or digit)"
        )
      }
    }
    const shared = yield* backend.prepare(configs)
    const total = configs.length
    let ready = 0
    let down = 0
    // Created after `prepare`: every agent is down before what they share goes.
    const within = yield* Teardown.pool(limits.teardowns)
    const one = (config: AgentConfig, index: number) =>
      Effect.gen(function*() {
        const place = slot(options.config, options, config, index, backend.machinePerAgent)
        const created = yield* Ledger.scoped(
          backend.record(shared, place),
          backend.create(shared, place),
          (resource) =>
            Teardown.reported(`agent ${place.name}`, backend.destroy(shared, place, resource)).pipe(
              Effect.withSpan("Provision.destroy", { attributes: { agent: place.name } }),
              Effect.andThen(Effect.suspend(() => {
                down += 1
                return events.emit({ type: "agent-down", agent: place.name, down, total })
              })),
              Effect.provideService(RunEvents, events)
            )
        )
        const machine = yield* backend.ready(shared, place, created)
        const agent = Agent.make({
          index,
          config,
          point: machine.point,
          ports: place.ports,
          artifactsDir: place.artifactsDir,
          connect: machine.connect,
          descriptor: machine.descriptor,
          runner: machine.runner
        })
        const faketime = options.config.faketime
        if (faketime !== undefined) {
          yield* agent.setFaketime(faketime).pipe(
            Effect.mapError((e) =>
              CloudError.deploy(
                place.name,
                `--faketime: ${e.reason._tag === "CommandFailed" ? e.reason.message : e.message}`
              )
            )
          )
        }
        ready += 1
        yield* events.emit({ type: "agent-ready", agent: place.name, ready, total })
        return agent
      })
    // One span per agent, from its creation to its readiness (the tool's own telemetry, `--open-telemetry`).
    const traced = (config: AgentConfig, index: number) =>
      one(config, index).pipe(Effect.withSpan("Provision.agent", { attributes: { agent: config.name } }))
    return yield* Effect.forEach(configs, (config, index) => within(withServices(traced(config, index))), {
      concurrency: limits.deploys
    })
  }, named)

  const network = backend.network
  return Deployment.of({
    backend: backend.backend,
    deploy,
    network: network === undefined ? undefined : (agents, random) => withServices(network(agents, random))
  })
}
