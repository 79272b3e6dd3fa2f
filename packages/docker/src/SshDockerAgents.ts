/**
 * Docker agents on an ssh host (`--ssh-host H --agent-runtime docker`, Tezt cloud's way with an ssh host): the
 * host's Docker engine is driven over the run's one ssh connection to it, and the agents are containers of it
 * exactly as local Docker agents are (`DockerAgents`: the same image build, names, labels, sshd entrypoint, ledger
 * records and teardown), only on another engine.
 *
 * **Details**
 *
 * - The engine: the socket the host's `DOCKER_HOST` names (`unix://…`), else `/var/run/docker.sock`, reached as an
 *   OpenSSH stream-local forward of the connection (what `ssh -L local.sock:/var/run/docker.sock` does): each
 *   engine request is a channel; the host needs no Docker client, no open port, nothing but sshd's default
 *   `AllowStreamLocalForwarding yes`.
 * - Reaching the agents: each container's sshd listens on the host network on its agent's first port, and is
 *   reached through the connection to the host (the host is its jump host, `ssh -J host root@127.0.0.1 -p PORT`
 *   from another terminal): the agents' ports need not be open to this machine, and a host behind a bastion works
 *   the same. Their daemons are at the host's address, as the host's own ports.
 * - Before anything is made, the host is checked: Docker missing, its engine stopped, or the user not allowed on
 *   its socket each fail in one line that says the fix. With `--ssh-provision` (and password-less `sudo` there)
 *   they are fixed instead: `apt-get install docker.io`, the engine started, the user added to the socket's group
 *   (then the host is reached again, for the new group to count). That stays after the run.
 * - The image: built on the host's engine from the local `dockerfiles/` (the build context is sent over the
 *   connection); the base image `debian.Dockerfile` starts from is imported there first when the engine lacks it
 *   (`BaseImage.ensure`, from this machine's cache).
 * - Ledger: the engine (how to reach it) is recorded before anything is made on it, and every container, network
 *   and image record names it (`engine`): `CLOUD clean up` after a `kill -9` reconnects and removes what carries
 *   the namespace's label there.
 */
import {
  type AgentConfig,
  Backend,
  CloudConfig,
  CloudError,
  Deployment,
  Ledger,
  Limits,
  RunEvents
} from "@tezt-cloud/core"
import { SshClient, SshHost, SshKeys, SshSandbox } from "@tezt-cloud/ssh"
import type Docker from "dockerode"
import { Context, Effect, Layer, Schema } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import * as BaseImage from "./BaseImage.ts"
import * as DockerAgents from "./DockerAgents.ts"
import * as Engine from "./DockerClient.ts"
import { DockerClient } from "./DockerClient.ts"
import * as DockerImage from "./DockerImage.ts"

/** What this backend reads of the run's configuration: the ssh host's options and the Docker agents'. */
export const Config = Schema.Struct({ ...DockerAgents.Config.fields, ...SshHost.Config.fields })
export type Config = typeof Config.Type

/** The ssh host's options, and the Docker agents' own. */
export interface Options
  extends Omit<SshHost.Options, "config">, Pick<DockerAgents.Options, "dockerfilesDir" | "readySeconds">
{
  readonly config: Config
}

/** The backend's name in the CLI's list, and in its agents' descriptors. */
const backendId = "ssh-docker"

/** The ledger kind of an engine on an ssh host (how to reach it); its resources are `DockerAgents.kinds`. */
const engineKind = "ssh-docker-engine"

/** The ledger kinds this backend records (Docker resources only when they name an engine: see `DockerAgents`). */
export const kinds: ReadonlyArray<string> = [engineKind, ...DockerAgents.kinds]

