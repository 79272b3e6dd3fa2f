/**
 * The `--ssh-host [user@]host[:port]` backend: agents are process sandboxes on a host of the user's, reached
 * over one multiplexed ssh connection (`SshSandbox`). The host only needs `sh`, `setsid`, coreutils, `grep` and
 * `/proc`, which every Debian/Ubuntu has; nothing is installed on it but, for the run's length, the run's key in
 * its `authorized_keys` when the user's own key got in. The host is reached as `ssh` would reach it: a Host alias of
 * the user's ssh config, through its jump hosts, with the user's agent and keys (`SshConfig`, `SshAuth`).
 *
 * **Details**
 *
 * Provisioning checks the host, then creates `${TMPDIR:-/tmp}/tezt-cloud-<uid>/<ns>/` on it, both mode 0700 and
 * refused unless they are this user's own directories that no one else can write in; each agent gets
 * `agents/<name>/` there (its home; absolute paths it copies to live under its `fs/`). Teardown kills every
 * process carrying the namespace's marker on the host and removes the directory: nothing is left behind. Both
 * are recorded in the Ledger first, so `CLOUD clean up` can finish the job after a `kill -9`. Agents' sandboxes
 * are created and wiped in batches, many per ssh session (each session costs sshd ~0.1 s of CPU).
 */
import {
  Backend,
  CloudConfig,
  CloudError,
  type Deployment,
  Ledger,
  Provision,
  RunEvents,
  Teardown
} from "@tezt-cloud/core"
import { Effect, Exit, type Layer, Request, RequestResolver, Schema, type Scope } from "effect"
import * as path from "node:path"
import * as SshAuth from "./SshAuth.ts"
import * as SshClient from "./SshClient.ts"
import * as SshConfig from "./SshConfig.ts"
import type * as SshError from "./SshError.ts"
import * as SshKeys from "./SshKeys.ts"
import * as SshRunner from "./SshRunner.ts"
import * as SshSandbox from "./SshSandbox.ts"

/** What this backend reads of the run's configuration, besides its target: the ssh options among them. */
export const Config = Schema.Struct({ ...SshSandbox.Config.fields, ...CloudConfig.ownedBy("ssh") })
export type Config = typeof Config.Type

export interface Options {
  readonly stateDir: string
  readonly config: Config
  /** The host: `--ssh-host`, resolved in the user's ssh config (`resolved`) when the CLI selected this backend. */
  readonly target: SshClient.Target
  /** `target` resolved in the user's ssh config; resolved in `keyHome`'s when not given. */
  readonly resolved?: SshConfig.Resolved | undefined
  /** The user's ssh-agent (`$SSH_AUTH_SOCK` when not given). */
  readonly agentSocket?: string | undefined
  readonly artifactsDir: string
  /** Where `~/.ssh/<ns>-tf` lives (the user's home by default). */
  readonly keyHome?: string | undefined
  /** Seconds a killed process tree gets between SIGTERM and SIGKILL. */
  readonly graceSeconds?: number | undefined
}

/** The backend's name in the CLI's list, and in its agents' descriptors. */
const backendId = "ssh-host"

/** The ledger kinds this backend records. */
export const kinds: ReadonlyArray<string> = ["ssh-root", "ssh-sandbox", "ssh-authorized-key"]

/** How the namespace's sandboxes are reached: its host keys trusted on first use, unless asked otherwise. */
export const settings = (config: Config, stateDir: string, graceSeconds = 3): SshSandbox.Settings => ({
  namespace: config.namespace,
  hostKeys: config.insecureHostKeys
    ? { _tag: "Insecure" }
    : {
      _tag: "TrustOnFirstUse",
      knownHostsFile: path.join(Ledger.namespaceDir(stateDir, config.namespace), "known_hosts")
    },
  maxChannels: config.sshMaxChannels,
  graceSeconds
})

