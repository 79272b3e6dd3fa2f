/**
 * One multiplexed ssh connection per host, on `ssh2`: commands are channels of that connection, so a hundred
 * agents cost a hundred sockets, not thousands, and nobody has to configure `ControlMaster`.
 *
 * **Details**
 *
 * - Channels per host are limited (default 8, below OpenSSH's `MaxSessions` 10); extra commands queue.
 * - Keepalives detect a dead peer within `keepaliveMillis × keepaliveCountMax`.
 * - Connecting retries with exponential backoff; a dropped connection is re-established on next use. A
 *   handshake that times out is not retried: the host takes connections but does not answer (it is frozen, or
 *   its sshd is stopped), and each attempt would cost another whole time-out (a teardown would wait for them all).
 * - After `connectAttempts` failed attempts the circuit breaker opens: calls fail at once with `HostDown` until
 *   `breakerCooldownMillis` have passed, instead of every command waiting for its own time-outs.
 * - Authentication as OpenSSH does it: the `credentials` in order (an ssh-agent's keys, then key files); the first
 *   the host accepts is used, and a failure names every one tried (and those that could not be, and why).
 * - Host keys: the user's own `known_hosts` files first (a key they know is accepted, a different one of the same
 *   type refused), then trust on first use, recorded in a per-namespace `known_hosts`; a changed key is refused.
 *   `strict` refuses a key no file knows; `insecure` accepts any key (Tezt cloud's `StrictHostKeyChecking=no`),
 *   only when asked for explicitly.
 * - Through a jump host (`via`, OpenSSH's `ProxyJump`): each connection is a forwarded channel of the jump host's
 *   connection.
 * - Commands go through the connection's persistent executor (Executor.ts: one session, many commands, no sshd
 *   session set-up per command) where the host can run it, through one channel each otherwise.
 * - A command with a NUL byte (in argv, a variable, the directory, a shell line) is refused before anything is
 *   sent, on either path (`CommandInvalid`): no program can receive one, and the executor's frames would cut it.
 * - What the host sends is bounded: the executor's frames are checked, a command's pid line on a channel is at
 *   most a few bytes (past that it is output, not a pid).
 * - The connection belongs to the scope that opened it.
 */
import { AtomicFile, Telemetry } from "@tezt-cloud/core"
import { Duration, Effect, Metric, Option, Schedule, Semaphore } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import ssh2 from "ssh2"
import * as Executor from "./Executor.ts"
import * as KnownHosts from "./internal/knownHosts.ts"
import * as Shell from "./internal/shell.ts"
import { type Command, type ExecExit, type ExecHandlers, invalid } from "./SshCommand.ts"
import * as SshError from "./SshError.ts"

export { commandLine, quote } from "./internal/shell.ts"
export type { Command, ExecExit, ExecHandlers, Flow } from "./SshCommand.ts"

export interface Target {
  readonly host: string
  readonly port: number
  readonly user: string
}

export type HostKeyPolicy =
  | {
    readonly _tag: "TrustOnFirstUse"
    readonly knownHostsFile: string
    /** The user's known_hosts files, consulted first. */
    readonly userKnownHostsFiles?: ReadonlyArray<string> | undefined
    /** A key no file knows is refused instead of recorded (`StrictHostKeyChecking yes`). */
    readonly strict?: boolean | undefined
  }
  | { readonly _tag: "Insecure" }

/** A way to authenticate; `label` says where it comes from, for messages (never the key itself). */
export type Credential =
  | {
    readonly _tag: "Agent"
    readonly socket: string
    readonly label: string
    /** Only the agent's keys with these public keys (base64 blobs) are offered (`IdentitiesOnly`). */
    readonly only?: ReadonlyArray<string> | undefined
  }
  | { readonly _tag: "Key"; readonly privateKey: string; readonly label: string }

