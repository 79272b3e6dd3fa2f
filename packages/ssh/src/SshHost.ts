/**
 * The `--ssh-host [user@]host[:port]` backend: agents are process sandboxes on a host of the user's, reached
 * over one multiplexed ssh connection (reference §4.18 provisions a Debian host as root or a sudoer; here the
 * host only needs `sh`, `setsid`, `md5sum`, `grep` and `/proc`, which every Debian/Ubuntu has).
 *
 * **Details**
 *
 * Provisioning checks the host, then creates `${TMPDIR:-/tmp}/tezt-cloud-<uid>/<ns>/` on it; each agent gets
 * `agents/<name>/` there (its home; absolute paths it copies to live under its `fs/`). Teardown kills every
 * process carrying the namespace's marker on the host and removes the directory: nothing is left behind. Both
 * are recorded in the Ledger first, so `CLOUD clean up` can finish the job after a `kill -9`. Agents' sandboxes
 * are created and wiped in batches, many per ssh session (each session costs sshd ~0.1 s of CPU).
 */
import {
  Agent,
  AgentConfig,
  Backend,
  CloudConfig,
  CloudError,
  Deployment,
  Ledger,
  Limits,
  Provision,
  RunEvents,
  Sandbox,
  Teardown
} from "@tezt-cloud/core"
import { Effect, Exit, Layer, Request, RequestResolver, Schema } from "effect"
import * as path from "node:path"
import * as SshClient from "./SshClient.ts"
import type * as SshError from "./SshError.ts"
import * as SshKeys from "./SshKeys.ts"
import * as SshRunner from "./SshRunner.ts"

export interface Options {
  readonly stateDir: string
  readonly config: CloudConfig.CloudConfig
  readonly artifactsDir: string
  /** Where `~/.ssh/<ns>-tf` lives (the user's home by default). */
  readonly keyHome?: string | undefined
  /** Seconds a killed process tree gets between SIGTERM and SIGKILL. */
  readonly graceSeconds?: number | undefined
}

/** What this backend reads of the run's configuration, besides its target. */
export const Config = Schema.Struct({
  ...Provision.Config.fields,
  sshPrivateKey: Schema.UndefinedOr(Schema.String),
  insecureHostKeys: Schema.Boolean,
  sshMaxChannels: Schema.Number,
  faketime: Schema.UndefinedOr(Schema.String)
})
export type Config = typeof Config.Type

/** The ledger kinds this backend records. */
export const kinds: ReadonlyArray<string> = ["ssh-root", "ssh-sandbox"]

/** Connection options for the namespace: its key, its known hosts (or none, if asked), its channel limit. */
export const connectionOptions = (config: CloudConfig.CloudConfig, stateDir: string, privateKey: string) => ({
  privateKey,
  hostKeys: config.insecureHostKeys
    ? { _tag: "Insecure" as const }
    : {
      _tag: "TrustOnFirstUse" as const,
      knownHostsFile: path.join(Ledger.namespaceDir(stateDir, config.namespace), "known_hosts")
    },
  maxChannels: config.sshMaxChannels
})

interface ControlResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a control command on the host and fails unless it exits 0. */
const must = (
  connection: { run(line: string): Effect.Effect<ControlResult, SshError.SshError> },
  line: string,
  what: string,
  agent: string
) =>
  connection.run(line).pipe(
    Effect.mapError((e: SshError.SshError) => CloudError.deploy(agent, `${what}: ${e.message}`)),
    Effect.flatMap((r) =>
      r.code === 0
        ? Effect.succeed(r.stdout)
        : Effect.fail(CloudError.deploy(agent, `${what}: ${r.stderr.trim() || `exit ${r.code}`}`))
    )
  )

/**
 * One agent's control script (its stdout is dropped), run in a batch with others'; with `kill`, the processes
 * carrying that marker are killed first (one pass over /proc for the whole batch).
 */
class Control extends Request.Class<
  { readonly script: string; readonly kill: string | undefined; readonly id: number },
  ControlResult,
  SshError.SshError
> {}

/** The most control scripts one session runs. */
const maxBatch = 64

/**
 * Agents' control scripts (creating a sandbox, wiping one) in batches: those asked for together (within 10 ms,
 * up to `maxBatch`) run side by side in one session on the host, each in its own subshell, each with its own
 * exit code and stderr (one short line each, written at once). Every session costs sshd about 0.1 s of CPU: deploying or tearing down
 * 1000 agents takes a few dozen sessions, not 1000.
 */