/** A control script on the host (a sandbox's wipe, the run's directory's) exited non-zero. */
export class ControlFailed extends Schema.TaggedError<ControlFailed>()("ControlFailed", {
  host: Schema.String,
  what: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.host}: ${this.what}: ${this.reason}`
  }
}

/**
 * A shell function, `private_dir PATH CREATE`, for the run's directory and its parent
 * (`${TMPDIR:-/tmp}/tezt-cloud-<uid>`, which another user of the host could make first): it creates PATH with mode
 * 0700 when CREATE is 1 and PATH is missing, then refuses (one line on stderr, status 3) unless PATH is a directory,
 * not a symbolic link, owned by this user and writable by no one else. Its agents' binaries come first on their
 * PATH: a directory someone else can write in is one where they choose what the agents run. A directory of this
 * user's that others may only read (older versions made them 0755) is made 0700.
 */
const privateDir = [
  `private_dir() {`,
  `  if [ ! -e "$1" ] && [ ! -L "$1" ]; then`,
  `    [ "$2" = 1 ] || return 0`,
  `    e=$(mkdir -m 700 -- "$1" 2>&1) || [ -e "$1" ] || [ -L "$1" ] || { echo "$e" >&2; return 1; }`,
  `  fi`,
  `  fix="remove it (as its owner, or root) and run again: the run's directory must be yours alone, mode 0700"`,
  `  if [ -L "$1" ]; then`,
  `    echo "refused $1: it is a symbolic link (to $(readlink -- "$1")), not a directory of yours; $fix" >&2; return 3`,
  `  fi`,
  `  [ -d "$1" ] || { echo "refused $1: it is not a directory; $fix" >&2; return 3; }`,
  `  set -- "$1" $(stat -c '%u %a %A' -- "$1") "$(id -u)"`,
  `  if [ "$2" != "$5" ]; then`,
  `    echo "refused $1: it is owned by uid $2 (mode $3), not by you (uid $5); $fix" >&2; return 3`,
  `  fi`,
  `  case $4 in`,
  `    ?????w????|????????w?) echo "refused $1: its mode $3 lets other users write in it; $fix" >&2; return 3 ;;`,
  `    d???------) ;;`,
  `    *) chmod 700 -- "$1" || return 1 ;;`,
  `  esac`,
  `}`
].join("\n")

/** Fails with `ControlFailed` unless a control script exited 0. */
const succeeded = (host: string, what: string) => (r: ControlResult) =>
  r.code === 0
    ? Effect.void
    : Effect.fail(new ControlFailed({ host, what, reason: r.stderr.trim() || `exit ${r.code}` }))

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
    Effect.mapError((e: SshError.SshError) => CloudError.deploy(agent, `${what}: ${e.message}`, { cause: e })),
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
 * 1000 agents takes a few dozen sessions, not 1000. The stderr files live in a directory of the run's own (`root`):
 * a session cut before it removes them (a client killed, a host's processes killed) leaves them where the run's
 * teardown or `CLOUD clean up` removes them, never in the host's `/tmp`. Exported for its tests.
 */
export const controlBatches = (connection: SshClient.Connection, graceSeconds: number, root: string) => {
  let next = 0
  const resolver = RequestResolver.make<Control>((entries) => {
    const markers = entries.flatMap((entry) => entry.request.kill === undefined ? [] : [entry.request.kill])
    return connection.run(
      [
        ...(markers.length === 0 ? [] : [`(\n${SshRunner.killScript(markers, graceSeconds)}\n)`]),
        `d=$(mktemp -d ${SshClient.quote(`${root}/.control.`)}XXXXXX) || exit 1`,
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

/** What `enter` gives: the connection to the host, the run's key (authorized there) and the jump hosts' text. */
export interface Entered {
  readonly connection: SshClient.Connection
  readonly key: SshKeys.Key
  readonly jump: string | undefined
}

/**
 * Connects to the run's host (through its jump hosts) with everything the user has, as `ssh` would; got in with
 * something else than the run's key, the run's key is authorized on each host reached, for the run's later
 * connections and other terminals' (recorded first, removed when the run ends). Every backend on an ssh host
 * starts here.
 */
export const enter = (
  options: Options,
  services: { readonly ledger: Ledger.Ledger["Service"]; readonly events: RunEvents.RunEvents["Service"] }
): Effect.Effect<Entered, CloudError.CloudError, Scope.Scope> =>
  Effect.gen(function*() {
    const { ledger, events } = services
    const { config, target } = options
    const reaching = settings(config, options.stateDir, options.graceSeconds ?? 3)
    const host = SshClient.label(target)
    const resolved = options.resolved ??
      (yield* SshConfig.resolve(target, {
        file: config.sshConfig,
        home: options.keyHome,
        jump: config.sshJump
      }))
    const agentSocket = "agentSocket" in options ? options.agentSocket : process.env.SSH_AUTH_SOCK
    const planFor = (at: SshConfig.Resolved) =>
      SshAuth.plan(at, {
        namespace: config.namespace,
        sshPrivateKey: config.sshPrivateKey,
        keyHome: options.keyHome,
        agentSocket
      })
    /** Connects to `at` (through `via`); `jump` is how it is reached, for the record. */
    const enterOne = (at: SshConfig.Resolved, via: SshClient.Connection | undefined, jump: string | undefined) =>
      Effect.gen(function*() {
        const auth = yield* planFor(at)
        const name = SshClient.label(at.target)
        const entered = yield* SshClient.connect(at.target, {
          credentials: auth.credentials,
          sources: auth.sources,
          authHint: auth.hint,
          hostKeys: hostKeysOf(reaching.hostKeys, at),
          maxChannels: reaching.maxChannels,
          via,
          // A jump host runs no command: no executor there.
          ...(at === resolved ? {} : { executor: false })
        }).pipe(Effect.mapError((e) =>
          // The host is named once (a jump host's failure names the jump host).
          CloudError.deploy(host, at === resolved ? e.reason.message : e.message, { cause: e })
        ))
        if (!SshAuth.inWithRunKey(entered, auth)) {
          const line = SshAuth.authorizedLine(auth.runKey)
          const present = yield* must(entered, SshAuth.checkScript(line), "cannot read authorized_keys", name)
          if (present.trim() !== "present") {
            yield* Ledger.scoped(
              {
                id: `ssh-authorized-key:${name}`,
                kind: "ssh-authorized-key",
                data: { ...at.target, key: auth.runKey.path, line, ...(jump === undefined ? {} : { jump }) }
              },
              must(entered, SshAuth.addScript(line), "cannot add the run's key to authorized_keys", name),
              () =>
                Teardown.reported(
                  `the run's key in ${name}'s authorized_keys`,
                  must(entered, SshAuth.removeScript(line), "cannot remove the run's key", name)
                ).pipe(Effect.provideService(RunEvents.RunEvents, events))
            ).pipe(Effect.provideService(Ledger.Ledger, ledger))
          }
        }
        return { connection: entered, key: auth.runKey }
      })
    // The jump hosts first, each through the one before.
    let via: SshClient.Connection | undefined
    const hops: Array<SshClient.Target> = []
    for (const hop of resolved.jumps) {
      via = (yield* enterOne(hop, via, SshSandbox.jumpText(hops))).connection
      hops.push(hop.target)
    }
    const jump = SshSandbox.jumpText(hops)
    const { connection, key } = yield* enterOne(resolved, via, jump)
    return { connection, key, jump }
  })

export const layer = (options: Options) =>
  Provision.layer(options, ({ events, ledger }) =>
    Effect.sync(() => {
      const { config, target } = options
      const graceSeconds = options.graceSeconds ?? 3
      const reaching = settings(config, options.stateDir, graceSeconds)
      const host = SshClient.label(target)

      return Provision.provisioner({
        backend: `ssh-host ${host}`,
        prepare: () =>
          Effect.gen(function*() {
            const { connection, key, jump } = yield* enter(options, { ledger, events })
            // What the sandboxes need, and where they go.
            // The run's directory is checked here already (nothing created): a refused one leaves no record.
            const probe = yield* must(
              connection,
              `for c in sh setsid md5sum grep sed mktemp tr stat readlink; do command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 1; }; done; ` +
                `[ -r /proc/self/environ ] || { echo "no /proc" >&2; exit 1; }\n` +
                `r="\${TMPDIR:-/tmp}/tezt-cloud-$(id -u)"\n${privateDir}\n` +
                `private_dir "$r" 0 && private_dir "$r"/${SshClient.quote(config.namespace)} 0 || exit 1\necho "$r"`,
              "the host cannot run agents",
              host
            )
            const root = path.posix.join(probe.trim(), config.namespace)
            yield* Ledger.scoped(
              {
                id: `ssh-root:${host}`,
                kind: "ssh-root",
                data: {
                  ...target,
                  root,
                  key: key.path,
                  namespace: config.namespace,
                  ...(jump === undefined ? {} : { jump })
                }
              },
              must(
                connection,
                `${privateDir}\nprivate_dir ${SshClient.quote(path.posix.dirname(root))} 1 && ` +
                  `private_dir ${SshClient.quote(root)} 1`,
                "cannot create the run's directory",
                host
              ),
              // After every agent's sandbox (the loop's pool closes first). A failed wipe is reported and keeps
              // the host's record, for `CLOUD clean up` to retry.
              () =>
                Teardown.reported(
                  `host ${host}`,
                  wipe(connection, `TEZT_CLOUD_NS=${config.namespace}`, root, graceSeconds).pipe(
                    Effect.flatMap(succeeded(host, `cannot remove ${root}`)),
                    Effect.andThen(
                      connection.run(`rmdir ${SshClient.quote(path.posix.dirname(root))} 2>/dev/null; true`)
                    )
                  )
                ).pipe(Effect.provideService(RunEvents.RunEvents, events))
            ).pipe(Effect.provideService(Ledger.Ledger, ledger))
            return { key, connection, root, jump, control: controlBatches(connection, graceSeconds, root) }
          }),
        record: (shared, slot) => {
          const home = homeOf(shared.root, slot)
          return {
            id: `ssh-sandbox:${host}:${slot.name}`,
            kind: "ssh-sandbox",
            data: { agent: slot.name, host, path: home, marker: slot.sandbox(home).marker }
          }
        },
        create: (shared, slot) =>
          must(shared.control, SshSandbox.makeDirs(homeOf(shared.root, slot)), "cannot create its sandbox", slot.name)
            .pipe(Effect.as(slot.sandbox(homeOf(shared.root, slot)))),
        ready: (shared, _, sandbox) =>
          Effect.succeed(SshSandbox.machine({
            backend: backendId,
            settings: reaching,
            connection: shared.connection,
            reach: { ...target, key: shared.key.path, ...(shared.jump === undefined ? {} : { jump: shared.jump }) },
            sandbox,
            events
          })),
        destroy: (shared, _, sandbox) =>
          shared.control.wipe(`TEZT_CLOUD_AGENT=${sandbox.marker}`, sandbox.home).pipe(
            Effect.flatMap(succeeded(host, `cannot remove ${sandbox.home}`))
          )
      })
    }))

/** The host key policy of `reaching` with the user's known_hosts files and `StrictHostKeyChecking` of `resolved`. */
const hostKeysOf = (policy: SshClient.HostKeyPolicy, resolved: SshConfig.Resolved): SshClient.HostKeyPolicy =>
  policy._tag === "Insecure" || resolved.strictHostKeyChecking === "no"
    ? { _tag: "Insecure" }
    : { ...policy, userKnownHostsFiles: resolved.userKnownHostsFiles, strict: resolved.strictHostKeyChecking === "yes" }

/** An agent's home under the run's directory on the host. */
const homeOf = (root: string, slot: Provision.Slot) => path.posix.join(root, "agents", slot.name)

/**
 * Finishes what killed runs left on ssh hosts: for every `ssh-root` record, reconnects with the recorded key,
 * kills the namespace's processes there and removes the run's directory.
 */
/**
 * `root` as recorded in the ledger, if it is a run directory of `namespace` (`…/tezt-cloud-<uid>/<ns>`, absolute
 * and normal): clean up removes it on the host, so a ledger line naming anything else is refused.
 */
const runRoot = (host: string, root: string, namespace: string) =>
  path.posix.isAbsolute(root) && path.posix.normalize(root) === root && path.posix.basename(root) === namespace &&
    /^tezt-cloud-\d+$/.test(path.posix.basename(path.posix.dirname(root)))
    ? Effect.succeed(root)
    : Effect.fail(CloudError.state(host, `refusing to remove ${root}: it is not a run directory of ${namespace}`))

export const cleanUp = Effect.fn("SshHost.cleanUp")(function*(stateDir: string, config: Config) {
  const ledger = yield* Ledger.Ledger
  const reaching = settings(config, stateDir, 1)
  const cleaned: Array<string> = []
  // The run's key last, the last host's first: the other records' clean up connects with it (through the jump
  // hosts, whose keys were added before the host's).
  const all = yield* ledger.outstanding
  const keys = all.filter((r) => r.kind === "ssh-authorized-key")
  const outstanding = [...all.filter((r) => r.kind !== "ssh-authorized-key"), ...keys.toReversed()]
  for (const resource of outstanding) {
    if (!kinds.includes(resource.kind)) continue
    if (resource.kind === "ssh-authorized-key") {
      const target = SshSandbox.reachOf(resource.data)
      const host = SshClient.label(target)
      const key = yield* SshKeys.ensure(config.namespace, target.key)
      const line = String(resource.data.line)
      yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* SshSandbox.connect(target, key.privateKey, reaching, host)
        yield* must(connection, SshAuth.removeScript(line), "cannot remove the run's key", host).pipe(
          Effect.mapError((e) => CloudError.state(host, `clean up failed: ${e.message}`, { cause: e }))
        )
      }))
      cleaned.push(`${host}:~/.ssh/authorized_keys (the run's key)`)
    }
    if (resource.kind === "ssh-root") {
      const target = SshSandbox.reachOf(resource.data)
      const host = SshClient.label(target)
      const root = yield* runRoot(host, String(resource.data.root), config.namespace)
      const key = yield* SshKeys.ensure(config.namespace, target.key)
      yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* SshSandbox.connect(target, key.privateKey, reaching, host)
        yield* wipe(connection, `TEZT_CLOUD_NS=${config.namespace}`, root, 1).pipe(
          Effect.flatMap(succeeded(host, `cannot remove ${root}`)),
          Effect.mapError((e) => CloudError.state(host, `clean up failed: ${e.message}`, { cause: e }))
        )
      }))
      cleaned.push(`${host}:${root}`)
    }
    yield* ledger.release(resource.id)
  }
  return cleaned
})