/** What the host says of its Docker engine (`probeScript`). */
export type EngineState =
  | { readonly _tag: "Ready"; readonly user: string; readonly socket: string }
  | {
    readonly _tag: "Denied"
    readonly user: string
    readonly socket: string
    readonly owner: string
    readonly mode: string
  }
  | { readonly _tag: "Stopped"; readonly user: string; readonly socket: string }
  | { readonly _tag: "Missing"; readonly user: string; readonly socket: string }
  | { readonly _tag: "Unsupported"; readonly user: string; readonly dockerHost: string }

/**
 * Finds the engine's socket on the host and whether the user may use it; one line `STATE USER SOCKET [OWNER MODE]`,
 * then `sudo` when password-less sudo works.
 */
export const probeScript = [
  `u=$(id -un)`,
  `h="\${DOCKER_HOST:-unix:///var/run/docker.sock}"`,
  `case $h in unix://*) s=\${h#unix://} ;; *) echo "unsupported $u $h"; s= ;; esac`,
  `if [ -z "$s" ]; then :`,
  `elif [ -S "$s" ]; then`,
  `  if [ -r "$s" ] && [ -w "$s" ]; then echo "ready $u $s"; else echo "denied $u $s $(stat -c '%U:%G %a' -- "$s")"; fi`,
  `elif command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ]; then`,
  `  echo "stopped $u $s"`,
  `else echo "missing $u $s"; fi`,
  `sudo -n true 2>/dev/null && echo sudo`,
  `true`
].join("\n")

/** The state `probeScript` printed, and whether sudo works there. */
export const parseProbe = (output: string): { readonly state: EngineState; readonly sudo: boolean } => {
  const [first = "", ...rest] = output.trim().split("\n")
  const [tag = "", user = "", socket = "", owner = "", mode = ""] = first.trim().split(/\s+/)
  const sudo = rest.some((l) => l.trim() === "sudo")
  switch (tag) {
    case "ready":
      return { state: { _tag: "Ready", user, socket }, sudo }
    case "denied":
      return { state: { _tag: "Denied", user, socket, owner, mode }, sudo }
    case "stopped":
      return { state: { _tag: "Stopped", user, socket }, sudo }
    case "unsupported":
      return { state: { _tag: "Unsupported", user, dockerHost: socket }, sudo }
    default:
      return { state: { _tag: "Missing", user, socket }, sudo }
  }
}

/**
 * The one line that says what is wrong with the host's Docker and how to fix it (`undefined`: nothing); the error
 * it goes in names the host.
 */
export const explain = (state: EngineState): string | undefined => {
  const or = "or run again with --ssh-provision (password-less sudo there), or drop --agent-runtime docker for " +
    "process sandboxes"
  switch (state._tag) {
    case "Ready":
      return undefined
    case "Missing":
      return `Docker is not installed on the host: install it (sudo apt-get install docker.io), ${or}`
    case "Stopped":
      return `Docker is installed on the host but its engine does not run (no socket ${state.socket}): start it ` +
        `(sudo systemctl start docker), ${or}`
    case "Denied": {
      const group = state.owner.split(":")[1] ?? ""
      const socket = `${state.user} may not use the Docker socket ${state.socket} (${state.owner}, mode ` +
        `${state.mode})`
      return group === "" || group === "root"
        ? `${socket}, which only root may use: give the engine a group of its own (dockerd's --group, docker by ` +
          `default), or drop --agent-runtime docker for process sandboxes`
        : `${socket}: add ${state.user} to its group (sudo usermod -aG ${group} ${state.user}, then log in again), ${or}`
    }
    case "Unsupported":
      return `the host's DOCKER_HOST is ${state.dockerHost}: only an engine's unix socket is reached over ssh; ` +
        `unset it there (for /var/run/docker.sock) or set it to unix://<socket>`
  }
}

/** The shell line `--ssh-provision` runs (with sudo) to fix `state`; `undefined` when there is nothing it can do. */
const provisionScript = (state: EngineState): string | undefined => {
  const start = `{ sudo -n systemctl enable --now docker 2>/dev/null || sudo -n service docker start; }`
  switch (state._tag) {
    case "Missing":
      return `sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -q && ` +
        `sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io && ${start}`
    case "Stopped":
      return start
    case "Denied": {
      const group = state.owner.split(":")[1] ?? ""
      return group === "" || group === "root"
        ? undefined
        : `sudo -n usermod -aG ${SshClient.quote(group)} ${SshClient.quote(state.user)}`
    }
    default:
      return undefined
  }
}

