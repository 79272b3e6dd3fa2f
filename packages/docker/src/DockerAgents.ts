/**
 * The `--localhost` Docker runtime: each agent is a local container `teztcloud-<n>-<ns>-<agent>` (`n`: the length of
 * the namespace, so that no two (namespace, agent) pairs share a name) of the run's image,
 * whose entrypoint is sshd on the agent's first port (`vm-base-port + i * ports-per-vm`); the agent is then a
 * sandbox reached over ssh (`SshSandbox`), like any other machine.
 *
 * **Details**
 *
 * - Networking: `--docker-host-network` (the default) runs containers on the host network, reached at
 *   127.0.0.1; otherwise the network `<ns>-net` is (re)created and each agent is reached at its container's
 *   address there. A network of that name without the namespace's label is someone else's: an error, left alone.
 * - Readiness is event-driven: the deploy follows the container's output until sshd says it listens, then runs
 *   `echo check` over ssh. No fixed sleep.
 * - Containers start in parallel. Every image tag, network and container is labelled
 *   `tezt-cloud.namespace=<ns>` and recorded in the Ledger before it exists; the run's scope removes them.
 * - `cleanUp` removes what a killed run left: everything carrying the namespace's label (an exact match, so
 *   namespaces `a` and `ab` never touch each other's containers). Nothing is removed by name unless it carries
 *   the labels it was made with.
 * - Host keys of the containers are not recorded: the run made them a moment ago, on this machine.
 */
import {
  Backend,
  CloudConfig,
  CloudError,
  Ledger,
  LoopbackNetwork,
  Provision,
  RunEvents,
  Teardown
} from "@tezt-cloud/core"
import { SshClient, type SshKeys, SshSandbox } from "@tezt-cloud/ssh"
import { Data, Effect, Layer, Schedule, Schema } from "effect"
import * as ContainerNetwork from "./ContainerNetwork.ts"
import * as Engine from "./DockerClient.ts"
import { DockerClient, namespaceLabel, type RunSpec } from "./DockerClient.ts"
import type * as DockerError from "./DockerError.ts"
import * as DockerImage from "./DockerImage.ts"
import * as DockerJobs from "./DockerJobs.ts"

/** What this backend reads of the run's configuration: its own options, and `--macosx`. */
export const Config = Schema.Struct({
  ...SshSandbox.Config.fields,
  ...CloudConfig.ownedBy("docker"),
  ...CloudConfig.pick("macosx")
})
export type Config = typeof Config.Type

export interface Options {
  readonly stateDir: string
  readonly config: Config
  /** The run's artifacts dir; each agent gets `<artifactsDir>/<agent>`. */
  readonly artifactsDir: string
  /** Where `~/.ssh/<ns>-tf` lives (the user's home by default). */
  readonly keyHome?: string | undefined
  /** Seconds a killed process tree gets between SIGTERM and SIGKILL. */
  readonly graceSeconds?: number | undefined
  /** Where `<alias>.Dockerfile`s are (`dockerfiles/` by default). */
  readonly dockerfilesDir?: string | undefined
  /** How long a container may take to have sshd answer (default 60 s). */
  readonly readySeconds?: number | undefined
  /** The engine (the context's `DockerClient`) is an ssh host's (`SshDockerAgents`), not this machine's. */
  readonly remote?: Remote | undefined
  /**
   * An image made already (the proxy's, see `keyAtStart`), run by every agent as it is: nothing is built, root's
   * authorized key is given to the container at its start instead of being built into an image of the namespace.
   */
  readonly prebuilt?: string | undefined
}

/**
 * What a prebuilt image's entrypoint reads at the container's start (`Options.prebuilt`): the namespace's public
 * key for root's `authorized_keys`, and the agent's binaries path; its arguments are sshd's.
 */