/**
 * What of the namespace is still on the hosts its runs used (every host its ledger ever recorded): the run's
 * directory, and processes carrying its marker.
 */
export const leftovers = Effect.fn("SshHost.leftovers")(function*(stateDir: string, config: Config) {
  const entries = yield* Ledger.read(Ledger.ledgerFile(stateDir, config.namespace))
  const roots = new Map(
    entries.filter((e) => e.op === "acquire" && e.kind === "ssh-root").map((e) => [e.id, e.data] as const)
  )
  const reaching = settings(config, stateDir)
  const found = yield* Effect.forEach(roots.values(), (data) =>
    Effect.scoped(Effect.gen(function*() {
      const target = SshSandbox.reachOf(data)
      const host = SshClient.label(target)
      const root = String(data.root)
      const key = yield* SshKeys.ensure(config.namespace, target.key)
      const connection = yield* SshSandbox.connect(target, key.privateKey, reaching, host)
      const r = yield* connection.run(
        `[ -e ${SshClient.quote(root)} ] && echo dir; ` +
          `grep -lzxF ${SshClient.quote(`TEZT_CLOUD_NS=${config.namespace}`)} /proc/[0-9]*/environ 2>/dev/null | wc -l`
      ).pipe(Effect.mapError((e) => CloudError.state(host, e.message, { cause: e })))
      const lines = r.stdout.trim().split("\n")
      const processes = Number(lines.at(-1))
      return [
        ...(lines.includes("dir") ? [`${host}:${root}`] : []),
        ...(processes > 0 ? [`${processes} process(es) of ${config.namespace} on ${host}`] : [])
      ]
    })), { concurrency: 16 })
  return found.flat()
})