export interface Options {
  /** The private key, in OpenSSH or PEM format: the only credential when `credentials` is not given. */
  readonly privateKey?: string | undefined
  /** What to authenticate with, in order (the first the host accepts is used). */
  readonly credentials?: ReadonlyArray<Credential> | undefined
  /**
   * Every key source, in order, for an authentication failure: the credentials' labels, and those that could not
   * be tried, with why (the credentials' labels when not given).
   */
  readonly sources?: ReadonlyArray<string> | undefined
  /** Appended to an authentication failure: how to fix it. */
  readonly authHint?: string | undefined
  readonly hostKeys: HostKeyPolicy
  readonly maxChannels?: number | undefined
  readonly keepaliveMillis?: number | undefined
  readonly keepaliveCountMax?: number | undefined
  readonly connectTimeoutMillis?: number | undefined
  readonly connectAttempts?: number | undefined
  readonly breakerCooldownMillis?: number | undefined
  /**
   * A connection to a jump host (`ProxyJump`) the host is reached through: each connection to the host is a
   * channel of that one (`direct-tcpip`), as `ssh -J` does.
   */
  readonly via?: Connection | undefined
  /** Run commands through a persistent executor on the host (default true); false: one channel per command. */
  readonly executor?: boolean | undefined
}

export interface Connection {
  readonly target: Target
  /** `user@host:port`, for messages. */
  readonly label: string
  /**
   * Runs a command line with `sh -c` on the host (through the executor, or the remote user's shell on a
   * channel). Its stdin is `handlers.stdin`, or closed. Interrupting it stops the command where it runs;
   * killing its whole tree (what it started with `setsid`) is the caller's business.
   */
  exec(commandLine: string, handlers: ExecHandlers): Effect.Effect<ExecExit, SshError.SshError>
  /**
   * Runs a `Command`: through the executor, one fork and exec on the host; on a channel, a shell line that does
   * the same with `cd`, `env` and `setsid`. Interrupting it stops the command where it runs.
   */
  execCommand(command: Command, handlers: ExecHandlers): Effect.Effect<ExecExit, SshError.SshError>
  /** Runs a command line and collects its output (for short control commands). */
  run(
    commandLine: string,
    stdin?: AsyncIterable<Uint8Array>
  ): Effect.Effect<{ readonly code: number; readonly stdout: string; readonly stderr: string }, SshError.SshError>
  /** Channels open right now (for tests and benchmarks). */
  readonly openChannels: () => number
  /** The executor's pid on the host while one runs (for tests and benchmarks). */
  readonly executorPid: () => number | undefined
  /** The credential the last connection got in with. */
  readonly authenticatedWith: () => Credential | undefined
  /** The live ssh2 client, connecting when there is none: for what this module does not wrap (`SshTunnel`). */
  readonly client: Effect.Effect<ssh2.Client, SshError.SshError>
}

export const label = (target: Target) => `${target.user}@${target.host}:${target.port}`

const signals: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, SEGV: 11, PIPE: 13, ALRM: 14, TERM: 15 }

/** An exit as a shell reports it; `signal` without its `SIG` prefix (ssh2 gives either). */
const exitOf = (code: number | null | undefined, signal: string | undefined): ExecExit => {
  if (code !== null && code !== undefined) return { code, signal: undefined }
  const name = signal?.replace(/^SIG/, "")
  return { code: 128 + (signals[name ?? ""] ?? 0), signal: name }
}

/** The longest pid line a command on a channel starts with (`echo $$`): digits and a newline. */
const maxPidLine = 16

/** An ssh-agent offering only some of its keys. */
class OnlyAgent extends ssh2.OpenSSHAgent {
  readonly only: ReadonlySet<string>
  constructor(socket: string, only: ReadonlySet<string>) {
    super(socket)
    this.only = only
  }
  override getIdentities(cb: Parameters<ssh2.OpenSSHAgent["getIdentities"]>[0]) {
    super.getIdentities((error, keys) =>
      cb(
        error,
        keys?.filter((key) => "getPublicSSH" in key && this.only.has(key.getPublicSSH().toString("base64")))
      )
    )
  }
}

/** The `SHA256:…` fingerprint of a key blob, as OpenSSH prints it. */
const fingerprint = (key: Buffer) =>
  `SHA256:${crypto.createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`

/** Reads `known_hosts`-style lines `[host]:port base64` into a map. */
const readKnownHosts = (file: string): Map<string, string> => {
  const known = new Map<string, string>()
  if (!fs.existsSync(file)) return known
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const [host, key] = line.trim().split(/\s+/)
    if (host && key) known.set(host, key)
  }
  return known
}

