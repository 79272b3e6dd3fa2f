/**
 * The `--localhost` Docker runtime (reference §1.5 "Localhost"): each agent is a local container
 * `teztcloud-<ns>-<agent>` of the run's image, whose entrypoint is sshd on the agent's first port
 * (`vm-base-port + i * ports-per-vm`); the agent is then reached over ssh like any other host, with the ssh
 * transport's runner.
 *
 * **Details**
 *
 * - Networking: `--docker-host-network` (the default) runs containers on the host network, reached at
 *   127.0.0.1; otherwise the network `<ns>-net` is (re)created and each agent is reached at its container's
 *   address there.
 * - Readiness is event-driven: the deploy follows the container's output until sshd says it listens, then runs
 *   `echo check` over ssh. No fixed sleep.
 * - Containers start in parallel. Every image tag, network and container is labelled
 *   `tezt-cloud.namespace=<ns>` and recorded in the Ledger before it exists; the run's scope removes them.
 * - `cleanUp` removes what a killed run left: everything carrying the namespace's label (an exact match, so
 *   namespaces `a` and `ab` never touch each other's containers).
 * - Host keys of the containers are not recorded: the run made them a moment ago, on this machine.
 */
import {
  Agent,
  AgentConfig,
  Backend,
  CloudConfig,
  CloudError,
  Deployment,
  Ledger,
  Provision,
  RunEvents,
  Sandbox,
  Teardown
} from "@tezt-cloud/core"
import { SshClient, SshHost, SshKeys, SshRunner } from "@tezt-cloud/ssh"
import { Effect, Layer, Schedule, Schema } from "effect"
import * as path from "node:path"
import * as Engine from "./DockerClient.ts"
import { DockerClient, namespaceLabel, type RunSpec } from "./DockerClient.ts"
import type * as DockerError from "./DockerError.ts"
import * as DockerImage from "./DockerImage.ts"
import * as DockerJobs from "./DockerJobs.ts"

/** The ssh-host backend's options (the agents are reached the same way), plus the container's own. */
export interface Options extends SshHost.Options {
  /** Where `<alias>.Dockerfile`s are (`dockerfiles/` by default). */
  readonly dockerfilesDir?: string | undefined
  /** How long a container may take to have sshd answer (default 60 s). */
  readonly readySeconds?: number | undefined
}

/** What this backend reads of the run's configuration. */
export const Config = Schema.Struct({
  ...Provision.Config.fields,
  sshPrivateKey: Schema.UndefinedOr(Schema.String),
  sshMaxChannels: Schema.Number,
  faketime: Schema.UndefinedOr(Schema.String),
  dockerHostNetwork: Schema.Boolean,
  macosx: Schema.Boolean
})
export type Config = typeof Config.Type

/** The ledger kinds this runtime records. */
export const kinds: ReadonlyArray<string> = ["docker-container", "docker-network", "docker-image"]

/** The container of an agent. */
export const containerName = (namespace: string, agent: string) => `teztcloud-${namespace}-${agent}`

/** The dedicated network of a run (without `--docker-host-network`). */
export const networkName = (namespace: string) => `${namespace}-net`

class PortTaken {
  readonly message = "port taken"
}

/**
 * Follows the container's output until sshd listens on IPv4 (true) or says its IPv4 port is taken (false).
 */
const sshdUp = (container: string, port: number, seconds: number) =>
  Effect.gen(function*() {
    const docker = yield* DockerClient
    const line = yield* docker.waitForLog(
      container,
      new RegExp(`Server listening on 0\\.0\\.0\\.0 port ${port}|Bind to port ${port} on 0\\.0\\.0\\.0 failed`)
    )
    return !line.startsWith("Bind")
  }).pipe(
    Effect.timeoutOrElse({
      duration: `${seconds} seconds`,
      orElse: () => Effect.fail({ message: "sshd did not start in time" })
    })
  )

/** The pid file the container's sshd writes: it tells, over ssh, which container answered. */
const pidFile = (container: string) => `/run/${container}.sshd.pid`

/** Where an agent's sandbox lives inside its container. */
export const homeIn = (namespace: string, agent: string) => path.posix.join("/tmp/tezt-cloud", namespace, agent)