export const keyAtStart = {
  key: "SSH_PUBLIC_KEY",
  binaries: "BINARIES_DESTINATION_PATH",
  /** The entrypoint script: writes the key (nothing else is given to sshd), makes the binaries dir, runs sshd. */
  script: [
    "#!/bin/sh",
    "set -e",
    "umask 077",
    `[ -n "$SSH_PUBLIC_KEY" ] || { echo "no SSH_PUBLIC_KEY: no key to authorize" >&2; exit 2; }`,
    `mkdir -p /root/.ssh /run/sshd "\${BINARIES_DESTINATION_PATH:-/tmp/tezt-runners}"`,
    `printf '%s\\n' "$SSH_PUBLIC_KEY" > /root/.ssh/authorized_keys`,
    "unset SSH_PUBLIC_KEY BINARIES_DESTINATION_PATH",
    `exec /usr/sbin/sshd "$@"`,
    ""
  ].join("\n")
} as const

/**
 * An engine on an ssh host: its containers' sshd are reached through the connection to the host (the host is
 * their jump host), their daemons at the host's address; every ledger record names the engine, so that clean-up
 * goes to the right one.
 */
export interface Remote {
  /** The backend's id, in the agents' descriptors. */
  readonly backend: string
  /** The engine's name (`ssh://user@host:port/path/docker.sock`), the `engine` of every ledger record. */
  readonly engine: string
  /** The connection to the host. */
  readonly via: SshClient.Connection
  /** `Reach.jump` of the containers: the host's own jump hosts, then the host. */
  readonly jump: string
  /** The host's address: where the agents' daemons are reached from here (on the host network). */
  readonly address: string
}

/** The backend's name in the CLI's list, and in its agents' descriptors. */
const backendId = "docker"

/** The ledger kinds this runtime records. */
export const kinds: ReadonlyArray<string> = [
  "docker-container",
  "docker-network",
  "docker-image",
  // In the containers: gone with them.
  ...ContainerNetwork.kinds
]

/** The label naming an agent's container's agent. */
const agentLabel = "tezt-cloud.agent"

/**
 * The container of an agent: `teztcloud-<n>-<ns>-<agent>`, `n` being the namespace's length, so that the name tells
 * the pair back (namespace `a` with agent `b-x` and namespace `a-b` with agent `x` are two containers).
 */
export const containerName = (namespace: string, agent: string) => `teztcloud-${namespace.length}-${namespace}-${agent}`

/** The labels of an agent's container: what makes a container of its name ours to remove. */
export const containerLabels = (namespace: string, agent: string): Record<string, string> => ({
  [namespaceLabel]: namespace,
  [agentLabel]: agent
})

/** The dedicated network of a run (without `--docker-host-network`). */
export const networkName = (namespace: string) => `${namespace}-net`

/** How the containers are reached: the namespace's key, any host key (the run made them), the channel limit. */
export const settings = (
  config: Pick<Config, "namespace" | "sshMaxChannels">,
  graceSeconds = 3
): SshSandbox.Settings => ({
  namespace: config.namespace,
  hostKeys: { _tag: "Insecure" },
  maxChannels: config.sshMaxChannels,
  graceSeconds
})

/** The container's sshd says its IPv4 port is taken (by some other socket of this machine). */
class PortTaken extends Data.TaggedError("PortTaken")<{ readonly port: number }> {
  override get message() {
    return `port ${this.port} stays taken on this machine: choose another --vm-base-port (one below Linux's ` +
      `ephemeral range, /proc/sys/net/ipv4/ip_local_port_range, is never a connection's)`
  }
}

/** The container's sshd did not say it listens in time. */
class SshdTimeout extends Data.TaggedError("SshdTimeout")<{ readonly seconds: number }> {
  override get message() {
    return `sshd did not start within ${this.seconds} s`
  }
}

/**
 * Follows the container's output until sshd listens on IPv4; fails with `PortTaken` when it says its IPv4 port is
 * taken.
 */
const sshdUp = (container: string, port: number, seconds: number) =>
  Effect.gen(function*() {
    const docker = yield* DockerClient
    const line = yield* docker.waitForLog(
      container,
      new RegExp(`Server listening on 0\\.0\\.0\\.0 port ${port}|Bind to port ${port} on 0\\.0\\.0\\.0 failed`)
    )
    if (line.startsWith("Bind")) return yield* new PortTaken({ port })
  }).pipe(
    Effect.timeoutOrElse({ duration: `${seconds} seconds`, orElse: () => Effect.fail(new SshdTimeout({ seconds })) })
  )