const controlBatches = (connection: SshClient.Connection, graceSeconds: number) => {
  let next = 0
  const resolver = RequestResolver.make<Control>((entries) => {
    const markers = entries.flatMap((entry) => entry.request.kill === undefined ? [] : [entry.request.kill])
    return connection.run(
      [
        ...(markers.length === 0 ? [] : [`(\n${SshRunner.killScript(markers, graceSeconds)}\n)`]),
        `d=$(mktemp -d) || exit 1`,
        ...entries.map((entry, i) =>
          `{ (\n${entry.request.script}\n) >/dev/null 2>"$d/${i}"; echo "tezt-control ${i} $?"; } &`
        ),
        `wait`,
        `for f in "$d"/*; do [ -s "$f" ] && { printf 'tezt-stderr %s ' "\${f##*/}"; tr '\\n' ' ' <"$f"; echo; }; done`,
        `rm -rf "$d"`
      ].join("\n")
    ).pipe(
      Effect.match({
        onFailure: (error) => entries.forEach((entry) => entry.completeUnsafe(Exit.fail(error))),
        onSuccess: (session) => {
          const codes = new Map<number, number>()
          const stderrs = new Map<number, string>()
          for (const line of session.stdout.split("\n")) {
            const code = /^tezt-control (\d+) (\d+)$/.exec(line)
            if (code) codes.set(Number(code[1]), Number(code[2]))
            const stderr = /^tezt-stderr (\d+) (.*)$/.exec(line)
            if (stderr) stderrs.set(Number(stderr[1]), stderr[2]!.trim())
          }
          entries.forEach((entry, i) =>
            entry.completeUnsafe(Exit.succeed(
              codes.has(i) ? { code: codes.get(i)!, stdout: "", stderr: stderrs.get(i) ?? "" } : {
                code: session.code === 0 ? 255 : session.code,
                stdout: "",
                stderr: session.stderr.trim() || "the batch of control commands ended before this one"
              }
            ))
          )
        }
      })
    )
  }).pipe(RequestResolver.setDelay("10 millis"), RequestResolver.batchN(maxBatch))
  const request = (script: string, kill: string | undefined): Effect.Effect<ControlResult, SshError.SshError> =>
    Effect.request(new Control({ script, kill, id: next++ }), resolver)
  return {
    run: (script: string) => request(script, undefined),
    /** Kills the processes carrying `marker`, then removes `dir`. */
    wipe: (marker: string, dir: string) => request(`rm -rf ${SshClient.quote(dir)}`, marker)
  }
}

/**
 * Kills the processes carrying `marker` on the host and removes `dir`. The kill script runs in a subshell: its
 * `exit 0` as soon as nothing is left ends the subshell only, so a wipe waits the grace period only for a
 * process that survives SIGTERM.
 */
const wipe = (connection: SshClient.Connection, marker: string, dir: string, graceSeconds: number) =>
  connection.run(`(\n${SshRunner.killScript(marker, graceSeconds)}\n)\nrm -rf ${SshClient.quote(dir)}`)

