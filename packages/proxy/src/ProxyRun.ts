/**
 * A `--proxy` run, from the user's machine: the orchestrator itself moves onto a machine of the deployment (the
 * proxy), so that a run of days outlives the laptop that started it. This side deploys the proxy through an
 * inner backend, ships what the orchestrator needs, starts it there under the proxy's server, and shows its log;
 * it can go away at any time and come back.
 *
 * **Details**
 *
 * - Deploy: the proxy machine is the inner backend's agent `<ns>-proxy` (`--localhost --proxy`: a local Docker
 *   container on a network of its own; `--proxy`: a GCP VM, which gets its DNS names). Its record (`ProxyRecord`) is written once it answers. Then, over one ssh
 *   connection (`Shipping`): the bundle (`Bundle`, skipped when the proxy has it), the workspace with the
 *   scenario's files, the namespace's key, the secrets (a 0600 file, sent on the channel's input, never on a
 *   command line), the server's configuration; then the server starts, detached (`ProxyServer`).
 * - Reattach: a rerun of the same command that finds the record reaches the proxy (within 5 s) and shows the log
 *   from where this machine left it. A proxy that does not answer is a clear error pointing at `CLOUD clean up`.
 * - While attached: the log is shown as a local run shows its events; lines typed are sent to the run (Enter for
 *   `--keep-alive`); the end of the input (Ctrl+D, on a terminal or a pipe) detaches, the run goes on; Ctrl+C
 *   asks the run to tear down and shows the teardown; any other stop (a closed terminal, SIGTERM) detaches. A
 *   connection that drops is reopened, from the same offset. The website and Prometheus of the run are
 *   forwarded to this machine's loopback while attached.
 * - The end: once the run has ended, its artifacts are fetched into the local artifacts dir, the server stops,
 *   the proxy machine is removed (by the scope that made it, or by its backend's clean-up after a reattach), and
 *   the command exits with the run's code.
 */