/** The pid file the container's sshd writes: it tells, over ssh, which container answered. */
const pidFile = (container: string) => `/run/${container}.sshd.pid`

/** Where an agent's sandbox lives inside its container. */
export const homeIn = (namespace: string, agent: string) => `/tmp/tezt-cloud/${namespace}/${agent}`

const toCloud = (agent: string) => (e: DockerError.DockerError) => CloudError.deploy(agent, e.message, { cause: e })

/**
 * A container of an agent's name could not be made because one is there already: a killed run's of the namespace
 * (clean up), or someone else's (left alone).
 */
const inTheWay = (namespace: string, agent: string, error: DockerError.DockerError) =>
  Effect.gen(function*() {
    const docker = yield* DockerClient
    const name = containerName(namespace, agent)
    const conflict = error.reason._tag === "Refused" && error.reason.statusCode === 409
    const labels = conflict ? yield* docker.labelsOf(name).pipe(Effect.orElseSucceed(() => undefined)) : undefined
    if (labels === undefined) return yield* toCloud(agent)(error)
    return yield* CloudError.deploy(
      agent,
      labels[namespaceLabel] === namespace
        ? `a container ${name} of another run of ${namespace} (killed, or still running) is in the way: end that ` +
          `run, or run CLOUD clean up --tezt-cloud ${namespace}`
        : `a container named ${name}, not tezt-cloud's, is in the way: remove or rename it (docker rm -f ${name}), ` +
          `or use another namespace`
    )
  })

/** A network of the run's name is someone else's: the error names it and the ways out. */
const networkTaken = (namespace: string, network: string) => (error: DockerError.DockerError) =>
  error.reason._tag === "NotOurs"
    ? CloudError.deploy(
      network,
      `a network named ${network}, not this namespace's (no label ${namespaceLabel}=${namespace}), exists: remove ` +
        `or rename it (docker network rm ${network}), use another namespace, or --docker-host-network`
    )
    : toCloud(network)(error)

/** What a run's agents share: the namespace's key, and each agent's image, in their order. */
interface Shared {
  readonly key: SshKeys.Key
  readonly images: ReadonlyArray<string>
}

