/**
 * Proxy mode (`--proxy`) as a backend value: a backend wrapping an inner one. On the user's machine the CLI
 * hands a `--proxy` run to `ProxyRun` before choosing any backend: the inner backend makes the proxy machine,
 * and the orchestrator runs there. On the proxy, the orchestrator's run (`--localhost --proxy`, started by the
 * proxy's server) selects this backend, which runs the agents with the proxy's own runtimes: Docker containers
 * when the proxy has an engine, else process sandboxes on the proxy. Their descriptors are this backend's (the
 * runtime's id kept under `inner`), so `tezt-cloud agents` on the proxy comes back here and is handed on.
 *
 * **Details**
 *
 * - Inner backends: `--localhost --proxy` makes the proxy a local Docker container (the `docker` backend, on a
 *   network of its own, as a remote machine has its own addresses). `--proxy` alone makes it a GCP VM (the `gcp`
 *   backend: the VM `<ns>-proxy`, labelled, in the ledger, with its firewall rule, kept or destroyed as agents'
 *   VMs are), and the run there deploys its agents as GCP VMs itself, on the same project, zone and API (the
 *   endpoint and zone in its environment, the project on its command line, the user's credentials file, if any,
 *   in the 0600 secrets file); its `--destroy` spares the proxy's own VM. The proxy VM gets `<ns>.<the domain of
 *   the managed zone tezt-cloud>` (unless `--no-dns`) and each `--dns-domain`.
 * - `CLOUD clean up` stops the recorded run on the proxy when it still answers (its teardown runs there), deletes
 *   what a GCP proxy's run deployed beside it (everything labelled with the namespace, on the proxy VM's API) and
 *   removes the records; the runtimes' clean-ups, in the CLI's list, remove what they hold of the namespace
 *   (here: the proxy's container, its network and image tag, in the ledger as the Docker backend's, or its VM as
 *   the GCP backend's; on the proxy: the agents). The CLI's list cleans this backend up first, so that a run
 *   whose agents live elsewhere (VMs) is stopped before its machine goes.
 */
import { type Agent, Backend, CloudConfig, CloudError, Deployment, Ledger } from "@tezt-cloud/core"
import { DockerAgents, DockerClient } from "@tezt-cloud/docker"
import { CloudDns, GcpAgents, GcpError, GcpTarget } from "@tezt-cloud/gcp"
import { Localhost } from "@tezt-cloud/localhost"
import { Effect, Layer, Option, Schema } from "effect"
import * as fs from "node:fs"
import * as Bundle from "./Bundle.ts"
import * as Launch from "./Launch.ts"
import * as ProxyImage from "./ProxyImage.ts"
import * as Protocol from "./ProxyProtocol.ts"
import * as ProxyRecord from "./ProxyRecord.ts"
import * as ProxyRun from "./ProxyRun.ts"

/** What this backend reads of the run's configuration (the backend choice, with its inner one). */
export const Config = Schema.Struct({ ...CloudConfig.pick("namespace", "backend") })

/** Whether this process is the orchestrator the proxy's server started for `namespace`. */
export const onProxy = (env: Readonly<Record<string, string | undefined>>, namespace: string): boolean =>
  env[Protocol.onProxyVariable] === namespace

/** The longest namespace with `--proxy`: the proxy machine is the agent `<ns>-proxy`, at most 63 characters. */
export const maxNamespace = 63 - "-proxy".length