/** The engine's name in messages and ledger records. */
const engineName = (target: SshClient.Target, socket: string) => `ssh://${SshClient.label(target)}${socket}`

/**
 * A client of the engine listening on `socket` on the host of `connection`: each request is a stream-local
 * forward (a channel) of the connection.
 */
export const engineOver = (connection: SshClient.Connection, socket: string): DockerClient["Service"] => {
  const agent = new http.Agent({ keepAlive: false })
  const open = (callback: (error: Error | null, stream?: Duplex) => void) =>
    Effect.runPromise(connection.client).then(
      (client) => {
        client.openssh_forwardOutStreamLocal(socket, (error, channel) => callback(error ?? null, channel))
      },
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)))
    )
  const withChannels = agent as unknown as {
    createConnection: (options: unknown, callback: (error: Error | null, stream?: Duplex) => void) => undefined
  }
  // The http module asks its agent for a socket: here, a channel (made asynchronously: none is returned).
  withChannels.createConnection = (_options, callback) => {
    void open(callback)
    return undefined
  }
  // docker-modem sends every request through `agent` (its typings do not say so).
  const options = { host: "docker", port: 80, protocol: "http", agent } as Docker.DockerOptions
  return Engine.make(options, engineName(connection.target, socket))
}

/** Runs a control line on the host; its output, or a deploy failure naming `host` and `what`. */
const run = (connection: SshClient.Connection, line: string, host: string, what: string) =>
  connection.run(line).pipe(
    Effect.mapError((e) => CloudError.deploy(host, `${what}: ${e.message}`, { cause: e })),
    Effect.flatMap((r) =>
      r.code === 0
        ? Effect.succeed(r.stdout)
        : Effect.fail(CloudError.deploy(host, `${what}: ${r.stderr.trim() || `exit ${r.code}`}`))
    )
  )

/**
 * The host's engine, checked (and, with `provision`, fixed): the connection to use it through (a new one when the
 * user was just added to the socket's group) and the socket.
 */
const reachEngine = Effect.fn("SshDockerAgents.reachEngine")(function*(
  entered: SshHost.Entered,
  options: Options
) {
  const host = SshClient.label(options.target)
  const probe = (on: SshClient.Connection) =>
    run(on, probeScript, host, "cannot check Docker").pipe(Effect.map(parseProbe))
  let connection = entered.connection
  let { state, sudo } = yield* probe(connection)
  if (state._tag !== "Ready" && options.config.sshProvision) {
    for (let round = 0; round < 3 && state._tag !== "Ready"; round++) {
      const script = provisionScript(state)
      if (script === undefined) break
      if (!sudo) {
        return yield* CloudError.deploy(
          host,
          `${explain(state)!.replace(/, or run again with --ssh-provision.*$/, "")}; --ssh-provision needs ` +
            `password-less sudo there for ${state.user} (sudo -n true failed)`
        )
      }
      yield* Effect.logInfo(`${host}: ${state._tag === "Denied" ? "letting" : "making"} Docker usable with sudo`)
      yield* run(connection, script, host, "--ssh-provision failed")
      if (state._tag === "Denied") {
        // A group counts from the next login on: the host is reached again.
        connection = yield* SshSandbox.connect(
          { ...options.target, ...(entered.jump === undefined ? {} : { jump: entered.jump }) },
          entered.key.privateKey,
          SshHost.settings(options.config, options.stateDir, options.graceSeconds),
          host
        )
      }
      ;({ state, sudo } = yield* probe(connection))
    }
  }
  const problem = explain(state)
  if (problem !== undefined || state._tag !== "Ready") {
    return yield* CloudError.deploy(host, problem ?? "Docker cannot be used there")
  }
  return { connection, socket: state.socket }
})