import {
  AgentConfig,
  type Backend,
  type CloudConfig,
  CloudError,
  Deployment,
  Ledger,
  Orchestrator,
  type RunEvents
} from "@tezt-cloud/core"
import { SshClient, SshTunnel } from "@tezt-cloud/ssh"
import { Cause, Data, Effect, Exit, FiberSet, Layer, Option, Schedule, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Bundle from "./Bundle.ts"
import * as Launch from "./Launch.ts"
import * as ProxyClient from "./ProxyClient.ts"
import * as Protocol from "./ProxyProtocol.ts"
import * as ProxyRecord from "./ProxyRecord.ts"
import * as Shipping from "./Shipping.ts"

/** Why the command is being stopped: Ctrl+C tears the remote run down, anything else only detaches. */
export type StopKind = "teardown" | "detach"

export interface Options {
  readonly config: CloudConfig.CloudConfig
  readonly run: Omit<Launch.Run, "namespace">
  readonly stateDir: string
  /** The local artifacts dir the run's artifacts are fetched into at its end. */
  readonly artifactsDir: string
  /** `$TEZT_CLOUD_SCENARIOS` of this command. */
  readonly scenarios: string | undefined
  /** Where the run's events are shown (the terminal's). */
  readonly sink: RunEvents.Sink
  /** Read when the command is interrupted: what stopped it. */
  readonly stopKind: Effect.Effect<StopKind>
  /** The inner backend that makes the proxy machine, and the configuration it is given. */
  readonly inner: Inner
}

export interface Inner {
  readonly backend: Backend.Backend
  readonly config: CloudConfig.CloudConfig
  /**
   * How the proxy machine is made: `backend`'s choice for `config`; with `--localhost --proxy`, a container of the
   * engine's proxy image (`ProxyImage`, which holds the bundle), or, when the engine cannot have one, of the
   * agents' image (the bundle is then shipped).
   */
  readonly select: (
    bundle: Bundle.Bundle,
    context: Backend.SelectContext
  ) => Effect.Effect<Backend.Choice, CloudError.CloudError>
  /**
   * Whether the recorded proxy machine is gone for good (a local container removed or stopped): its client then
   * stops reconnecting at once. `false` when it cannot tell (a VM may come back).
   */
  readonly gone: (record: ProxyRecord.ProxyRecord) => Effect.Effect<boolean>
  /** What refuses the run before anything is created (GCP: no credentials, no project). */
  readonly check: Effect.Effect<void, CloudError.CloudError>
  /** The error when `backend` passes (`why`): what the proxy machine is, and the fix. */
  readonly unavailable: (why: string) => CloudError.CloudError
  /** What the orchestrator on the proxy needs of this backend besides the user's options (`input`). */
  readonly remote: (input: CloudConfig.Input) => Effect.Effect<Shipping.Remote, CloudError.CloudError>
  /** Once the proxy machine answers at `host`: names pointed at it (GCP's DNS), a line each to show. */
  readonly announce: (
    host: string
  ) => Effect.Effect<ReadonlyArray<{ readonly line: string; readonly warning: boolean }>, CloudError.CloudError>
}

/** The backends whose proxy machines are the run's own (host keys are not checked, as their backends do not). */
const ownMachines: ReadonlySet<string> = new Set(["docker", "gcp"])

/** The proxy machine's agent name. */
export const agentName = (namespace: string) => `${namespace}-proxy`

/** How long a reattach waits for the proxy to answer. */
const reachSeconds = 5

/** A proxy reached: the connection (owned by the caller's scope), its files, the client of its server. */
interface Session {
  readonly record: ProxyRecord.ProxyRecord
  readonly connection: SshClient.Connection
  readonly files: Protocol.Layout
  readonly client: ProxyClient.ProxyClient
}

const proxyError = (what: string) => (e: { readonly message: string }) => CloudError.service(what, e.message)

/** The proxy machine as its backend describes it, and how to check its host key. */
interface Machine {
  readonly namespace: string
  readonly backend: string
  readonly machine: ProxyRecord.ProxyRecord["machine"]
}

/**
 * A connection to the proxy machine, for the current scope. A container the run made is trusted as it is (as
 * the Docker backend does); another machine's host key is trusted on first use, in the namespace's `known_hosts`.
 */
const connect = (
  proxy: Machine,
  context: { readonly stateDir: string; readonly config: CloudConfig.CloudConfig },
  attempts: number
) =>
  Effect.gen(function*() {
    const { machine } = proxy
    const keyFile = String(machine.key)
    const privateKey = yield* Effect.try({
      try: () => fs.readFileSync(keyFile, "utf8"),
      catch: (e) => CloudError.config("--tezt-cloud", `${keyFile}: ${CloudError.messageOf(e)}`)
    })
    const knownHostsFile = path.join(Ledger.namespaceDir(context.stateDir, proxy.namespace), "known_hosts")
    const hostKeys: SshClient.HostKeyPolicy = ownMachines.has(proxy.backend) || context.config.insecureHostKeys
      ? { _tag: "Insecure" }
      : { _tag: "TrustOnFirstUse", knownHostsFile }
    return yield* SshClient.connect(
      { host: String(machine.host), port: Number(machine.port), user: String(machine.user) },
      {
        privateKey,
        hostKeys,
        executor: false,
        connectTimeoutMillis: reachSeconds * 1000,
        connectAttempts: attempts
      }
    )
  })

const sessionOf = (record: ProxyRecord.ProxyRecord, connection: SshClient.Connection): Session => {
  const files = Protocol.layout(record.home, record.namespace)
  return {
    record,
    connection,
    files,
    client: ProxyClient.make(connection, files.socket, `proxy of ${record.namespace}`)
  }
}

/**
 * Deploys the proxy machine with the inner backend, in `owned` (closed by the caller when the run ends); returns
 * its record, written once it answers.
 */
const deployMachine = (options: Options, owned: Scope.Closeable, bundle: Bundle.Bundle) =>
  Effect.gen(function*() {
    const { config, inner } = options
    const choice = yield* inner.select(bundle, {
      stateDir: options.stateDir,
      artifactsDir: path.join(options.artifactsDir, "proxy"),
      passed: []
    })
    if (choice._tag === "Pass") return yield* inner.unavailable(choice.why)
    const context = yield* Layer.buildWithScope(choice.layer, owned)
    const [request] = AgentConfig.complete(
      [{ name: agentName(config.namespace) }],
      Orchestrator.agentDefaults(config)
    )
    const [agent] = yield* Effect.flatMap(Deployment.Deployment, (d) => d.deploy([request!])).pipe(
      Effect.provide(context),
      Scope.provide(owned)
    )
    const { backend, ...machine } = agent!.descriptor
    return { backend, machine }
  })

/** The first lines of a fresh run: deploy, record, ship, start. Anything failing on the way removes the proxy. */
const deploy = (options: Options, owned: Scope.Closeable) =>
  Effect.gen(function*() {
    const { config, stateDir } = options
    const ledger = yield* Ledger.Ledger
    // This version's files, listed once: the proxy's image and the shipping both need them.
    const bundle = yield* Bundle.make()
    const { backend, machine } = yield* deployMachine(options, owned, bundle)
    for (const { line, warning } of yield* options.inner.announce(String(machine.host))) {
      yield* warning ? Effect.logWarning(`proxy: ${line}`) : Effect.logInfo(`proxy: ${line}`)
    }
    const connection = yield* connect({ namespace: config.namespace, backend, machine }, options, 4)
    const { home, present } = yield* Shipping.probe(connection, bundle.hash)
    const record: ProxyRecord.ProxyRecord = {
      namespace: config.namespace,
      backend,
      machine,
      home,
      createdAt: new Date().toISOString(),
      run: [options.run.group, ...options.run.tags].join(" "),
      artifactsDir: options.artifactsDir,
      ...(config.website ? { website: config.websitePort } : {}),
      ...(config.prometheus ? { prometheus: config.prometheusPort } : {})
    }
    yield* ProxyRecord.write(stateDir, record)
    ProxyRecord.writeOffset(stateDir, config.namespace, 0)
    const session = sessionOf(record, connection)
    const target = { connection, files: session.files, home }
    const bundleDir = yield* Shipping.bundle(connection, home, bundle, present)
    yield* Shipping.run(target, bundleDir, { ...options, remote: yield* options.inner.remote(options.run.input) })
    yield* ledger.acquire(ProxyRecord.ledgerResource(config.namespace))
    yield* Shipping.startServer(target, session.client.status, bundle.server)
    yield* Effect.logInfo(`proxy: the run started on ${SshClient.label(connection.target)}`)
    return session
  })

/** The recorded proxy, reached again; a proxy that does not answer is a clear error. */
const reattach = (
  record: ProxyRecord.ProxyRecord,
  options: { readonly stateDir: string; readonly config: CloudConfig.CloudConfig }
) =>
  Effect.gen(function*() {
    const ns = record.namespace
    const stale = (why: string) =>
      CloudError.state(
        ProxyRecord.file(options.stateDir, ns),
        `the proxy of ${ns} recorded here (${record.backend} ${record.machine.host}:${record.machine.port}) ${why}: ` +
          `run 'tezt-cloud CLOUD clean up --tezt-cloud ${ns}' to remove what is left of it, then run again`
      )
    const connection = yield* connect(record, options, 1).pipe(
      Effect.timeoutOrElse({
        duration: `${reachSeconds + 1} seconds`,
        orElse: () => Effect.fail(new Error("timed out"))
      }),
      Effect.mapError((e) => stale(`does not answer within ${reachSeconds} s (${e.message})`))
    )
    const session = sessionOf(record, connection)
    const status = yield* session.client.status.pipe(
      Effect.timeoutOrElse({ duration: `${reachSeconds} seconds`, orElse: () => Effect.fail(new Error("timed out")) }),
      Effect.mapError((e) => stale(`answers, but no run is served there (${e.message})`))
    )
    yield* Effect.logInfo(
      `proxy: reattaching to ${record.run} on ${SshClient.label(connection.target)} (started ${status.startedAt}, ` +
        `${status.state}${status.exitCode === undefined ? "" : ` with code ${status.exitCode}`})`
    )
    return session
  })

/** Shows log lines: events through the sink, the orchestrator's own output on the same stream here. */
export const show = (sink: RunEvents.Sink) => (line: string) => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    process.stderr.write(line + "\n")
    return
  }
  const event = value as { readonly type?: unknown; readonly stream?: unknown; readonly line?: unknown }
  if (event.type === "console") {
    ;(event.stream === "stdout" ? process.stdout : process.stderr).write(`${String(event.line)}\n`)
  } else if (typeof event.type === "string") {
    sink(value as RunEvents.Stamped)
  }
}