/** The backend that makes the proxy machine of `config`, and the configuration it gets. */
export const inner = Effect.fn("Proxy.inner")(function*(config: CloudConfig.CloudConfig) {
  const choice = config.backend
  if (choice._tag !== "Proxy") {
    return yield* CloudError.config("--proxy", "this run does not ask for a proxy: give --proxy")
  }
  if (config.namespace.length > maxNamespace) {
    return yield* CloudError.config(
      "--tezt-cloud",
      `with --proxy a namespace has at most ${maxNamespace} characters (the proxy is the agent <ns>-proxy)`
    )
  }
  if (choice.inner._tag === "Gcp") return gcpInner(config)
  const localConfig: CloudConfig.CloudConfig = {
    ...config,
    backend: { _tag: "Localhost", runtime: "auto" },
    mode: "localhost",
    dockerHostNetwork: false
  }
  return {
    backend: DockerAgents.backend,
    config: localConfig,
    unavailable: (why) =>
      CloudError.config(
        "--proxy",
        `the proxy of --localhost --proxy is a local Docker container, and ${why}: start dockerd (or point ` +
          `DOCKER_HOST at one; see README "Docker")`
      ),
    select: (bundle, context) => selectContainer(localConfig, bundle, context),
    gone: containerGone,
    check: Effect.void,
    remote: () => Effect.succeed({ args: ["--localhost"], env: {}, secrets: {} }),
    announce: () => Effect.succeed([])
  } satisfies ProxyRun.Inner
})

/**
 * The Docker backend's choice for a local proxy container: of the engine's proxy image of this version (made
 * once), run as it is, the namespace's key given at its start; when the engine cannot have one (a warning when
 * making it failed), built from the namespace's Dockerfile, the bundle then shipped.
 */
const selectContainer = (
  config: CloudConfig.CloudConfig,
  bundle: Bundle.Bundle,
  context: Backend.SelectContext
) =>
  DockerAgents.select(
    config,
    context,
    ProxyImage.ensure(bundle).pipe(
      Effect.provide(DockerClient.layer(DockerClient.engineOptions())),
      Effect.map((prebuilt) => (prebuilt === undefined ? {} : { prebuilt })),
      Effect.catch((e) =>
        Effect.logWarning(`proxy: no proxy image (${e.message}): the orchestrator is shipped`).pipe(Effect.as({}))
      )
    )
  )

/**
 * Whether a local proxy's container is gone: the engine has none of its name, or it does not run (nothing restarts
 * it); `false` when unsure.
 */
const containerGone = (record: ProxyRecord.ProxyRecord): Effect.Effect<boolean> => {
  const container = record.machine.container
  if (typeof container !== "string") return Effect.succeed(false)
  return Effect.gen(function*() {
    const docker = yield* DockerClient.DockerClient
    if ((yield* docker.labelsOf(container)) === undefined) return true
    // 409: the container is not running.
    return yield* docker.exec(container, ["true"]).pipe(
      Effect.as(false),
      Effect.catchIf((e) => e.reason._tag === "Refused" && e.reason.statusCode === 409, () => Effect.succeed(true))
    )
  }).pipe(
    Effect.provide(DockerClient.layer(DockerClient.engineOptions())),
    Effect.orElseSucceed(() => false)
  )
}

/** The GCP target of `config` (`--project-id`, the environment `env`), as a configuration error. */
const gcpTarget = (config: CloudConfig.CloudConfig, env: Readonly<Record<string, string | undefined>> = process.env) =>
  GcpTarget.resolve(config.projectId, env).pipe(Effect.mapError(GcpError.toCloud("--proxy")))