/**
 * Whether some agent's Dockerfile starts from the base image made from Debian packages (which no registry serves),
 * its `BASE_IMAGE` build arg not overridden.
 */
const needsBaseImage = (configs: ReadonlyArray<AgentConfig.AgentConfig>, namespace: string, dir: string | undefined) =>
  Effect.map(
    Effect.forEach(
      new Set(
        configs.flatMap((c) =>
          c.dockerImage._tag === "Alias" && c.dockerBuildArgs.BASE_IMAGE === undefined ? [c.dockerImage.alias] : []
        )
      ),
      (alias) => DockerImage.dockerfile(alias, dir, namespace)
    ),
    (files) => files.some((file) => fs.readFileSync(file, "utf8").includes(BaseImage.reference))
  )

/**
 * The deployment: the host reached and checked (provisioned when asked), the engine recorded, then local Docker
 * agents' deployment (`DockerAgents.layer`) with that engine, in the deployment's scope.
 */
export const layer = (options: Options) =>
  Layer.effect(
    Deployment.Deployment,
    Effect.gen(function*() {
      const ledger = yield* Ledger.Ledger
      const events = yield* RunEvents.RunEvents
      const limits = yield* Limits.Limits
      const { config, target } = options
      const host = SshClient.label(target)
      const deploy = Effect.fn("SshDockerAgents.deploy")(function*(configs: ReadonlyArray<AgentConfig.AgentConfig>) {
        const entered = yield* SshHost.enter(options, { ledger, events })
        const { connection, socket } = yield* reachEngine(entered, options)
        const docker = engineOver(connection, socket)
        const engine = docker.engine
        // How to reach the engine again, before anything is made on it: clean up after a kill -9 reconnects.
        yield* Ledger.scoped(
          {
            id: `${engineKind}:${engine}`,
            kind: engineKind,
            data: {
              ...target,
              key: entered.key.path,
              socket,
              engine,
              namespace: config.namespace,
              ...(entered.jump === undefined ? {} : { jump: entered.jump })
            }
          },
          Effect.void,
          () => Effect.void
        ).pipe(Effect.provideService(Ledger.Ledger, ledger))
        if (yield* needsBaseImage(configs, config.namespace, options.dockerfilesDir)) {
          const done = yield* BaseImage.ensure().pipe(Effect.provideService(DockerClient, docker))
          if (done !== "present") yield* Effect.logInfo(`${host}: base image ${BaseImage.reference} ${done} there`)
        }
        const agents = yield* Layer.build(
          DockerAgents.layer({
            stateDir: options.stateDir,
            config,
            artifactsDir: options.artifactsDir,
            keyHome: options.keyHome,
            graceSeconds: options.graceSeconds,
            dockerfilesDir: options.dockerfilesDir,
            readySeconds: options.readySeconds,
            remote: {
              backend: backendId,
              engine,
              via: connection,
              jump: [...(entered.jump === undefined ? [] : [entered.jump]), SshClient.label(target)].join(","),
              address: target.host
            }
          }).pipe(
            Layer.provide(Layer.succeed(DockerClient, docker)),
            Layer.provide(Layer.succeed(Ledger.Ledger, ledger)),
            Layer.provide(Layer.succeed(RunEvents.RunEvents, events))
          )
        ).pipe(Effect.provideService(Limits.Limits, limits))
        return yield* Context.get(agents, Deployment.Deployment).deploy(configs)
      })
      return Deployment.Deployment.of({ backend: `ssh-host ${host} (Docker)`, deploy })
    })
  )

/** The engines of the namespace's ledger records still outstanding, with how to reach each. */
const engines = (records: ReadonlyArray<Ledger.Resource>) => records.filter((r) => r.kind === engineKind)