export const layer = (options: Options) =>
  Provision.layer(options, ({ events, ledger }) =>
    Effect.gen(function*() {
      const docker = yield* DockerClient
      const { config } = options
      const ns = config.namespace
      const reaching = settings(config, options.graceSeconds)
      const labels = { [namespaceLabel]: ns }
      const hostNetwork = config.dockerHostNetwork
      const network = hostNetwork ? "host" : networkName(ns)
      const remote = options.remote
      /** What every ledger record of the run carries besides its own data: the engine when it is not local. */
      const onEngine: Record<string, string> = remote === undefined ? {} : { engine: remote.engine }

      const withServices = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        effect.pipe(
          Effect.provideService(Ledger.Ledger, ledger),
          Effect.provideService(RunEvents.RunEvents, events),
          Effect.provideService(DockerClient, docker)
        )

      /** An agent's container; `shared.images` are the agents' images, in their order. */
      const spec = (shared: Shared, slot: Provision.Slot): RunSpec => ({
        name: containerName(ns, slot.name),
        image: shared.images[slot.index] ?? "",
        ...(options.prebuilt === undefined ? {} : {
          env: [
            `${keyAtStart.key}=${shared.key.publicKey.trim()}`,
            `${keyAtStart.binaries}=${slot.config.binariesPath}`
          ]
        }),
        cmd: ["-D", "-p", String(slot.ports.start), "-e", "-o", `PidFile=${pidFile(containerName(ns, slot.name))}`],
        labels: containerLabels(ns, slot.name),
        network,
        publish: config.macosx ? slot.ports : undefined,
        capAdd: ["NET_ADMIN"]
      })

      /** Waits for the container's sshd, starting the container again while its port is taken. */
      const sshdReady = (shared: Shared, slot: Provision.Slot) => {
        const container = containerName(ns, slot.name)
        return sshdUp(container, slot.ports.start, options.readySeconds ?? 60).pipe(
          // On the host network the port may be held for a moment by some socket of this machine (ports 30000+
          // are in Linux's ephemeral range): the container is started again, a few times.
          Effect.tapError((e) =>
            e._tag === "PortTaken"
              ? docker.removeOwned(container, containerLabels(ns, slot.name)).pipe(
                Effect.andThen(docker.run(spec(shared, slot)))
              )
              : Effect.void
          ),
          Effect.retry({
            times: 6,
            while: (e) => e._tag === "PortTaken",
            schedule: Schedule.exponential("100 millis")
          }),
          Effect.catch((e) =>
            docker.logs(container).pipe(
              Effect.orElseSucceed(() => ""),
              Effect.flatMap((output) =>
                CloudError.deploy(slot.name, `${e.message}${output.trim() === "" ? "" : `\n${output.trim()}`}`, {
                  cause: e
                })
              )
            )
          ),
          Effect.provideService(DockerClient, docker)
        )
      }

      return Provision.provisioner({
        backend: `${remote === undefined ? "localhost" : remote.engine}/docker (${
          hostNetwork ? "host network" : network
        })`,
        prepare: (configs) =>
          Effect.gen(function*() {
            for (const c of configs) {
              if (c.dockerImage._tag === "OctezRelease") {
                return yield* CloudError.notAvailable(
                  "Octez release images with the Docker runtime",
                  "use a Dockerfile alias, or --agent-runtime process"
                )
              }
            }
            const key = yield* SshSandbox.key(reaching, {
              sshPrivateKey: config.sshPrivateKey,
              keyHome: options.keyHome
            })
            const prebuilt = options.prebuilt
            const builder = yield* withServices(DockerImage.builder(ns, options.dockerfilesDir, onEngine))
            // One build per (alias, args), before any container: containers then start together.
            const images = prebuilt !== undefined
              ? configs.map(() => prebuilt)
              : yield* Effect.forEach(configs, (c) =>
                withServices(builder.image(
                  c.dockerImage._tag === "Alias" ? c.dockerImage.alias : "",
                  DockerImage.buildArgs(c, key.publicKey)
                )))
            if (!hostNetwork) {
              yield* withServices(Ledger.scoped(
                {
                  id: `docker-network:${network}`,
                  kind: "docker-network",
                  data: { name: network, namespace: ns, ...onEngine }
                },
                // Re-created, as Tezt cloud does: a leftover of ours is replaced, someone else's is an error.
                docker.removeNetwork(network, labels).pipe(
                  Effect.andThen(docker.createNetwork(network, labels)),
                  Effect.mapError(networkTaken(ns, network))
                ),
                () => Teardown.step(`network ${network}`, docker.removeNetwork(network, labels))
              ))
            }
            return { key, images } satisfies Shared
          }),
        record: (_, slot) => {
          const container = containerName(ns, slot.name)
          return {
            id: `docker-container:${container}`,
            kind: "docker-container",
            data: { name: container, agent: slot.name, namespace: ns, ...onEngine }
          }
        },
        create: (shared, slot) =>
          docker.run(spec(shared, slot)).pipe(
            Effect.catch((e) => inTheWay(ns, slot.name, e)),
            Effect.provideService(DockerClient, docker)
          ),
        ready: (shared, slot) =>
          Effect.gen(function*() {
            const container = containerName(ns, slot.name)
            const port = slot.ports.start
            yield* sshdReady(shared, slot)
            const host = hostNetwork ? "127.0.0.1" : yield* docker.address(container, network).pipe(
              Effect.mapError(toCloud(slot.name))
            )
            const reach = { user: "root", host, port, key: shared.key.path, ...(remote && { jump: remote.jump }) }
            const connection = remote === undefined
              ? yield* SshSandbox.connect(reach, shared.key.privateKey, reaching, slot.name)
              // On the host, through the run's connection to it.
              : yield* SshClient.connect({ user: "root", host, port }, {
                ...SshSandbox.connectionOptions(reaching, shared.key.privateKey),
                via: remote.via
              }).pipe(Effect.mapError((e) => CloudError.deploy(slot.name, e.message, { cause: e })))
            const home = homeIn(ns, slot.name)
            // On the host network, a port taken by someone else's sshd would let us in elsewhere: the sshd that
            // answers must be the one whose pid file names this container.
            const check = yield* connection.run(
              `[ -e ${SshClient.quote(pidFile(container))} ] || ` +
                `{ echo "port ${port} answers, but not from ${container}: another process holds it; ` +
                `choose another --vm-base-port" >&2; exit 1; }; ` +
                `echo -n check && ${SshSandbox.makeDirs(home)}`
            ).pipe(
              Effect.retry({ times: 20, schedule: Schedule.spaced("100 millis") }),
              Effect.mapError((e) => CloudError.deploy(slot.name, e.message, { cause: e }))
            )
            if (check.code !== 0 || check.stdout !== "check") {
              return yield* CloudError.deploy(
                slot.name,
                `the container does not answer over ssh: ${check.stderr.trim()}`
              )
            }
            return SshSandbox.machine({
              backend: remote?.backend ?? backendId,
              settings: reaching,
              connection,
              reach,
              sandbox: slot.sandbox(home),
              events,
              fields: { container },
              ...(remote && hostNetwork ? { point: { host: remote.address, port } } : {})
            })
          }),
        destroy: (_, slot) => docker.removeOwned(containerName(ns, slot.name), containerLabels(ns, slot.name)),
        // On the host network the containers' ports are this machine's: the loopback faults act on them. On a
        // network of their own, each container's namespace takes them.
        network: remote !== undefined ? undefined : (agents, random) =>
          hostNetwork
            ? LoopbackNetwork.make({ namespace: ns, where: "Docker containers on the host network", random, agents })
            : ContainerNetwork.make({ namespace: ns, agents })
      })
    }))