/** Whether the end of this process' input means Ctrl+D (a terminal, a pipe), not "no input" (/dev/null, a file). */
const inputCanDetach = () => {
  if (process.stdin.isTTY) return true
  try {
    const stat = fs.fstatSync(0)
    return stat.isFIFO() || stat.isSocket()
  } catch {
    return false
  }
}

/** Sends the lines typed here to the run; succeeds at the end of the input (Ctrl+D). */
const forwardInput = (client: ProxyClient.ProxyClient) =>
  Effect.gen(function*() {
    const runFork = yield* FiberSet.makeRuntime()
    yield* Effect.callback<void>((resume) => {
      const rl = readline.createInterface({ input: process.stdin })
      rl.on("line", (line) => runFork(client.input(line).pipe(Effect.ignore)))
      rl.once("close", () => resume(Effect.void))
      rl.on("error", () => resume(Effect.void))
      return Effect.sync(() => rl.close())
    })
  }).pipe(Effect.scoped)

/** The run's website and Prometheus on this machine's loopback, for the current scope. */
const forward = (session: Session) =>
  Effect.forEach(
    [
      { name: "website", remote: session.record.website },
      { name: "prometheus", remote: session.record.prometheus }
    ],
    ({ name, remote: port }) => {
      if (port === undefined) return Effect.void
      const destination = SshTunnel.tcp("127.0.0.1", port)
      const local = port < 1024 ? port + 8000 : port
      return SshTunnel.listen(session.connection, destination, local).pipe(
        Effect.catch(() => SshTunnel.listen(session.connection, destination, 0)),
        Effect.flatMap((l) =>
          Effect.logInfo(`proxy: the run's ${name}: http://127.0.0.1:${l.port} (forwarded while attached)`)
        ),
        Effect.catch((e) => Effect.logWarning(`proxy: the run's ${name} is not forwarded: ${e.message}`))
      )
    },
    { discard: true }
  )