/** Reaches the engine of a ledger record (with the run's key) and runs `f` on it, in a scope of its own. */
const onRecordedEngine = <A, R>(
  record: Ledger.Resource,
  config: Config,
  stateDir: string,
  f: (docker: DockerClient["Service"]) => Effect.Effect<A, CloudError.CloudError, R>
) =>
  Effect.scoped(Effect.gen(function*() {
    const reach = SshSandbox.reachOf(record.data)
    const host = SshClient.label(reach)
    const key = yield* SshKeys.ensure(config.namespace, reach.key)
    const connection = yield* SshSandbox.connect(reach, key.privateKey, SshHost.settings(config, stateDir, 1), host)
    return yield* f(engineOver(connection, String(record.data.socket)))
  }))

/**
 * Removes what killed runs of the namespace left on ssh hosts' engines: for every engine recorded, everything
 * there carrying the namespace's label; then the records.
 */
export const cleanUp = Effect.fn("SshDockerAgents.cleanUp")(function*(stateDir: string, config: Config) {
  const ledger = yield* Ledger.Ledger
  const lines: Array<string> = []
  for (const record of engines(yield* ledger.outstanding)) {
    const engine = String(record.data.engine)
    const found = yield* onRecordedEngine(
      record,
      config,
      stateDir,
      (docker) => DockerAgents.cleanUp(config.namespace, engine).pipe(Effect.provideService(DockerClient, docker))
    )
    const all = [...found.containers, ...found.networks, ...found.images]
    lines.push(...all.map((name) => `removed ${name} from ${engine}`))
    yield* ledger.release(record.id)
  }
  return lines
})

/** What of the namespace is still on the engines its runs used (every engine its ledger ever recorded). */
export const leftovers = Effect.fn("SshDockerAgents.leftovers")(function*(stateDir: string, config: Config) {
  const entries = yield* Ledger.read(Ledger.ledgerFile(stateDir, config.namespace))
  const recorded = new Map(
    entries.filter((e) => e.op === "acquire" && e.kind === engineKind).map((e) => [e.id, e] as const)
  )
  const found = yield* Effect.forEach(
    recorded.values(),
    (entry) =>
      onRecordedEngine(
        { id: entry.id, kind: entry.kind, data: entry.data },
        config,
        stateDir,
        (docker) =>
          DockerAgents.leftovers(config.namespace).pipe(
            Effect.provideService(DockerClient, docker),
            Effect.mapError((e) => CloudError.state(docker.engine, e.message, { cause: e }))
          )
      )
  )
  return found.flatMap((f) => [...f.containers, ...f.networks, ...f.images])
})

/** This backend as a value, for the CLI's list of backends. */
export const backend: Backend.Backend = {
  id: backendId,
  config: Config,
  select: (config, context) => {
    if (config.backend._tag !== "SshHost") return Effect.succeed(Backend.Pass({ why: "no --ssh-host" }))
    if (!CloudConfig.dockerOnSshHost(config.backend)) {
      return Effect.succeed(Backend.Pass({ why: "--ssh-host without --agent-runtime docker" }))
    }
    return SshHost.take(
      config.backend.target,
      config,
      context,
      (host) => `Docker containers on ${host}'s engine over ssh`,
      layer
    )
  },
  // The containers with any key (the run made them), the host they are reached through checked as the run did.
  reattach: (descriptors, options) =>
    SshSandbox.reattach(descriptors, {
      ...DockerAgents.settings(options.config),
      jumpHostKeys: SshHost.settings(options.config, options.stateDir).hostKeys
    }, { oneCommandEach: options.oneCommandEach }),
  where: (d) => `${d.container} on ${d.jump}`,
  kinds,
  cleanUp: ({ config, stateDir }) => cleanUp(stateDir, config),
  leftovers: ({ config, stateDir }) => leftovers(stateDir, config),
  // An engine on another host cannot be reached synchronously: `CLOUD clean up` removes its containers.
  forceKill: () => 0,
  jobs: () => []
}
