/**
 * Agents that are sandbox directories on a machine reached over ssh, whatever the machine is (a host of the
 * user's, a container running sshd, a VM): the namespace's key, the connection, the sandbox's directories, the
 * parts the provisioning loop needs of a ready agent (runner, connect line, descriptor), and runners again from
 * descriptors in another process. Every backend whose agents are reached over ssh is written on this module.
 *
 * **Details**
 *
 * A descriptor of such an agent holds the sandbox (see core's `Sandbox`) and how the machine was reached: `user`,
 * `host`, `port` and `key`, the path of the private key on this machine (never the key itself).
 */
import { type Agent, CloudConfig, CloudError, Provision, RunEvents, type Runner, Sandbox } from "@tezt-cloud/core"
import { Effect, Schema, type Scope } from "effect"
import * as path from "node:path"
import * as SshClient from "./SshClient.ts"
import * as SshKeys from "./SshKeys.ts"
import * as SshRunner from "./SshRunner.ts"

/** What reaching sandboxes over ssh reads of the run's configuration; a backend's own slice extends it. */
export const Config = Schema.Struct({
  ...Provision.Config.fields,
  ...CloudConfig.pick("sshPrivateKey", "sshMaxChannels")
})
export type Config = typeof Config.Type

/** What reaching a namespace's sandboxes takes, the same for every agent of a run. */
export interface Settings {
  readonly namespace: string
  /** How the machines' host keys are checked: trusted on first use, or any (machines the run made itself). */
  readonly hostKeys: SshClient.HostKeyPolicy
  /**
   * How the jump hosts' keys are checked, when not as the machines' (containers the run made are reached, with any
   * key, through a host of the user's, whose key is checked).
   */
  readonly jumpHostKeys?: SshClient.HostKeyPolicy | undefined
  /** Commands at once on one connection. */
  readonly maxChannels: number
  /** Seconds a killed process tree gets between SIGTERM and SIGKILL. */
  readonly graceSeconds: number
}

/** Where an agent's machine is, and with which key (a path on this machine). */
export interface Reach extends SshClient.Target {
  readonly key: string
  /** The jump hosts it is reached through, as `ssh -J` takes them: `user@host:port`, comma-separated. */
  readonly jump?: string | undefined
}

/** `Reach.jump`'s text for `hops`. */
export const jumpText = (hops: ReadonlyArray<SshClient.Target>) =>
  hops.length === 0 ? undefined : hops.map(SshClient.label).join(",")

/** The jump hosts of `Reach.jump`. */
const hopsOf = (jump: string | undefined): ReadonlyArray<SshClient.Target> =>
  (jump ?? "").split(",").filter((hop) => hop !== "").map((hop) => {
    const [, user = "", host = "", port = "22"] = /^([^@]*)@(.*):(\d+)$/.exec(hop) ?? []
    return { user, host, port: Number(port) }
  })

/** The namespace's key: the user's `--ssh-private-key`, else `~/.ssh/<ns>-tf` (under `keyHome`), made once. */
export const key = (settings: Settings, options: {
  readonly sshPrivateKey: string | undefined
  readonly keyHome?: string | undefined
}) => SshKeys.ensure(settings.namespace, options.sshPrivateKey, options.keyHome)

/** The connection options of `settings` with `privateKey`. */
export const connectionOptions = (settings: Settings, privateKey: string): SshClient.Options => ({
  privateKey,
  hostKeys: settings.hostKeys,
  maxChannels: settings.maxChannels
})

/**
 * A connection to `target` owned by the current scope, through its jump hosts (`Reach.jump`) when it has some,
 * with the same key; a failure names `agent` (an agent, or the host).
 */
export const connect = (
  target: SshClient.Target & { readonly jump?: string | undefined },
  privateKey: string,
  settings: Settings,
  agent: string,
  options: { readonly executor?: boolean | undefined } = {}
): Effect.Effect<SshClient.Connection, CloudError.CloudError, Scope.Scope> =>
  Effect.gen(function*() {
    let via: SshClient.Connection | undefined
    for (const hop of hopsOf(target.jump)) {
      via = yield* SshClient.connect(hop, {
        ...connectionOptions(settings, privateKey),
        hostKeys: settings.jumpHostKeys ?? settings.hostKeys,
        executor: false,
        via
      })
    }
    return yield* SshClient.connect(
      { user: target.user, host: target.host, port: target.port },
      { ...connectionOptions(settings, privateKey), ...options, via }
    )
  }).pipe(Effect.mapError((e) => CloudError.deploy(agent, e.message, { cause: e })))

