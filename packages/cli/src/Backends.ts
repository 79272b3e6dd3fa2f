/**
 * The list of backends this build has, and the only module of the CLI that names them. Each entry is an id and a
 * `load()` of the package's `Backend` value, so that a command needing one backend (`agents exec` on local
 * sandboxes) loads only that one. Everything the CLI does with backends goes through here: choosing the run's
 * (`select`), `CLOUD clean up` (`cleanUp`), the second Ctrl+C (`forceKill`), `agents exec|copy` (`reattach`) and
 * the `CLOUD` jobs they contribute (`jobs`).
 *
 * **Details**
 *
 * Order matters for `select`: the first backend that takes the run gets it. Docker comes before process
 * sandboxes, so that `--localhost` uses containers when an engine answers and falls back to processes otherwise.
 */
import {
  type Agent,
  type Backend,
  CloudConfig,
  CloudError,
  type Deployment,
  type Runner,
  type Scenario
} from "@tezt-cloud/core"
import { Effect, type Layer } from "effect"

export interface Entry {
  readonly id: string
  readonly load: () => Promise<Backend.Backend>
}

/** Every backend of this build, in the order `select` asks them. */
export const entries: ReadonlyArray<Entry> = [
  { id: "docker", load: () => import("@tezt-cloud/docker").then((m) => m.DockerAgents.backend) },
  { id: "localhost", load: () => import("@tezt-cloud/localhost").then((m) => m.Localhost.backend) },
  // Before ssh-host: its clean-up reaches the host with the run's key, which ssh-host's removes from the host.
  { id: "ssh-docker", load: () => import("@tezt-cloud/docker").then((m) => m.SshDockerAgents.backend) },
  { id: "ssh-host", load: () => import("@tezt-cloud/ssh").then((m) => m.SshHost.backend) },
  { id: "gcp", load: () => import("@tezt-cloud/gcp").then((m) => m.GcpAgents.backend) },
  { id: "proxy", load: () => import("@tezt-cloud/proxy").then((m) => m.Proxy.backend) }
]

/**
 * The proxy package itself, for what the CLI does with it besides the backend value: its `proxy …` commands, and
 * the secrets a run on the proxy receives. Loaded only for those.
 */
export const proxyPackage = () => import("@tezt-cloud/proxy")

/** The backend of an entry, loaded. */
const loadEntry = (entry: Entry) =>
  Effect.tryPromise({
    try: entry.load,
    catch: (e) =>
      CloudError.notAvailable(`backend ${entry.id}`, `it cannot be loaded: ${CloudError.messageOf(e)}`, { cause: e })
  })

/** The backend called `id` (the `backend` field of its agents' descriptors). */
export const load = (id: string): Effect.Effect<Backend.Backend, CloudError.CloudError> => {
  const entry = entries.find((e) => e.id === id)
  return entry === undefined
    ? Effect.fail(CloudError.notAvailable(`backend ${id}`, "this build has no such backend"))
    : loadEntry(entry)
}

/** Every backend, loaded, in the list's order. */
export const all: Effect.Effect<ReadonlyArray<Backend.Backend>, CloudError.CloudError> = Effect.forEach(
  entries,
  loadEntry,
  { concurrency: "unbounded" }
)

export interface Selected {
  /** What the user is told: which backend and why. */
  readonly description: string
  readonly layer: Layer.Layer<Deployment.Deployment, never, Backend.Services>
}

/** The backend that runs the agents of `config`: the first of the list that takes it. */
export const select = Effect.fn("Backends.select")(function*(
  config: CloudConfig.CloudConfig,
  options: { readonly stateDir: string; readonly artifactsDir: string }
) {
  const passed: Array<string> = []
  const reasons: Array<string> = []
  // Loaded in turn, up to the one that takes the run: a run on process sandboxes or an ssh host loads neither the
  // cloud's packages nor the proxy's.
  for (const entry of entries) {
    const backend = yield* loadEntry(entry)
    const choice = yield* backend.select(config, { ...options, passed })
    if (choice._tag === "Take") return { description: choice.description, layer: choice.layer } satisfies Selected
    passed.push(choice.why)
    reasons.push(`${backend.id}: ${choice.why}`)
  }
  // What no backend of this build runs: the options' own refusal when there is one.
  yield* CloudConfig.checkAvailable(config)
  return yield* CloudError.notAvailable(`backend ${config.backend._tag}`, `no backend runs it (${reasons.join("; ")})`)
})