const toCloud = (agent: string) => (e: DockerError.DockerError | { readonly message: string }) =>
  CloudError.deploy(agent, e.message)

/** The ssh connection options for containers: the namespace's key, any host key, the channel limit. */
const connectionOptions = (config: CloudConfig.CloudConfig, privateKey: string) => ({
  privateKey,
  hostKeys: { _tag: "Insecure" as const },
  maxChannels: config.sshMaxChannels
})

export const layer = (options: Options) =>
  Layer.effect(
    Deployment.Deployment,
    Effect.gen(function*() {
      const ledger = yield* Ledger.Ledger
      const events = yield* RunEvents.RunEvents
      const docker = yield* DockerClient
      const { config } = options
      const ns = config.namespace
      const graceSeconds = options.graceSeconds ?? 3
      const labels = { [namespaceLabel]: ns }
      const hostNetwork = config.dockerHostNetwork

      const withServices = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        effect.pipe(
          Effect.provideService(Ledger.Ledger, ledger),
          Effect.provideService(RunEvents.RunEvents, events),
          Effect.provideService(DockerClient, docker)
        )

      return Deployment.Deployment.of({
        backend: `localhost/docker (${hostNetwork ? "host network" : networkName(ns)})`,
        deploy: Effect.fn("DockerAgents.deploy")(function*(configs: ReadonlyArray<AgentConfig.AgentConfig>) {
          for (const c of configs) {
            // A container name must also start with a letter or digit.
            if (!Provision.validName.test(c.name) || !/^[A-Za-z0-9]/.test(c.name)) {
              return yield* CloudError.deploy(
                c.name,
                "an agent name must be letters, digits, '.', '_' or '-', starting with a letter or digit"
              )
            }
            if (c.dockerImage._tag === "OctezRelease") {
              return yield* CloudError.notAvailable(
                "Octez release images with the Docker runtime",
                "use a Dockerfile alias, or --agent-runtime process"
              )
            }
          }
          const key = yield* SshKeys.ensure(ns, config.sshPrivateKey, options.keyHome)
          const builder = yield* withServices(DockerImage.builder(ns, options.dockerfilesDir))
          // One build per (alias, args), before any container: containers then start together.
          const images = yield* Effect.forEach(configs, (c) =>
            withServices(
              builder.image(
                c.dockerImage._tag === "Alias" ? c.dockerImage.alias : "",
                DockerImage.buildArgs(c, key.publicKey)
              )
            ))
          const network = hostNetwork ? "host" : networkName(ns)
          if (!hostNetwork) {
            yield* withServices(Ledger.scoped(
              { id: `docker-network:${network}`, kind: "docker-network", data: { name: network, namespace: ns } },
              // Re-created, as Tezt cloud does: a leftover of ours is replaced, someone else's is an error.
              docker.removeNetwork(network).pipe(
                Effect.andThen(docker.createNetwork(network, labels)),
                Effect.mapError(toCloud(network))
              ),
              () => Teardown.step(`network ${network}`, docker.removeNetwork(network))
            ))
          }

          let ready = 0
          let down = 0
          return yield* Effect.forEach(configs, (agentConfig, index) =>
            Effect.gen(function*() {
              const name = agentConfig.name
              const container = containerName(ns, name)
              const start = config.vmBasePort + index * config.portsPerVm
              const ports = { start, end: start + config.portsPerVm - 1 }
              const spec: RunSpec = {
                name: container,
                image: images[index]!,
                cmd: ["-D", "-p", String(start), "-e", "-o", `PidFile=${pidFile(container)}`],
                labels: { ...labels, "tezt-cloud.agent": name },
                network,
                publish: config.macosx ? ports : undefined,
                capAdd: ["NET_ADMIN"]
              }
              yield* withServices(Ledger.scoped(
                {
                  id: `docker-container:${container}`,
                  kind: "docker-container",
                  data: { name: container, agent: name, namespace: ns }
                },
                docker.run(spec).pipe(Effect.mapError(toCloud(name))),
                () =>
                  Teardown.step(
                    `agent ${name}`,
                    docker.remove(container).pipe(Effect.andThen(Effect.suspend(() => {
                      down += 1
                      return events.emit({ type: "agent-down", agent: name, down, total: configs.length })
                    })))
                  )
              ))
              yield* sshdUp(container, start, options.readySeconds ?? 60).pipe(
                // On the host network the port may be held for a moment by some socket of this machine (ports
                // 30000+ are in Linux's ephemeral range): the container is started again, a few times.
                Effect.flatMap((up) => up ? Effect.void : Effect.fail(new PortTaken())),
                Effect.tapError((e) =>
                  e instanceof PortTaken ? docker.remove(container).pipe(Effect.andThen(docker.run(spec))) : Effect.void
                ),
                Effect.retry({
                  times: 6,
                  while: (e) => e instanceof PortTaken,
                  schedule: Schedule.exponential("100 millis")
                }),
                Effect.catch((e) =>
                  docker.logs(container).pipe(
                    Effect.orElseSucceed(() => ""),
                    Effect.flatMap((output) =>
                      CloudError.deploy(
                        name,
                        `${
                          e instanceof PortTaken
                            ? `port ${start} stays taken on this machine: choose another --vm-base-port (one below Linux's ` +
                              `ephemeral range, /proc/sys/net/ipv4/ip_local_port_range, is never a connection's)`
                            : e.message
                        }${output.trim() === "" ? "" : `\n${output.trim()}`}`
                      )
                    )
                  )
                ),
                Effect.provideService(DockerClient, docker)
              )
              const host = hostNetwork ? "127.0.0.1" : yield* docker.address(container, network).pipe(
                Effect.mapError(toCloud(name))
              )
              const target = { user: "root", host, port: start }
              const connection = yield* SshClient.connect(target, connectionOptions(config, key.privateKey)).pipe(
                Effect.mapError(toCloud(name))
              )
              const home = homeIn(ns, name)
              // On the host network, a port taken by someone else's sshd would let us in elsewhere: the sshd that
              // answers must be the one whose pid file names this container.
              const check = yield* connection.run(
                `[ -e ${SshClient.quote(pidFile(container))} ] || ` +
                  `{ echo "port ${start} answers, but not from ${container}: another process holds it; ` +
                  `choose another --vm-base-port" >&2; exit 1; }; ` +
                  `echo -n check && mkdir -p ${SshClient.quote(`${home}/logs`)} ${SshClient.quote(`${home}/fs`)}`
              ).pipe(
                Effect.retry({ times: 20, schedule: Schedule.spaced("100 millis") }),
                Effect.mapError(toCloud(name))
              )
              if (check.code !== 0 || check.stdout !== "check") {
                return yield* CloudError.deploy(name, `the container does not answer over ssh: ${check.stderr.trim()}`)
              }
              const sandbox = Sandbox.make({
                name,
                home,
                namespace: config.namespace,
                binariesPath: agentConfig.binariesPath,
                checkFileConsistency: config.checkFileConsistency,
                portStart: Provision.portStart(config, index)
              })
              const agent = Agent.make({
                index,
                config: agentConfig,
                point: { host, port: start },
                ports,
                artifactsDir: path.join(options.artifactsDir, name),
                connect: `ssh -i ${key.path} -p ${start} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ` +
                  `root@${host} -t 'cd ${home}; exec $SHELL'`,
                descriptor: Sandbox.descriptor("docker", sandbox, { container, host, port: start, key: key.path }),
                runner: SshRunner.make({ connection, events, ...sandbox, graceSeconds, faketime: config.faketime })
              })
              ready += 1
              yield* events.emit({ type: "agent-ready", agent: name, ready, total: configs.length })
              return agent
            }), { concurrency: 64 })
        })
      })
    })
  )

/** Runners for agents of a run that is still alive, from their descriptors, owned by the current scope. */
export const reattach = Effect.fn("DockerAgents.reattach")(function*(
  descriptors: ReadonlyArray<Agent.Descriptor>,
  config: CloudConfig.CloudConfig
) {
  const events = yield* RunEvents.RunEvents
  // Every container at once, like a deployment: one connection each.
  return yield* Effect.forEach(descriptors, (d) =>
    Effect.gen(function*() {
      const key = yield* SshKeys.ensure(config.namespace, String(d.key))
      const connection = yield* SshClient.connect(
        { user: "root", host: String(d.host), port: Number(d.port) },
        connectionOptions(config, key.privateKey)
      ).pipe(Effect.mapError(toCloud(String(d.agent))))
      const sandbox = Sandbox.fromDescriptor(d)
      return [
        sandbox.name,
        SshRunner.make({ connection, events, ...sandbox, graceSeconds: 3, faketime: config.faketime })
      ] as const
    }), { concurrency: 64 })
})

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
 * tags, found by label; then releases the Ledger's Docker records. Without an engine, Docker records in the
 * Ledger are an error (they cannot be checked); no record and no engine is nothing to do.
 */
export const cleanUp = Effect.fn("DockerAgents.cleanUp")(function*(namespace: string) {
  const ledger = yield* Ledger.Ledger
  const docker = yield* DockerClient
  const records = (yield* ledger.outstanding).filter((r) => kinds.includes(r.kind))
  const reachable = yield* docker.ping.pipe(Effect.as(true), Effect.catch(() => Effect.succeed(false)))
  if (!reachable) {
    if (records.length === 0) return { containers: [], networks: [], images: [] } satisfies Leftovers
    return yield* CloudError.state(
      ledger.file,
      `${records.length} Docker resource(s) of ${namespace} are recorded but no Docker engine answers at ` +
        `${docker.engine}: start it (or set DOCKER_HOST) and run CLOUD clean up again`
    )
  }
  const found = yield* leftovers(namespace).pipe(Effect.mapError((e) => CloudError.state(docker.engine, e.message)))
  const fail = (e: DockerError.DockerError) => CloudError.state(docker.engine, `clean up failed: ${e.message}`)
  yield* Effect.forEach(found.containers, (c) => docker.remove(c), { concurrency: 16, discard: true }).pipe(
    Effect.mapError(fail)
  )
  yield* Effect.forEach(found.networks, (n) => docker.removeNetwork(n), { discard: true }).pipe(Effect.mapError(fail))
  yield* Effect.forEach(found.images, (i) => docker.removeImage(i), { discard: true }).pipe(Effect.mapError(fail))
  for (const r of records) yield* ledger.release(r.id)
  return found
})

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`

/** This backend as a value, for the CLI's list of backends. */
export const backend: Backend.Backend = {
  id: "docker",
  config: Config,
  select: Effect.fnUntraced(function*(config, context) {
    if (config.mode !== "localhost") return Backend.Pass({ why: "not --localhost" })
    if (config.agentRuntime === "process") return Backend.Pass({ why: "--agent-runtime process" })
    const engine = Engine.engineOptions()
    const where = Engine.engineLabel(engine)
    if (!(yield* Engine.probe(engine))) {
      if (config.agentRuntime === "auto") return Backend.Pass({ why: `no Docker engine answers at ${where}` })
      return yield* CloudError.config(
        "--agent-runtime docker",
        `no Docker engine answers at ${where}: start dockerd (or point DOCKER_HOST at one; see README "Docker"), ` +
          `or use --agent-runtime process`
      )
    }
    const why = config.agentRuntime === "docker"
      ? "--agent-runtime docker"
      : "an engine answers; --agent-runtime process for processes"
    return Backend.Take({
      description: `Docker containers on ${where} (${why})`,
      layer: layer({ stateDir: context.stateDir, config, artifactsDir: context.artifactsDir }).pipe(
        Layer.provide(Engine.layer(engine))
      )
    })
  }),
  reattach: (descriptors, options) => reattach(descriptors, options.config),
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
        Effect.mapError((e) => CloudError.state(docker.engine, e.message))
      )
      return [...found.containers, ...found.networks, ...found.images]
    }).pipe(Effect.provide(Engine.layer())),
  forceKill: (namespace) => Engine.removeByLabelSync(namespaceLabel, namespace),
  jobs: ({ stateDir }) => DockerJobs.all(stateDir)
}