export const layer = (options: Options) =>
  Layer.effect(
    Deployment.Deployment,
    Effect.gen(function*() {
      const ledger = yield* Ledger.Ledger
      const events = yield* RunEvents.RunEvents
      const limits = yield* Limits.Limits
      const { config } = options
      const target = config.sshHost
      if (target === undefined) return yield* Effect.die(new Error("SshHost.layer needs --ssh-host"))
      const graceSeconds = options.graceSeconds ?? 3
      const host = SshClient.label(target)

      return Deployment.Deployment.of({
        backend: `ssh-host ${host}`,
        deploy: Effect.fn("SshHost.deploy")(function*(configs: ReadonlyArray<AgentConfig.AgentConfig>) {
          const key = yield* SshKeys.ensure(config.namespace, config.sshPrivateKey, options.keyHome)
          const connection = yield* SshClient.connect(
            target,
            connectionOptions(config, options.stateDir, key.privateKey)
          ).pipe(
            Effect.mapError((e) => CloudError.deploy(host, e.message))
          )
          // Provisioning: what the sandboxes need, and where they go.
          const probe = yield* must(
            connection,
            `for c in sh setsid md5sum grep sed mktemp tr; do command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 1; }; done; ` +
              `[ -r /proc/self/environ ] || { echo "no /proc" >&2; exit 1; }; echo "\${TMPDIR:-/tmp}/tezt-cloud-$(id -u)"`,
            "the host cannot run agents",
            host
          )
          const root = path.posix.join(probe.trim(), config.namespace)
          yield* Ledger.scoped(
            {
              id: `ssh-root:${host}`,
              kind: "ssh-root",
              data: {
                user: target.user,
                host: target.host,
                port: target.port,
                root,
                key: key.path,
                namespace: config.namespace
              }
            },
            must(connection, `mkdir -p ${SshClient.quote(root)}`, "cannot create the run's directory", host),
            // A failed wipe is reported and keeps the host's record, for `CLOUD clean up` to retry.
            () =>
              Teardown.reported(
                `host ${host}`,
                wipe(connection, `TEZT_CLOUD_NS=${config.namespace}`, root, graceSeconds).pipe(
                  Effect.flatMap((r) => r.code === 0 ? Effect.void : Effect.fail(new Error(r.stderr.trim()))),
                  Effect.andThen(connection.run(`rmdir ${SshClient.quote(path.posix.dirname(root))} 2>/dev/null; true`))
                )
              ).pipe(Effect.provideService(RunEvents.RunEvents, events))
          ).pipe(Effect.provideService(Ledger.Ledger, ledger))

          const control = controlBatches(connection, graceSeconds)
          let ready = 0
          let down = 0
          // Created after the host's record: every agent is down before the host is wiped.
          const within = yield* Teardown.pool(limits.teardowns)
          return yield* Effect.forEach(configs, (agentConfig, index) =>
            within(Effect.gen(function*() {
              const name = agentConfig.name
              if (!Provision.validName.test(name)) {
                return yield* CloudError.deploy(
                  name,
                  "an agent name must be one path segment of letters, digits, '.', '_' or '-'"
                )
              }
              const home = path.posix.join(root, "agents", name)
              const sandbox = Sandbox.make({
                name,
                home,
                namespace: config.namespace,
                binariesPath: agentConfig.binariesPath,
                checkFileConsistency: config.checkFileConsistency,
                portStart: Provision.portStart(config, index)
              })
              const marker = sandbox.marker
              yield* Ledger.scoped(
                {
                  id: `ssh-sandbox:${host}:${name}`,
                  kind: "ssh-sandbox",
                  data: { agent: name, host, path: home, marker }
                },
                must(
                  control,
                  `mkdir -p ${SshClient.quote(`${home}/logs`)} ${SshClient.quote(`${home}/fs`)}`,
                  "cannot create its sandbox",
                  name
                ),
                () =>
                  Teardown.reported(
                    `agent ${name}`,
                    control.wipe(`TEZT_CLOUD_AGENT=${marker}`, home).pipe(
                      Effect.flatMap((r) => r.code === 0 ? Effect.void : Effect.fail(new Error(r.stderr.trim()))),
                      Effect.andThen(Effect.suspend(() => {
                        down += 1
                        return events.emit({ type: "agent-down", agent: name, down, total: configs.length })
                      }))
                    )
                  ).pipe(Effect.provideService(RunEvents.RunEvents, events))
              ).pipe(Effect.provideService(Ledger.Ledger, ledger))
              const start = sandbox.portStart
              const agent = Agent.make({
                index,
                config: agentConfig,
                point: { host: target.host, port: target.port },
                ports: { start, end: start + config.portsPerVm - 1 },
                artifactsDir: path.join(options.artifactsDir, name),
                connect:
                  `ssh -i ${key.path} -p ${target.port} ${target.user}@${target.host} -t 'cd ${home}; exec $SHELL'`,
                descriptor: Sandbox.descriptor("ssh-host", sandbox, { ...target, key: key.path }),
                runner: SshRunner.make({ connection, events, ...sandbox, graceSeconds, faketime: config.faketime })
              })
              ready += 1
              yield* events.emit({ type: "agent-ready", agent: name, ready, total: configs.length })
              return agent
            })), { concurrency: limits.deploys })
        })
      })
    })
  )

/**
 * Runners for agents of a run that is still alive, from their descriptors: one connection per host, shared by
 * its agents, owned by the current scope.
 */
export const reattach = Effect.fn("SshHost.reattach")(function*(
  descriptors: ReadonlyArray<Agent.Descriptor>,
  config: CloudConfig.CloudConfig,
  stateDir: string,
  options: {
    /**
     * Each runner runs a single command (`tezt-cloud agents exec`): a host's persistent executor is then started
     * only where the host serves several of the agents. For one command, one channel costs one sshd session;
     * the executor a session and a perl start.
     */
    readonly oneCommandEach?: boolean | undefined
  } = {}
) {
  const events = yield* RunEvents.RunEvents
  const targetOf = (d: Agent.Descriptor) => ({ user: String(d.user), host: String(d.host), port: Number(d.port) })
  const hosts = new Map(descriptors.map((d) => [SshClient.label(targetOf(d)), d] as const))
  // Every host at once: a fan-out over 64 hosts must not pay 64 handshakes in a row.
  const connections = new Map(
    yield* Effect.forEach(hosts, ([id, d]) =>
      Effect.gen(function*() {
        const key = yield* SshKeys.ensure(config.namespace, String(d.key))
        const connection = yield* SshClient.connect(targetOf(d), {
          ...connectionOptions(config, stateDir, key.privateKey),
          executor: !options.oneCommandEach || hosts.size < descriptors.length
        }).pipe(
          Effect.mapError((e) => CloudError.deploy(String(d.agent), e.message))
        )
        return [id, connection] as const
      }), { concurrency: 64 })
  )
  return descriptors.map((d) =>
    [
      String(d.agent),
      SshRunner.make({
        connection: connections.get(SshClient.label(targetOf(d)))!,
        events,
        ...Sandbox.fromDescriptor(d),
        graceSeconds: 3,
        faketime: config.faketime
      })
    ] as const
  )
})