/** The proxy's machine is gone for good: no reconnection can help. */
class Gone extends Data.TaggedError("Gone")<{ readonly message: string }> {}

/**
 * Shows the run's log from where this machine left it, until the run ends; the connection is reopened (from the
 * same offset) when it drops, for a while, unless the proxy's machine is gone (`Inner.gone`).
 */
const follow = (
  session: Session,
  options: { readonly stateDir: string; readonly sink: RunEvents.Sink; readonly inner: Inner }
) =>
  Effect.suspend(() => {
    const ns = session.record.namespace
    const display = show(options.sink)
    let at = ProxyRecord.readOffset(options.stateDir, ns)
    return session.client.logs(at, true, (lines, next) =>
      Effect.sync(() => {
        ProxyRecord.showLines(
          lines,
          at,
          next,
          display,
          (offset) => ProxyRecord.writeOffset(options.stateDir, ns, offset)
        )
        at = next
      }))
  }).pipe(
    Effect.flatMap((r) =>
      r._tag === "End"
        ? Effect.succeed({ _tag: "End", exitCode: r.exitCode } as const)
        : Effect.fail(CloudError.service("proxy", "the log stopped before the run's end"))
    ),
    Effect.catch((e) =>
      options.inner.gone(session.record).pipe(
        Effect.flatMap((gone): Effect.Effect<never, Gone | CloudError.CloudError> =>
          gone
            ? Effect.fail(new Gone({ message: `${e.message}, and its machine is gone` }))
            : Effect.logWarning(`proxy: ${e.message}; reconnecting`).pipe(Effect.andThen(Effect.fail(e)))
        )
      )
    ),
    Effect.retry({ schedule: Schedule.spaced("1 second"), times: 60, while: (e) => e._tag !== "Gone" }),
    Effect.mapError((e) =>
      CloudError.service(
        `proxy of ${session.record.namespace}`,
        e._tag === "Gone"
          ? `lost (${e.message}): run 'tezt-cloud CLOUD clean up --tezt-cloud ${session.record.namespace}' to ` +
            `remove what is left of it`
          : `lost for a minute (${e.message}); the run may go on there: rerun the command to reattach, or run ` +
            `'tezt-cloud CLOUD clean up --tezt-cloud ${session.record.namespace}' to remove it`
      )
    )
  )