/** The shell line that makes a sandbox's directories (its home, `logs/`, `fs/`). */
export const makeDirs = (home: string) =>
  `mkdir -p ${SshClient.quote(path.posix.join(home, "logs"))} ${SshClient.quote(path.posix.join(home, "fs"))}`

/** A ready agent's parts: its address, the `ssh` line that opens a shell in it, its descriptor and its runner. */
export const machine = (init: {
  /** The backend's id, the descriptor's `backend`. */
  readonly backend: string
  readonly settings: Settings
  readonly connection: SshClient.Connection
  readonly reach: Reach
  readonly sandbox: Sandbox.Sandbox
  readonly events: RunEvents.RunEvents["Service"]
  /** More descriptor fields of the backend's own (e.g. a container's name). */
  readonly fields?: Record<string, string | number> | undefined
  /** Where the agent's daemons are reached from here, when not at `reach` (a machine reached through a jump host). */
  readonly point?: Provision.Machine["point"] | undefined
}): Provision.Machine => {
  const { reach, sandbox } = init
  const hostKeyOptions = init.settings.hostKeys._tag === "Insecure"
    ? " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    : ""
  return {
    point: init.point ?? { host: reach.host, port: reach.port },
    connect:
      `ssh -i ${reach.key} -p ${reach.port}${hostKeyOptions}${reach.jump === undefined ? "" : ` -J ${reach.jump}`} ` +
      `${reach.user}@${reach.host} ` +
      `-t 'cd ${sandbox.home}; exec $SHELL'`,
    descriptor: Sandbox.descriptor(init.backend, sandbox, {
      ...init.fields,
      user: reach.user,
      host: reach.host,
      port: reach.port,
      key: reach.key,
      ...(reach.jump === undefined ? {} : { jump: reach.jump })
    }),
    runner: runner(init.connection, sandbox, init.settings, init.events)
  }
}

const runner = (
  connection: SshClient.Connection,
  sandbox: Sandbox.Sandbox,
  settings: Settings,
  events: RunEvents.RunEvents["Service"]
): Runner.Runner => SshRunner.make({ connection, events, ...sandbox, graceSeconds: settings.graceSeconds })

/** How a descriptor's (or a ledger record's) machine was reached. */
export const reachOf = (d: Readonly<Record<string, unknown>>): Reach => ({
  user: String(d.user),
  host: String(d.host),
  port: Number(d.port),
  key: String(d.key),
  ...(typeof d.jump === "string" ? { jump: d.jump } : {})
})

/**
 * Runners for agents of a live run, from their descriptors, by name: one connection per machine (all at once: a
 * fan-out over 64 hosts must not pay 64 handshakes in a row), shared by its agents, owned by the current scope.
 * With `oneCommandEach` (each runner runs one command, `agents exec`), a machine's persistent executor is started
 * only where machines serve several of the agents: for one command, a channel costs one sshd session, the
 * executor a session and a perl start.
 */
export const reattach = Effect.fn("SshSandbox.reattach")(function*(
  descriptors: ReadonlyArray<Agent.Descriptor>,
  settings: Settings,
  options: { readonly oneCommandEach: boolean }
) {
  const events = yield* RunEvents.RunEvents
  const machines = Map.groupBy(descriptors, (d) => SshClient.label(reachOf(d)))
  const executor = !options.oneCommandEach || machines.size < descriptors.length
  const runners = yield* Effect.forEach(machines, ([label, agents]) =>
    Effect.gen(function*() {
      const [first] = agents
      if (first === undefined) return []
      const reach = reachOf(first)
      const found = yield* SshKeys.ensure(settings.namespace, reach.key)
      const connection = yield* connect(reach, found.privateKey, settings, label, { executor })
      return agents.map((d) =>
        [String(d.agent), runner(connection, Sandbox.fromDescriptor(d), settings, events)] as const
      )
    }), { concurrency: 64 })
  return runners.flat()
})