export interface Leftovers {
  readonly containers: ReadonlyArray<string>
  readonly networks: ReadonlyArray<string>
  readonly images: ReadonlyArray<string>
}

/** What the engine holds of a namespace (by its label, exactly). */
export const leftovers = Effect.fn("DockerAgents.leftovers")(function*(namespace: string) {
  const docker = yield* DockerClient
  const labels = { [namespaceLabel]: namespace }
  return {
    containers: (yield* docker.containers(labels)).map((c) => c.name),
    networks: (yield* docker.networks(labels)).map((n) => n.name),
    images: (yield* docker.images(labels)).map((i) => i.name)
  } satisfies Leftovers
})

/**
 * Removes what killed runs of the namespace left on the engine: its containers, then its networks and image
 * tags, found by label; then releases the Ledger's Docker records of that engine (`engine`, a `Remote`'s; none:
 * this machine's). Without an engine, Docker records in the Ledger are an error (they cannot be checked); no record
 * and no engine is nothing to do.
 */
export const cleanUp = Effect.fn("DockerAgents.cleanUp")(function*(namespace: string, engine?: string) {
  const ledger = yield* Ledger.Ledger
  const docker = yield* DockerClient
  const records = (yield* ledger.outstanding).filter((r) => kinds.includes(r.kind) && r.data.engine === engine)
  const reachable = yield* docker.ping.pipe(Effect.as(true), Effect.catch(() => Effect.succeed(false)))
  if (!reachable) {
    if (records.length === 0) return { containers: [], networks: [], images: [] } satisfies Leftovers
    return yield* CloudError.state(
      ledger.file,
      `${records.length} Docker resource(s) of ${namespace} are recorded but no Docker engine answers at ` +
        `${docker.engine}: start it (or set DOCKER_HOST) and run CLOUD clean up again`
    )
  }
  const found = yield* leftovers(namespace).pipe(
    Effect.mapError((e) => CloudError.state(docker.engine, e.message, { cause: e }))
  )
  const fail = (e: DockerError.DockerError) =>
    CloudError.state(docker.engine, `clean up failed: ${e.message}`, { cause: e })
  const labels = { [namespaceLabel]: namespace }
  yield* Effect.forEach(found.containers, (c) => docker.removeOwned(c, labels), { concurrency: 16, discard: true })
    .pipe(Effect.mapError(fail))
  yield* Effect.forEach(found.networks, (n) => docker.removeNetwork(n, labels), { discard: true }).pipe(
    Effect.mapError(fail)
  )
  yield* Effect.forEach(found.images, (i) => docker.removeImage(i), { discard: true }).pipe(Effect.mapError(fail))
  for (const r of records) yield* ledger.release(r.id)
  return found
})

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`

/**
 * This backend's choice for `config`: its layer when an engine answers (and `--agent-runtime` allows it), with
 * the options `extra` gives (a prebuilt image: the proxy's container), asked only once the engine has answered.
 */
export const select = Effect.fnUntraced(
  function*(
    config: CloudConfig.CloudConfig,
    context: Backend.SelectContext,
    extra: Effect.Effect<Pick<Options, "prebuilt">> = Effect.succeed({})
  ) {
    const choice = config.backend
    if (choice._tag !== "Localhost") return Backend.Pass({ why: "not --localhost" })
    if (choice.runtime === "process") return Backend.Pass({ why: "--agent-runtime process" })
    const engine = Engine.engineOptions()
    const where = Engine.engineLabel(engine)
    if (!(yield* Engine.probe(engine))) {
      if (choice.runtime === "auto") return Backend.Pass({ why: `no Docker engine answers at ${where}` })
      return yield* CloudError.config(
        "--agent-runtime docker",
        `no Docker engine answers at ${where}: start dockerd (or point DOCKER_HOST at one; see README "Docker"), ` +
          `or use --agent-runtime process`
      )
    }
    const why = choice.runtime === "docker"
      ? "--agent-runtime docker"
      : "an engine answers; --agent-runtime process for processes"
    return Backend.Take({
      description: `Docker containers on ${where} (${why})`,
      layer: layer({ stateDir: context.stateDir, config, artifactsDir: context.artifactsDir, ...(yield* extra) }).pipe(
        Layer.provide(Engine.layer(engine))
      )
    })
  }
)

/** This backend as a value, for the CLI's list of backends. */
export const backend: Backend.Backend = {
  id: "docker",
  config: Config,
  select: (config, context) => select(config, context),
  reattach: (descriptors, options) =>
    SshSandbox.reattach(descriptors, settings(options.config), { oneCommandEach: options.oneCommandEach }),
  where: (d) => `${d.container} ${d.host}:${d.port}`,
  kinds,
  cleanUp: ({ config }) =>
    cleanUp(config.namespace).pipe(
      Effect.map(({ containers, images, networks }) =>
        containers.length + networks.length + images.length === 0 ? [] : [
          `removed ${plural(containers.length, "container")}, ${plural(networks.length, "network")} and ` +
          `${plural(images.length, "image tag")} of ${config.namespace} from Docker`,
          ...[...containers, ...networks, ...images].map((name) => `removed ${name}`)
        ]
      ),
      Effect.provide(Engine.layer())
    ),
  leftovers: ({ config }) =>
    Effect.gen(function*() {
      const docker = yield* DockerClient
      // No engine: nothing of ours can be running on it.
      if (!(yield* Engine.probe(Engine.engineOptions()))) return []
      const found = yield* leftovers(config.namespace).pipe(
        Effect.mapError((e) => CloudError.state(docker.engine, e.message, { cause: e }))
      )
      return [...found.containers, ...found.networks, ...found.images]
    }).pipe(Effect.provide(Engine.layer())),
  forceKill: (namespace) => Engine.removeByLabelSync(namespaceLabel, namespace),
  jobs: ({ stateDir }) => DockerJobs.all(stateDir)
}