/** The proxy as a GCP VM (see the module's details). */
const gcpInner = (config: CloudConfig.CloudConfig): ProxyRun.Inner => {
  const vmConfig: CloudConfig.CloudConfig = { ...config, backend: { _tag: "Gcp" }, mode: "cloud" }
  return {
    backend: GcpAgents.backend,
    config: vmConfig,
    select: (_, context) => GcpAgents.backend.select(vmConfig, context),
    // A VM that does not answer may come back (a reboot): its client reconnects for a while.
    gone: () => Effect.succeed(false),
    check: Effect.asVoid(gcpTarget(config)),
    unavailable: (why) => CloudError.config("--proxy", `the proxy of --proxy is a GCP VM, and ${why}`),
    remote: (input) =>
      Effect.gen(function*() {
        const target = yield* gcpTarget(config)
        const credentials = target.endpoint === undefined ? GcpTarget.credentialsFile(process.env) : undefined
        const json = credentials === undefined ? undefined : yield* Effect.try({
          try: () => fs.readFileSync(credentials, "utf8"),
          catch: (e) => CloudError.config("--proxy", `${credentials}: ${CloudError.messageOf(e)}`)
        })
        return {
          args: input.project_id === undefined ? ["--project-id", target.project] : [],
          env: {
            ...(target.endpoint === undefined ? {} : { [GcpTarget.endpointVariable]: target.endpoint }),
            [GcpTarget.zoneVariable]: target.zone,
            ...(target.image === undefined ? {} : { [GcpTarget.imageVariable]: target.image })
          },
          secrets: json === undefined ? {} : { [GcpTarget.credentialsVariable]: json }
        }
      }),
    announce: (host) =>
      config.noDns && config.dnsDomains.length === 0 ? Effect.succeed([]) : gcpTarget(config).pipe(
        Effect.flatMap((target) =>
          CloudDns.registerProxy(
            target,
            { namespace: config.namespace, noDns: config.noDns, domains: config.dnsDomains },
            host
          ).pipe(Effect.mapError(GcpError.toCloudJob("--dns-domain")))
        )
      )
  }
}

/** The runtimes of the proxy itself, by id, in the order they are asked: its Docker engine, else processes. */
const runtimes: ReadonlyArray<Backend.Backend> = [DockerAgents.backend, Localhost.backend]

/** Every backend a run on the proxy deploys its agents with: its runtimes, and GCP VMs. */
const deployers: ReadonlyArray<Backend.Backend> = [...runtimes, GcpAgents.backend]

/** The backend that made an agent on the proxy: its descriptor keeps the backend's id under `inner`. */
const runtimeOf = (descriptor: Agent.Descriptor) =>
  deployers.find((r) => r.id === descriptor.inner) ?? Localhost.backend

/** The descriptor an agent's runtime gave it, from the one this backend gives it. */
const innerDescriptor = (descriptor: Agent.Descriptor): Agent.Descriptor => {
  const { inner: id, ...rest } = descriptor
  return { ...rest, backend: String(id) }
}

/** A runtime's deployment, its agents' descriptors this backend's: `tezt-cloud agents` comes back here. */
const wrapped = (layer: Layer.Layer<Deployment.Deployment, never, Backend.Services>) =>
  Layer.effect(
    Deployment.Deployment,
    Effect.map(Deployment.Deployment, (deployment) =>
      Deployment.Deployment.of({
        backend: `${deployment.backend} on the proxy`,
        deploy: (configs) =>
          Effect.map(deployment.deploy(configs), (agents) =>
            agents.map((agent) => ({
              ...agent,
              descriptor: { ...agent.descriptor, backend: backendId, inner: agent.descriptor.backend }
            })))
      }))
  ).pipe(Layer.provide(layer))

/**
 * The agents of the run on the proxy: GCP VMs when the proxy is one (its own VM spared by `--destroy`); else the
 * runtimes of the proxy itself, its Docker engine when one answers (and allowed), else process sandboxes.
 */