/**
 * The `select` of a backend on `--ssh-host`'s host (`target`): resolved in the user's ssh config, described
 * (`describe` of the host, then its jump hosts), its deployment `make`'s.
 */
export const take = (
  target: SshClient.Target,
  config: CloudConfig.CloudConfig,
  context: Backend.SelectContext,
  describe: (host: string) => string,
  make: (
    options: Options & { readonly config: CloudConfig.CloudConfig }
  ) => Layer.Layer<Deployment.Deployment, never, Backend.Services>
) =>
  SshConfig.resolve(target, { file: config.sshConfig, jump: config.sshJump }).pipe(
    Effect.map((resolved) =>
      Backend.Take({
        description: describe(SshClient.label(resolved.target)) +
          (resolved.jumps.length === 0
            ? ""
            : ` through ${resolved.jumps.map((j) => SshClient.label(j.target)).join(", ")}`),
        layer: make({
          stateDir: context.stateDir,
          config,
          target: resolved.target,
          resolved,
          artifactsDir: context.artifactsDir
        })
      })
    )
  )

/** This backend as a value, for the CLI's list of backends. */
export const backend: Backend.Backend = {
  id: backendId,
  config: Config,
  select: (config, context) => {
    if (config.backend._tag !== "SshHost") return Effect.succeed(Backend.Pass({ why: "no --ssh-host" }))
    if (CloudConfig.dockerOnSshHost(config.backend)) {
      return Effect.succeed(Backend.Pass({ why: "--agent-runtime docker (containers of the host's engine)" }))
    }
    return take(config.backend.target, config, context, (host) => `process sandboxes on ${host} over ssh`, layer)
  },
  reattach: (descriptors, options) =>
    SshSandbox.reattach(descriptors, settings(options.config, options.stateDir), {
      oneCommandEach: options.oneCommandEach
    }),
  where: (d) => SshClient.label(SshSandbox.reachOf(d)),
  kinds,
  cleanUp: ({ config, stateDir }) =>
    cleanUp(stateDir, config).pipe(Effect.map((hosts) => hosts.map((h) => `removed ${h} and its processes`))),
  leftovers: ({ config, stateDir }) => leftovers(stateDir, config),
  // Processes on a remote host cannot be reached synchronously: `CLOUD clean up` removes them.
  forceKill: () => 0,
  jobs: () => []
}