/** Opens a connection to `target`, owned by the current scope. Fails if the first connection cannot be made. */
export const connect = Effect.fn("SshClient.connect")(function*(target: Target, options: Options) {
  const name = label(target)
  const fail = (reason: SshError.Reason) => new SshError.SshError({ host: name, reason })
  const maxChannels = options.maxChannels ?? 8
  const channels = yield* Semaphore.make(maxChannels)
  const connecting = yield* Semaphore.make(1)
  const attempts = options.connectAttempts ?? 4
  const cooldown = options.breakerCooldownMillis ?? 5000
  let client: ssh2.Client | undefined
  let open = 0
  let brokenUntil = 0
  let connectedBefore = false
  let lastFailure = ""
  let closed = false
  /** Whether the last attempt's handshake timed out. */
  let handshakeTimedOut = false

  const hostKeyId = KnownHosts.hostId(target.host, target.port)
  let keyMismatch: string | undefined
  const credentials: ReadonlyArray<Credential> = options.credentials ??
    (options.privateKey === undefined ? [] : [{ _tag: "Key", privateKey: options.privateKey, label: "the key" }])
  let authenticatedWith: Credential | undefined

  /** The host key check: the user's files, then the namespace's (trust on first use). */
  const verifyHostKey = (key: Buffer): string | undefined => {
    if (options.hostKeys._tag === "Insecure") return undefined
    const { knownHostsFile: file, userKnownHostsFiles = [], strict = false } = options.hostKeys
    const presented = key.toString("base64")
    const known = readKnownHosts(file).get(hostKeyId)
    /**
     * Records the accepted key in the namespace's file, which later connections (other terminals') check; a key
     * the user's files know replaces the one recorded (they say the host was rebuilt).
     */
    const record = () => {
      if (known === presented) return undefined
      fs.mkdirSync(path.dirname(file), { recursive: true })
      const others = known === undefined
        ? []
        : fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "" && !l.startsWith(`${hostKeyId} `))
      if (known === undefined) fs.appendFileSync(file, `${hostKeyId} ${presented}\n`, { mode: 0o600 })
      else AtomicFile.writeAtomic(file, [...others, `${hostKeyId} ${presented}`].join("\n") + "\n", 0o600)
      return undefined
    }
    const user = KnownHosts.lookup(userKnownHostsFiles, target.host, target.port, key)
    if (user._tag === "Known") return record()
    const remove = (where: string) => `ssh-keygen -R '${hostKeyId}' -f ${where.replace(/:\d+$/, "")}`
    if (user._tag === "Changed") {
      return user.revoked
        ? `the host key ${fingerprint(key)} is revoked in ${user.where}: refusing to connect`
        : `the host key (${fingerprint(key)}) is not the one ${user.where} knows: someone may be intercepting the ` +
          `connection; if the host was rebuilt on purpose, run \`${remove(user.where)}\` and connect again`
    }
    if (known === presented) return undefined
    if (known !== undefined) {
      return `the host key changed (now ${fingerprint(key)}); if the host was rebuilt on purpose, ` +
        `remove its line from ${file}`
    }
    if (strict) {
      return `the host key (${fingerprint(key)}) is in no known_hosts file (${userKnownHostsFiles.join(", ")}) and ` +
        `StrictHostKeyChecking is yes: connect once with \`ssh\` to check and record it, then run again`
    }
    return record()
  }

  /** Every credential in turn, then none: ssh2 asks for the next after each failure. */
  const authHandler = (attempt: { next: number }): ssh2.AuthHandlerMiddleware => (_methodsLeft, _partial, callback) => {
    const credential = credentials[attempt.next++]
    authenticatedWith = credential
    if (credential === undefined) return callback(false as never)
    callback(
      credential._tag === "Agent"
        ? {
          type: "agent",
          username: target.user,
          agent: credential.only === undefined
            ? credential.socket
            : new OnlyAgent(credential.socket, new Set(credential.only))
        }
        : { type: "publickey", username: target.user, key: credential.privateKey }
    )
  }

  const authFailure = (agentErrors: ReadonlyArray<string>) => {
    const tried = options.sources ?? credentials.map((c) => c.label)
    const agentNote = agentErrors.length === 0 ? "" : ` (the agent: ${agentErrors.join("; ")})`
    return `authentication failed for ${target.user}; tried ${tried.join(", ") || "no key"}${agentNote}` +
      (options.authHint === undefined ? "" : `; ${options.authHint}`)
  }

  /** A channel to the host through the jump host, when there is one: the new connection's socket. */
  const through: Effect.Effect<ssh2.ClientChannel | undefined, SshError.SshError> = options.via === undefined
    ? Effect.succeed(undefined)
    : Effect.flatMap(options.via.client, (jump) =>
      Effect.callback<ssh2.ClientChannel, SshError.SshError>((resume) => {
        jump.forwardOut("127.0.0.1", 0, target.host, target.port, (error, channel) =>
          resume(
            error
              ? Effect.fail(fail(
                new SshError.Unreachable({ message: `through ${options.via!.label}: ${error.message}` })
              ))
              : Effect.succeed(channel)
          ))
      }))

  const connectOnce = Effect.flatMap(through, (sock) =>
    Effect.callback<ssh2.Client, SshError.SshError>((resume) => {
      const c = new ssh2.Client()
      keyMismatch = undefined
      let settled = false
      const agentErrors: Array<string> = []
      c.once("ready", () => {
        settled = true
        resume(Effect.succeed(c))
      })
      // Every error is listened to, for the client's whole life: one unheard crashes the process, and a client
      // emits more than one (a handshake that times out, then the socket's close "before handshake"). The first
      // settles the attempt; later ones are the 'close' handlers' business.
      c.on("error", (error: Error & { level?: string }) => {
        // An agent that does not answer (a stale $SSH_AUTH_SOCK) or cannot sign: ssh2 goes on with the next way.
        if (error.level === "agent") return void agentErrors.push(error.message)
        if (settled) return
        settled = true
        handshakeTimedOut = error.level === "client-timeout"
        if (keyMismatch !== undefined) {
          return resume(Effect.fail(fail(new SshError.HostKeyMismatch({ message: keyMismatch }))))
        }
        const message = error.message
        // sshd hangs up after `MaxAuthTries` refused keys (an agent holding many): an authentication failure too.
        const tooMany = /too many authentication failures/i.test(message)
        resume(Effect.fail(fail(
          error.level === "client-authentication" || tooMany
            ? new SshError.AuthFailed({
              message: authFailure(agentErrors) + (tooMany ? ` (the host stopped after ${message.toLowerCase()})` : "")
            })
            : new SshError.Unreachable({ message })
        )))
      })
      c.on("close", () => {
        if (client === c) client = undefined
      })
      c.connect({
        ...(sock === undefined ? { host: target.host, port: target.port } : { sock }),
        username: target.user,
        authHandler: authHandler({ next: 0 }),
        readyTimeout: options.connectTimeoutMillis ?? 5000,
        keepaliveInterval: options.keepaliveMillis ?? 2000,
        keepaliveCountMax: options.keepaliveCountMax ?? 3,
        hostVerifier: (key: Buffer) => {
          keyMismatch = verifyHostKey(key)
          return keyMismatch === undefined
        }
      })
      // Small packets (a command frame, a window adjust) go out at once: with Nagle, each waits for the peer's
      // delayed acknowledgement (40 ms). `connect` has made the socket (ssh2 keeps it for the connection's life).
      c.setNoDelay(true)
      return Effect.sync(() => c.end())
    }))

  /** The live client, connecting (once, for all waiting callers) when there is none. */
  const ensure: Effect.Effect<ssh2.Client, SshError.SshError> = connecting.withPermits(1)(Effect.suspend(() => {
    if (closed) return Effect.fail(fail(new SshError.Disconnected({ message: "the connection was closed" })))
    if (client !== undefined) return Effect.succeed(client)
    const now = Date.now()
    if (now < brokenUntil) {
      return Effect.fail(fail(
        new SshError.HostDown({
          message: `host is down (${lastFailure}); not retrying for ${Math.ceil((brokenUntil - now) / 1000)}s`,
          retryInMillis: brokenUntil - now
        })
      ))
    }
    return connectOnce.pipe(
      Effect.retry({
        times: attempts - 1,
        schedule: Schedule.exponential(Duration.millis(200)),
        // A wrong key or a changed host key will not fix itself, nor will a host that does not answer: no retry.
        while: (e) => e.reason._tag === "Unreachable" && !handshakeTimedOut
      }),
      Effect.tap((c) =>
        Effect.suspend(() => {
          client = c
          brokenUntil = 0
          // A connection made again after one was up: a reconnect (the tool's own metrics).
          const again = connectedBefore
          connectedBefore = true
          return again ? Metric.update(Telemetry.sshReconnects, 1) : Effect.void
        })
      ),
      Effect.tapError((e) =>
        Effect.sync(() => {
          lastFailure = e.reason.message
          if (e.reason._tag === "Unreachable") brokenUntil = Date.now() + cooldown
        })
      )
    )
  }))

  /** What a call on a connection that is already gone says. */
  const dropped = (error: unknown) =>
    `the connection dropped before the command (${error instanceof Error ? error.message : String(error)})`

  /** A refused channel ran nothing: it is retried, from 50 ms apart. */
  const retryRefused = <A>(effect: Effect.Effect<A, SshError.SshError>) =>
    Effect.retry(effect, {
      times: 5,
      schedule: Schedule.exponential(Duration.millis(50)),
      while: (e) => e.reason._tag === "ChannelRefused"
    })

  const openChannel = <A>(
    use: (c: ssh2.Client, resume: (effect: Effect.Effect<A, SshError.SshError>) => void) => (() => void) | void
  ) =>
    channels.withPermits(1)(Effect.flatMap(ensure, (c) =>
      Effect.callback<A, SshError.SshError>((resume) => {
        open += 1
        let done = false
        const finish = (effect: Effect.Effect<A, SshError.SshError>) => {
          if (done) return
          done = true
          open -= 1
          c.removeListener("close", onClose)
          resume(effect)
        }
        const onClose = () =>
          finish(Effect.fail(fail(new SshError.Disconnected({ message: "the connection dropped during the command" }))))
        c.once("close", onClose)
        // ssh2 throws ("Not connected") when the connection died before its `close` came: the same drop.
        let cancel: (() => void) | void = undefined
        try {
          cancel = use(c, finish)
        } catch (error) {
          finish(Effect.fail(fail(new SshError.Disconnected({ message: dropped(error) }))))
        }
        return Effect.sync(() => {
          if (!done) {
            done = true
            open -= 1
            c.removeListener("close", onClose)
          }
          cancel?.()
        })
      })))

  const channelExec = (commandLine: string, handlers: ExecHandlers) =>
    retryRefused(openChannel<ExecExit>((c, finish) => {
      let channel: ssh2.ClientChannel | undefined
      let exit: ExecExit | undefined
      c.exec(commandLine, (error, stream) => {
        if (error) return finish(Effect.fail(fail(new SshError.ChannelRefused({ message: error.message }))))
        channel = stream
        handlers.onFlow?.({
          pause: () => {
            stream.pause()
            stream.stderr.pause()
          },
          resume: () => {
            stream.resume()
            stream.stderr.resume()
          }
        })
        stream.on("data", handlers.onStdout)
        stream.stderr.on("data", handlers.onStderr)
        stream.on("exit", (code: number | null, signal?: string) => (exit = exitOf(code, signal)))
        stream.on("close", () =>
          finish(
            exit === undefined
              ? Effect.fail(fail(new SshError.Disconnected({ message: "the channel closed without an exit status" })))
              : Effect.succeed(exit)
          ))
        if (handlers.stdin === undefined) return stream.end()
        const stdin = handlers.stdin
        const pump = async () => {
          for await (const chunk of stdin) {
            if (!stream.write(chunk)) await new Promise((resolve) => stream.once("drain", resolve))
          }
          stream.end()
        }
        pump().catch(() => stream.close())
      })
      return () => channel?.close()
    }))

  /** A channel with its stdin open for the executor; not counted against the channel limit. */
  const session = (commandLine: string, handlers: Executor.SessionHandlers) =>
    retryRefused(Effect.flatMap(ensure, (c) =>
      Effect.callback<Executor.Session, SshError.SshError>((resume) => {
        // ssh2 throws ("Not connected") when the connection died before its `close` came: the same drop.
        const exec = (callback: (error: Error | undefined, stream: ssh2.ClientChannel) => void) => {
          try {
            c.exec(commandLine, callback)
          } catch (error) {
            resume(Effect.fail(fail(new SshError.Disconnected({ message: dropped(error) }))))
          }
        }
        exec((error, stream) => {
          if (error) return resume(Effect.fail(fail(new SshError.ChannelRefused({ message: error.message }))))
          let exit: ExecExit | undefined
          stream.on("data", handlers.onStdout)
          stream.stderr.on("data", handlers.onStderr)
          stream.on("exit", (code: number | null, signal?: string) => (exit = exitOf(code, signal)))
          stream.on("close", () => handlers.onClose(exit))
          resume(Effect.succeed({
            write: (data) => stream.write(data),
            close: () => stream.close()
          }))
        })
      })))

  /**
   * A `Command` on a channel: the first line of its stdout is its pid (`echo $$` before `exec`), stripped. What
   * is not such a line (more than `maxPidLine` bytes without a newline, or not a number) is no pid: it is passed
   * on as output, and so is everything after it.
   */
  const channelCommand = (command: Command, handlers: ExecHandlers) => {
    const line = `${Shell.environmentPrefix(command)} setsid -w sh -c 'echo $$; exec "$@"' sh ` +
      Shell.commandLine(command.argv)
    let header: Buffer | undefined = Buffer.alloc(0)
    return channelExec(line, {
      ...handlers,
      onStdout: (chunk) => {
        if (header === undefined) return handlers.onStdout(chunk)
        header = Buffer.concat([header, chunk])
        const newline = header.indexOf(0x0a)
        if (newline < 0 && header.length <= maxPidLine) return
        const pid = newline < 0 ? "" : header.subarray(0, newline).toString("latin1")
        const isPid = /^[1-9]\d{0,9}$/.test(pid)
        if (isPid) handlers.onPid?.(Number(pid))
        const rest = isPid ? header.subarray(newline + 1) : header
        header = undefined
        if (rest.length > 0) handlers.onStdout(rest)
      }
    })
  }

  const run = (commandLine: string, stdin?: AsyncIterable<Uint8Array>) =>
    Effect.gen(function*() {
      const out: Array<Buffer> = []
      const err: Array<Buffer> = []
      const { code } = yield* exec(commandLine, {
        onStdout: (b) => out.push(b),
        onStderr: (b) => err.push(b),
        stdin
      })
      return { code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }
    })

  yield* Effect.acquireRelease(ensure, () =>
    Effect.sync(() => {
      closed = true
      client?.end()
      client = undefined
    }))

  // Created after the connection: its session closes first when the scope does.
  const executor = options.executor === false ? undefined : yield* Executor.make({
    label: name,
    open: session,
    cleanUp: (markers) =>
      channelExec(Shell.killScript(markers, 1), { onStdout: () => {}, onStderr: () => {} }).pipe(Effect.ignore)
  })

  /** Refuses what cannot be sent (a NUL byte…) before anything is sent. */
  const checked = (what: string | Command, send: Effect.Effect<ExecExit, SshError.SshError>) => {
    const refused = invalid(what)
    return refused === undefined ? send : Effect.fail(fail(new SshError.CommandInvalid({ message: refused })))
  }

  /**
   * Through the executor when the host has one (it refuses what cannot be sent itself, before anything is sent),
   * else on a channel (`fallback`, checked the same way).
   */
  const viaExecutor = (
    what: string | Command,
    handlers: ExecHandlers,
    fallback: Effect.Effect<ExecExit, SshError.SshError>
  ) => {
    if (executor === undefined) return checked(what, fallback)
    return executor.exec(what, handlers).pipe(
      Effect.flatMap(Option.match({ onNone: () => checked(what, fallback), onSome: Effect.succeed }))
    )
  }

  const exec = (commandLine: string, handlers: ExecHandlers) =>
    viaExecutor(commandLine, handlers, Effect.suspend(() => channelExec(commandLine, handlers)))

  const execCommand = (command: Command, handlers: ExecHandlers) =>
    viaExecutor(command, handlers, Effect.suspend(() => channelCommand(command, handlers)))

  return {
    target,
    label: name,
    exec,
    execCommand,
    run,
    openChannels: () => open,
    executorPid: () => executor?.pid(),
    authenticatedWith: () => authenticatedWith,
    client: ensure
  } satisfies Connection
})