const local = Effect.fn("Proxy.local")(function*(config: CloudConfig.CloudConfig, context: Backend.SelectContext) {
  if (config.backend._tag === "Proxy" && config.backend.inner._tag === "Gcp") {
    // The user's credentials, if they sent them, are in the run's secrets file.
    const target = yield* gcpTarget(config, yield* Launch.withSecrets(process.env))
    const layer = GcpAgents.layer({
      target,
      config,
      artifactsDir: context.artifactsDir,
      spare: [ProxyRun.agentName(config.namespace)]
    })
    return Backend.Take({
      description: `GCP VMs (${GcpTarget.label(target)}), from the proxy`,
      layer: wrapped(layer)
    })
  }
  const runtime = CloudConfig.runtimeOf(config.backend) ?? "auto"
  const onMachine = {
    ...config,
    backend: { _tag: "Localhost", runtime },
    mode: "localhost"
  } satisfies CloudConfig.CloudConfig
  const passed: Array<string> = []
  for (const backend of runtimes) {
    const choice = yield* backend.select(onMachine, { ...context, passed })
    if (choice._tag === "Take") {
      return Backend.Take({ description: `${choice.description}, on the proxy`, layer: wrapped(choice.layer) })
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

/**
 * The configuration of a command that acts on the recorded proxy run of `namespace` (not a run of its own): a
 * proxy on a GCP VM when the record says so, else a local container.
 */
export const recordedConfig = Effect.fn("Proxy.recordedConfig")(function*(
  stateDir: string,
  namespace: string | undefined,
  env: CloudConfig.Environment
) {
  const container = yield* CloudConfig.resolve({ tezt_cloud: namespace, localhost: true, proxy: true }, {}, env)
  const record = yield* ProxyRecord.read(stateDir, container.namespace).pipe(
    Effect.orElseSucceed(() => Option.none())
  )
  return Option.isSome(record) && record.value.backend === GcpAgents.backendId
    ? yield* CloudConfig.resolve({ tezt_cloud: container.namespace, proxy: true }, {}, env)
    : container
})

/**
 * Asks the recorded run to stop, when its proxy still answers, and removes the records. What the runtimes hold of
 * the namespace (here, the proxy's container; on the proxy, the agents) is theirs to remove, in the CLI's list.
 */
const cleanUp = Effect.fn("Proxy.cleanUp")(function*(options: Backend.CleanUpOptions) {
  const ns = options.config.namespace
  const lines: Array<string> = []
  const record = yield* ProxyRecord.read(options.stateDir, ns).pipe(Effect.orElseSucceed(() => Option.none()))
  if (Option.isSome(record)) {
    const config = yield* recordedConfig(options.stateDir, ns, {})
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
    // A GCP proxy's agents are VMs beside it, which its run may have kept (or, killed, not removed): they go too.
    if (record.value.backend === GcpAgents.backendId) {
      for (const line of yield* GcpAgents.destroyAround(ns, ProxyRun.agentName(ns))) lines.push(`deleted ${line}`)
    }
  }
  const ledger = yield* Ledger.Ledger
  for (const resource of yield* ledger.outstanding) {
    if (resource.kind === ProxyRecord.runKind) yield* ledger.release(resource.id)
  }
  if (Option.isSome(record)) {
    yield* ProxyRecord.remove(options.stateDir, ns)
    lines.push(`removed ${ProxyRecord.file(options.stateDir, ns)}`)
  }
  return lines
})

/** The backend's name in the CLI's list, and in the descriptors of the agents it runs on the proxy. */
const backendId = "proxy"

/** The ledger kinds this backend records: the run on the proxy, and its runtimes' resources. */
export const kinds: ReadonlyArray<string> = [ProxyRecord.runKind, ...deployers.flatMap((r) => r.kinds)]

/** This backend as a value, for the CLI's list of backends. */
export const backend: Backend.Backend = {
  id: backendId,
  config: Config,
  select: (config, context) => {
    if (config.backend._tag !== "Proxy") return Effect.succeed(Backend.Pass({ why: "not --proxy" }))
    if (!onProxy(process.env, config.namespace)) {
      return Effect.succeed(Backend.Pass({ why: "a --proxy run is handed to the proxy before any backend is chosen" }))
    }
    return local(config, context)
  },
  reattach: (descriptors, options) =>
    Effect.forEach(
      Map.groupBy(descriptors, runtimeOf),
      ([runtime, group]) => runtime.reattach(group.map(innerDescriptor), options)
    ).pipe(Effect.map((runners) => runners.flat())),
  where: (descriptor) => `${runtimeOf(descriptor).where(innerDescriptor(descriptor))} (on the proxy)`,
  kinds,
  cleanUp,
  leftovers: (options) =>
    Effect.gen(function*() {
      const file = ProxyRecord.file(options.stateDir, options.config.namespace)
      const found = yield* Effect.forEach(deployers, (r) => r.leftovers(options))
      return [...(fs.existsSync(file) ? [file] : []), ...found.flat()]
    }),
  // The runtimes' last resort is theirs, in the CLI's list.
  forceKill: () => 0,
  jobs: () => []
}