/** Removes the proxy machine (by `owned`, the scope that made it, when this process did; else by its backend) and
 * the records. */
const removeMachine = (options: Options, owned: Scope.Closeable | undefined) =>
  Effect.gen(function*() {
    const ns = options.config.namespace
    if (owned !== undefined) yield* Scope.close(owned, Exit.void)
    else {
      const lines = yield* options.inner.backend.cleanUp({ stateDir: options.stateDir, config: options.inner.config })
      for (const line of lines) yield* Effect.logInfo(`proxy: ${line}`)
    }
    const ledger = yield* Ledger.Ledger
    yield* ledger.release(ProxyRecord.ledgerResource(ns).id)
    yield* ProxyRecord.remove(options.stateDir, ns)
  })

/**
 * The end of the recorded run: with `interrupt`, it is asked to tear down first; its log is shown to its end, its
 * artifacts fetched, its server stopped, the proxy removed. Returns the run's exit code.
 *
 * When the proxy's machine is gone meanwhile (`Inner.gone`: a container killed just as the run ended), what is left
 * of it here (its network, its records) is still removed, with a warning; the exit code is then `ended`'s (the run's
 * code, when this process saw its end), or the failure.
 */
export const finish = (
  options: Options,
  record: ProxyRecord.ProxyRecord,
  owned: Scope.Closeable | undefined,
  interrupt: boolean,
  ended?: number
) =>
  Effect.gen(function*() {
    const exitCode = yield* Effect.scoped(Effect.gen(function*() {
      const connection = yield* connect(record, options, 4).pipe(Effect.mapError(proxyError("proxy")))
      const session = sessionOf(record, connection)
      if (interrupt) {
        yield* Effect.logInfo("proxy: asking the run to tear down")
        yield* session.client.interrupt.pipe(
          Effect.catch((e) => Effect.logInfo(`proxy: ${e.message}`))
        )
      }
      const end = yield* follow(session, options)
      yield* Shipping.artifacts({ ...session, home: record.home }, record.artifactsDir).pipe(
        Effect.catch((e) => Effect.logWarning(`proxy: the run's artifacts could not be fetched: ${e.message}`))
      )
      yield* session.client.stop.pipe(
        Effect.timeout("30 seconds"),
        Effect.catch((e) => Effect.logWarning(`proxy: its server did not stop cleanly: ${e.message}`))
      )
      return end.exitCode
    })).pipe(
      Effect.catch((e) =>
        Effect.flatMap(options.inner.gone(record), (gone) => {
          if (!gone) return Effect.fail(e)
          const lost = `its machine is gone (${e.message}): the run's artifacts and the rest of its log are lost`
          return ended === undefined
            ? removeMachine(options, owned).pipe(Effect.andThen(Effect.fail(CloudError.service("proxy", lost))))
            : Effect.logWarning(`proxy: ${lost}`).pipe(Effect.as(ended))
        })
      )
    )
    yield* removeMachine(options, owned)
    return exitCode
  })

/** What the user is told when this command leaves the run going. */
const detached = (namespace: string) =>
  Effect.logInfo(
    `proxy: detached; the run goes on on the proxy. Rerun the same command (or 'tezt-cloud proxy attach ` +
      `--tezt-cloud ${namespace}') to reattach; 'tezt-cloud proxy stop --tezt-cloud ${namespace}' ends it`
  )

/**
 * The `--proxy` run of the module's details: reattaches to the recorded run of the namespace, or (with
 * `deploy`) deploys one; returns the exit code of the command.
 */