/** What `cleanUp` did: each backend's lines, and the backends whose clean-up failed. */
export interface CleanUpReport {
  readonly done: ReadonlyArray<{ readonly backend: string; readonly lines: ReadonlyArray<string> }>
  readonly failed: ReadonlyArray<{ readonly backend: string; readonly error: CloudError.CloudError }>
}

/**
 * The order of `cleanUp`: the proxy first, so that a run on a proxy is stopped (its own teardown removes the
 * agents it deployed, VMs included) before the backend that made the proxy machine removes it.
 */
const cleanUpOrder: ReadonlyArray<Entry> = [
  ...entries.filter((e) => e.id === "proxy"),
  ...entries.filter((e) => e.id !== "proxy")
]

/**
 * Removes what killed runs of the namespace left, on every backend: each one's clean-up runs whatever the
 * others did, and each failure is reported, not thrown.
 */
export const cleanUp = Effect.fn("Backends.cleanUp")(function*(stateDir: string, config: CloudConfig.CloudConfig) {
  const results = yield* Effect.forEach(cleanUpOrder, (entry) =>
    loadEntry(entry).pipe(
      Effect.flatMap((backend) => backend.cleanUp({ stateDir, config })),
      Effect.result,
      Effect.map((result) => ({ backend: entry.id, result }))
    ))
  return {
    done: results.flatMap(({ backend, result }) =>
      result._tag === "Success" ? [{ backend, lines: result.success }] : []
    ),
    failed: results.flatMap(({ backend, result }) =>
      result._tag === "Failure" ? [{ backend, error: result.failure }] : []
    )
  } satisfies CleanUpReport
})

/**
 * The second Ctrl+C's last resort with `backends` (from `all`): every backend kills what it runs for the
 * namespace, at once; returns how many things were killed.
 */
export const forceKill = (backends: ReadonlyArray<Backend.Backend>, namespace: string): number =>
  backends.reduce((killed, backend) => {
    try {
      return killed + backend.forceKill(namespace)
    } catch {
      // A last resort must not stop the next one.
      return killed
    }
  }, 0)

/**
 * Runners for the agents of a live run, in the order of `descriptors`, owned by the current scope. Only the
 * backends the descriptors name are loaded: the Docker client and ssh2 cost tenths of a second of start-up that a
 * fan-out on local sandboxes has no use for.
 */
export const reattach = Effect.fn("Backends.reattach")(function*(
  descriptors: ReadonlyArray<Agent.Descriptor>,
  options: Backend.ReattachOptions
) {
  const byBackend = Map.groupBy(descriptors, (d) => d.backend)
  const runners = new Map<string, Runner.Runner>()
  for (const [id, group] of byBackend) {
    const backend = yield* load(id)
    for (const [name, runner] of yield* backend.reattach(group, options)) runners.set(name, runner)
  }
  return yield* Effect.forEach(descriptors, (d) => {
    const runner = runners.get(String(d.agent))
    return runner === undefined
      ? Effect.fail(CloudError.deploy(String(d.agent), `backend ${d.backend} gave no runner for this agent`))
      : Effect.succeed([String(d.agent), runner] as const)
  })
})

/** The `CLOUD` jobs every backend contributes. */
export const jobs = (stateDir: string): Effect.Effect<ReadonlyArray<Scenario.Scenario>, CloudError.CloudError> =>
  Effect.map(all, (backends) => backends.flatMap((backend) => backend.jobs({ stateDir })))
