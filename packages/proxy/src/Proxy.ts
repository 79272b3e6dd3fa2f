/**
 * Proxy mode (`--proxy`) as a backend value: a backend wrapping an inner one. On the user's machine the CLI
 * hands a `--proxy` run to `ProxyRun` before choosing any backend: the inner backend makes the proxy machine,
 * and the orchestrator runs there. On the proxy, the orchestrator's run (`--localhost --proxy`, started by the
 * proxy's server) selects this backend, which runs the agents with the proxy's own runtimes: Docker containers
 * when the proxy has an engine, else process sandboxes on the proxy.
 *
 * **Details**
 *
 * - Inner backends: `--localhost --proxy` makes the proxy a local Docker container (the `docker` backend, on a
 *   network of its own, as a remote machine has its own addresses); `--proxy` alone asks for a GCP VM, which this
 *   build does not have yet (refused with the fix).
 * - `CLOUD clean up` stops the recorded run on the proxy when it still answers (its teardown runs there), then
 *   removes the local record; the inner backend's clean-up removes the proxy machine itself (it is in the
 *   ledger as that backend's resource). The CLI's list runs the clean-ups in its order, and this backend is
 *   last (its passing `select` would otherwise be in every other backend's description): the Docker proxy is
 *   then already gone, with the agents it held. A proxy whose run's agents live elsewhere (VMs) must be
 *   stopped before its machine goes.
 */
import { Backend, CloudConfig, CloudError, Ledger } from "@tezt-cloud/core"
import { Effect, Option, Schema } from "effect"
import * as fs from "node:fs"
import type * as Launch from "./Launch.ts"
import * as Protocol from "./ProxyProtocol.ts"
import * as ProxyRecord from "./ProxyRecord.ts"
import * as ProxyRun from "./ProxyRun.ts"

/** What this backend reads of the run's configuration. */
export const Config = Schema.Struct({
  namespace: Schema.String,
  proxy: Schema.Boolean,
  localhost: Schema.Boolean
})

/** Whether this process is the orchestrator the proxy's server started for `namespace`. */
export const onProxy = (env: Readonly<Record<string, string | undefined>>, namespace: string): boolean =>
  env[Protocol.onProxyVariable] === namespace

/** The longest namespace with `--proxy`: the proxy machine is the agent `<ns>-proxy`, at most 63 characters. */
export const maxNamespace = 63 - "-proxy".length

/** The backend that makes the proxy machine of `config`, and the configuration it gets. */
export const inner = Effect.fn("Proxy.inner")(function*(config: CloudConfig.CloudConfig) {
  if (config.namespace.length > maxNamespace) {
    return yield* CloudError.config(
      "--tezt-cloud",
      `with --proxy a namespace has at most ${maxNamespace} characters (the proxy is the agent <ns>-proxy)`
    )
  }
  if (!config.localhost) {
    return yield* CloudError.notAvailable(
      "--proxy without --localhost (a GCP proxy VM)",
      "this build has no GCP VMs yet; run with --localhost --proxy (the proxy is then a local Docker container)"
    )
  }
  const { DockerAgents } = yield* Effect.promise(() => import("@tezt-cloud/docker"))
  return {
    backend: DockerAgents.backend,
    config: { ...config, mode: "localhost", agentRuntime: "auto", dockerHostNetwork: false }
  } satisfies ProxyRun.Inner
})

/** The runtimes of the proxy itself: its Docker engine when one answers, else process sandboxes. */
const local = Effect.fn("Proxy.local")(function*(config: CloudConfig.CloudConfig, context: Backend.SelectContext) {
  const { DockerAgents } = yield* Effect.promise(() => import("@tezt-cloud/docker"))
  const { Localhost } = yield* Effect.promise(() => import("@tezt-cloud/localhost"))
  const onMachine = { ...config, mode: "localhost" } satisfies CloudConfig.CloudConfig
  const passed: Array<string> = []
  for (const backend of [DockerAgents.backend, Localhost.backend]) {
    const choice = yield* backend.select(onMachine, { ...context, passed })
    if (choice._tag === "Take") {
      return Backend.Take({ description: `${choice.description}, on the proxy`, layer: choice.layer })
    }
    passed.push(choice.why)
  }
  return yield* CloudError.notAvailable("--proxy", `no runtime of the proxy runs its agents (${passed.join("; ")})`)
})

/** The options of a `ProxyRun` for the namespace of `config` (commands that act on a recorded run). */
export const runOptions = Effect.fn("Proxy.runOptions")(function*(options: {
  readonly config: CloudConfig.CloudConfig
  readonly run: Omit<Launch.Run, "namespace">
  readonly stateDir: string
  readonly artifactsDir: string
  readonly scenarios: string | undefined
  readonly sink: ProxyRun.Options["sink"]
  readonly stopKind: ProxyRun.Options["stopKind"]
}) {
  return { ...options, inner: yield* inner(options.config) } satisfies ProxyRun.Options
})

/** The configuration of a command that acts on the recorded proxy run of `namespace` (not a run of its own). */
export const recordedConfig = (namespace: string | undefined, env: CloudConfig.Environment) =>
  CloudConfig.resolve({ tezt_cloud: namespace, localhost: true, proxy: true }, {}, env)

/** Asks the recorded run to stop, when its proxy still answers; its machine is its backend's to remove. */
const cleanUp = Effect.fn("Proxy.cleanUp")(function*(options: Backend.CleanUpOptions) {
  const ns = options.config.namespace
  const lines: Array<string> = []
  const record = yield* ProxyRecord.read(options.stateDir, ns).pipe(Effect.orElseSucceed(() => Option.none()))
  if (Option.isSome(record)) {
    const config = yield* recordedConfig(ns, {})
    const stopped = yield* Effect.scoped(Effect.gen(function*() {
      const session = yield* ProxyRun.reach({ stateDir: options.stateDir, config })
      yield* session.client.stop.pipe(Effect.timeout("60 seconds"))
    })).pipe(Effect.result)
    lines.push(
      stopped._tag === "Success"
        ? `stopped the run on the proxy of ${ns}`
        : `the run on the proxy of ${ns} could not be stopped (the proxy does not answer, or serves no run): its ` +
          `machine is removed as it is`
    )
  }
  const ledger = yield* Ledger.Ledger
  for (const resource of yield* ledger.outstanding) {
    if (kinds.includes(resource.kind)) yield* ledger.release(resource.id)
  }
  if (Option.isSome(record)) {
    yield* ProxyRecord.remove(options.stateDir, ns)
    lines.push(`removed ${ProxyRecord.file(options.stateDir, ns)}`)
  }
  return lines
})

/** The ledger kinds this backend records. */
export const kinds: ReadonlyArray<string> = ["proxy-run"]

/** This backend as a value, for the CLI's list of backends. */
export const backend: Backend.Backend = {
  id: "proxy",
  config: Config,
  select: (config, context) => {
    if (!config.proxy) return Effect.succeed(Backend.Pass({ why: "not --proxy" }))
    if (!onProxy(process.env, config.namespace)) {
      return Effect.succeed(Backend.Pass({ why: "a --proxy run is handed to the proxy before any backend is chosen" }))
    }
    return local(config, context)
  },
  reattach: () => Effect.fail(CloudError.notAvailable("agents of a --proxy run", "run tezt-cloud agents on the proxy")),
  where: () => "proxy",
  kinds,
  cleanUp,
  leftovers: ({ config, stateDir }) =>
    Effect.sync(() => {
      const file = ProxyRecord.file(stateDir, config.namespace)
      return fs.existsSync(file) ? [file] : []
    }),
  forceKill: () => 0,
  jobs: () => []
}