export const run = Effect.fn("ProxyRun.run")(function*(options: Options & { readonly deploy: boolean }) {
  const ns = options.config.namespace
  const existing = yield* ProxyRecord.read(options.stateDir, ns)
  if (Option.isNone(existing) && !options.deploy) {
    return yield* CloudError.config("--tezt-cloud", `no proxy run of ${ns} is recorded here: start one with --proxy`)
  }
  const owned = Option.isNone(existing) ? yield* Scope.make() : undefined
  let record = Option.getOrUndefined(existing)
  let started = record !== undefined
  const outcome = yield* Effect.scoped(Effect.gen(function*() {
    const session = record !== undefined ? yield* reattach(record, options) : yield* deploy(options, owned!).pipe(
      Effect.tap((s) =>
        Effect.sync(() => {
          record = s.record
          started = true
        })
      )
    )
    yield* forward(session)
    const followed = follow(session, options)
    if (!inputCanDetach()) return yield* followed
    return yield* Effect.raceFirst(followed, forwardInput(session.client).pipe(Effect.as({ _tag: "Detach" } as const)))
  })).pipe(
    Effect.onExit((exit) => {
      if (Exit.isSuccess(exit)) return Effect.void
      if (!started) {
        // Nothing runs on the proxy yet: it goes, with what was recorded of it.
        return Effect.gen(function*() {
          if (owned !== undefined) yield* Scope.close(owned, exit)
          yield* (yield* Ledger.Ledger).release(ProxyRecord.ledgerResource(ns).id)
          yield* ProxyRecord.remove(options.stateDir, ns)
        }).pipe(Effect.ignore)
      }
      if (!Cause.hasInterrupts(exit.cause) || record === undefined) return Effect.void
      const recorded = record
      return Effect.flatMap(options.stopKind, (kind) =>
        kind === "teardown"
          ? finish(options, recorded, owned, true).pipe(
            Effect.catch((e) => Effect.logError(`proxy: ${e.message}`)),
            Effect.asVoid
          )
          : detached(ns))
    })
  )
  if (outcome._tag === "Detach") {
    yield* detached(ns)
    return 0
  }
  // The run has ended there: what is left is this side's teardown (the log's end, the artifacts, the server, the
  // proxy), which a signal now waits for, as a teardown on any other backend does (a second one forces the exit and
  // names `CLOUD clean up`). Interrupted midway, it left the proxy and its records behind and named nothing.
  return yield* Effect.uninterruptible(finish(options, record!, owned, false, outcome.exitCode))
})

/** The recorded proxy of the namespace, reached for the current scope, or the error saying why not. */
export const reach = (options: { readonly stateDir: string; readonly config: CloudConfig.CloudConfig }) =>
  Effect.gen(function*() {
    const ns = options.config.namespace
    const record = yield* ProxyRecord.read(options.stateDir, ns)
    if (Option.isNone(record)) {
      return yield* CloudError.config("--tezt-cloud", `no proxy run of ${ns} is recorded here: start one with --proxy`)
    }
    return yield* reattach(record.value, options)
  })

/** `tezt-cloud proxy status`: the run's status on the proxy. */
export const status = (options: Options) =>
  Effect.scoped(Effect.flatMap(reach(options), (session) => session.client.status))

/** `tezt-cloud proxy logs`: the run's log from `from` (shown here, without moving this machine's offset). */
export const logs = (options: Options, from: number, followEnd: boolean) =>
  Effect.scoped(Effect.gen(function*() {
    const session = yield* reach(options)
    const display = show(options.sink)
    return yield* session.client.logs(from, followEnd, (lines) => Effect.sync(() => lines.forEach(display)))
  }))

/** `tezt-cloud proxy stop`: the run tears down (if it still runs), the proxy goes; returns the run's code. */
export const stop = (options: Options) =>
  Effect.gen(function*() {
    const ns = options.config.namespace
    const record = yield* ProxyRecord.read(options.stateDir, ns)
    if (Option.isNone(record)) {
      return yield* CloudError.config("--tezt-cloud", `no proxy run of ${ns} is recorded here: nothing to stop`)
    }
    yield* Effect.scoped(reach(options))
    return yield* finish(options, record.value, undefined, true)
  })