/**
 * Finishes what killed runs left on ssh hosts: for every `ssh-root` record, reconnects with the recorded key,
 * kills the namespace's processes there and removes the run's directory.
 */
export const cleanUp = Effect.fn("SshHost.cleanUp")(function*(stateDir: string, config: CloudConfig.CloudConfig) {
  const ledger = yield* Ledger.Ledger
  const cleaned: Array<string> = []
  for (const resource of yield* ledger.outstanding) {
    if (!kinds.includes(resource.kind)) continue
    if (resource.kind === "ssh-root") {
      const target = {
        user: String(resource.data.user),
        host: String(resource.data.host),
        port: Number(resource.data.port)
      }
      const key = yield* SshKeys.ensure(config.namespace, String(resource.data.key))
      yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* SshClient.connect(target, connectionOptions(config, stateDir, key.privateKey))
        const r = yield* wipe(connection, `TEZT_CLOUD_NS=${config.namespace}`, String(resource.data.root), 1)
        if (r.code !== 0) return yield* Effect.fail(new Error(r.stderr.trim()))
      })).pipe(Effect.mapError((e) => CloudError.state(SshClient.label(target), `clean up failed: ${e.message}`)))
      cleaned.push(`${SshClient.label(target)}:${String(resource.data.root)}`)
    }
    yield* ledger.release(resource.id)
  }
  return cleaned
})

/**
 * What of the namespace is still on the hosts its runs used (every host its ledger ever recorded): the run's
 * directory, and processes carrying its marker.
 */
export const leftovers = Effect.fn("SshHost.leftovers")(function*(stateDir: string, config: CloudConfig.CloudConfig) {
  const entries = yield* Ledger.read(Ledger.ledgerFile(stateDir, config.namespace))
  const roots = new Map(
    entries.filter((e) => e.op === "acquire" && e.kind === "ssh-root").map((e) => [e.id, e.data] as const)
  )
  const found = yield* Effect.forEach(roots.values(), (data) =>
    Effect.scoped(Effect.gen(function*() {
      const target = { user: String(data.user), host: String(data.host), port: Number(data.port) }
      const root = String(data.root)
      const key = yield* SshKeys.ensure(config.namespace, String(data.key))
      const connection = yield* SshClient.connect(target, connectionOptions(config, stateDir, key.privateKey)).pipe(
        Effect.mapError((e) => CloudError.state(SshClient.label(target), e.message))
      )
      const r = yield* connection.run(
        `[ -e ${SshClient.quote(root)} ] && echo "dir"; ` +
          `grep -lzxF ${SshClient.quote(`TEZT_CLOUD_NS=${config.namespace}`)} /proc/[0-9]*/environ 2>/dev/null | wc -l`
      ).pipe(Effect.mapError((e) => CloudError.state(SshClient.label(target), e.message)))
      const lines = r.stdout.trim().split("\n")
      const processes = Number(lines.at(-1))
      return [
        ...(lines.includes("dir") ? [`${SshClient.label(target)}:${root}`] : []),
        ...(processes > 0 ? [`${processes} process(es) of ${config.namespace} on ${SshClient.label(target)}`] : [])
      ]
    })), { concurrency: 16 })
  return found.flat()
})

/** This backend as a value, for the CLI's list of backends. */
export const backend: Backend.Backend = {
  id: "ssh-host",
  config: Config,
  select: (config, context) => {
    if (config.sshHost === undefined) return Effect.succeed(Backend.Pass({ why: "no --ssh-host" }))
    return Effect.succeed(Backend.Take({
      description: `process sandboxes on ${SshClient.label(config.sshHost)} over ssh`,
      layer: layer({ stateDir: context.stateDir, config, artifactsDir: context.artifactsDir })
    }))
  },
  reattach: (descriptors, options) =>
    reattach(descriptors, options.config, options.stateDir, { oneCommandEach: options.oneCommandEach }),
  where: (d) => `${d.user}@${d.host}:${d.port}`,
  kinds,
  cleanUp: ({ config, stateDir }) =>
    cleanUp(stateDir, config).pipe(Effect.map((hosts) => hosts.map((h) => `removed ${h} and its processes`))),
  leftovers: ({ config, stateDir }) => leftovers(stateDir, config),
  // Processes on a remote host cannot be reached synchronously: `CLOUD clean up` removes them.
  forceKill: () => 0,
  jobs: () => []
}
