/**
 * The local executor of process sandboxes: one small long-lived process per run (the persistent executor ssh hosts
 * run, `@tezt-cloud/ssh/Executor`, here started with pipes instead of an ssh session), owned by the run's scope,
 * that forks and execs the agents' commands for the orchestrator. A command then costs a fork of a ~5 MiB Perl
 * process instead of a fork of the orchestrator (~230 MiB of Node), with the same marker environment, a session
 * and process group of its own, streaming with per-command flow control, and its tree killed when it is
 * interrupted.
 *
 * **Details**
 *
 * - Started on the first command; recorded in the namespace's ledger before it exists, released when it exits.
 *   It carries the namespace's marker (`TEZT_CLOUD_NS`), so `CLOUD clean up` and the last resort find it, and it
 *   kills the trees of its running commands and exits when its input closes (the scope's end, or the
 *   orchestrator's death).
 * - Two programs speak the executor's frames: a native one (internal/executor.c, built by the bootstrap into
 *   `.build/executor/` when a C compiler is there), which starts commands with `posix_spawn`, and the Perl one of
 *   ssh hosts. The native one is used when its build is not older than its source: a command then costs ~0.1 ms of
 *   the executor's CPU and ~0.75 ms of its own, against ~0.45 and ~1.2 ms from Perl (`fork` copies Perl's page
 *   tables, and both sides then take a copy-on-write fault per page they write).
 * - Without either (no build, no `perl`: the executor answers `None`), the runner spawns the command itself.
 * - A pool of such processes, not one: a fork copies every descriptor of the forking process (two pipes per
 *   running command) and the child's exec then closes them, so one process running all of a 300-agent fan-out
 *   spends ~1.6× the CPU per command of one running 32 (here: a fork and exec of `true` from a Perl holding 600
 *   descriptors, 2 ms; holding none, 1.4 ms, as `xargs` does). A command goes to the first process running fewer
 *   than `perExecutor` commands; the next process starts only when every started one has that many, up to
 *   `maxExecutors`, then the least busy takes it. A run that runs a few commands at a time has one process.
 */
import { CloudError, type Ledger } from "@tezt-cloud/core"
import * as Executor from "@tezt-cloud/ssh/Executor"
import * as SshError from "@tezt-cloud/ssh/SshError"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ProcessTree from "./internal/processTree.ts"

export interface Options {
  readonly namespace: string
  /** The executor's environment, which every command inherits (the sandbox's variables come on top). */
  readonly env: Readonly<Record<string, string | undefined>>
  readonly ledger: Ledger.Ledger["Service"]
  /** How long a killed tree gets between SIGTERM and SIGKILL. */
  readonly graceMillis: number
  /** Which executor program runs; by default the native one when it is built (`native()`), else Perl. */
  readonly program?: Program | undefined
}

/** `native`: the built one, which must be there; `perl`: the ssh hosts' one. */
export type Program = "native" | "perl"

const source = path.join(import.meta.dirname, "internal", "executor.c")

/** Where the bootstrap builds the native executor. */
export const nativePath = path.resolve(
  import.meta.dirname,
  "..",
  "..",
  "..",
  ".build",
  "executor",
  "tezt-cloud-executor"
)

/** The native executor's path when it is built and not older than its source, else `undefined`. */
export const native = (): string | undefined => {
  try {
    return fs.statSync(nativePath).mtimeMs >= fs.statSync(source).mtimeMs ? nativePath : undefined
  } catch {
    return undefined
  }
}

/** An executor process started for the run: its ledger record, and its end. */
interface Started {
  readonly id: string
  readonly proc: child.ChildProcess
  readonly exited: Promise<void>
}

/** Commands one executor process runs before the pool starts the next. */
const perExecutor = 32

/** The most executor processes of a run. */
const maxExecutors = 16

/**
 * The run's executor (a pool of processes, each started on its first command), owned by the current scope: at its
 * end the processes' inputs close, and they are waited for.
 */
export const make = Effect.fn("LocalExecutor.make")(function*(options: Options) {
  const program = options.program === "perl" ? undefined : native()
  if (options.program === "native" && program === undefined) {
    return yield* CloudError.config(
      "executor",
      `the native executor is not built (${nativePath}): run scripts/bootstrap.sh with a C compiler (cc) installed`
    )
  }
  const started: Array<Started> = []
  // Registered before the executor's own (which closes its input): runs after it.
  yield* Effect.addFinalizer(() =>
    Effect.forEach(started, ({ exited, id, proc }) =>
      Effect.promise(() => exited).pipe(
        Effect.timeoutOrElse({
          duration: options.graceMillis + 2000,
          orElse: () => Effect.sync(() => proc.kill("SIGKILL"))
        }),
        Effect.andThen(options.ledger.release(id)),
        Effect.ignore
      ), { discard: true })
  )
  const member = Executor.make({
    label: "localhost",
    launch: program === undefined ? Executor.perl : Executor.program(program),
    open: (commandLine, handlers) =>
      Effect.gen(function*() {
        const id = `process:executor:${crypto.randomUUID()}`
        yield* options.ledger.acquire({ id, kind: "executor", data: { namespace: options.namespace } })
        const proc = child.spawn("/bin/sh", ["-c", commandLine], {
          env: { ...options.env, TEZT_CLOUD_NS: options.namespace },
          stdio: ["pipe", "pipe", "pipe"]
        })
        const exited = new Promise<void>((resolve) => proc.on("close", () => resolve()))
        started.push({ id, proc, exited })
        proc.stdout.on("data", handlers.onStdout)
        proc.stderr.on("data", handlers.onStderr)
        // Its input closes when it dies: what the executor did not read any more is dropped.
        proc.stdin.on("error", () => {})
        proc.on("error", () => {})
        proc.on("close", (code, signal) =>
          handlers.onClose(code === null ? { code: 128, signal: signal ?? undefined } : { code, signal: undefined }))
        return {
          write: (data: Buffer) =>
            proc.stdin.write(data),
          close: () =>
            proc.stdin.end()
        }
      }).pipe(
        Effect.mapError((e) =>
          new SshError.SshError({
            host: "localhost",
            reason: new SshError.ChannelFailed({ message: CloudError.messageOf(e) })
          })
        )
      ),
    cleanUp: (markers) =>
      Effect.sync(() => {
        for (const marker of markers) {
          const [key, value] = marker.split("=", 2) as [string, string]
          ProcessTree.killMarkedSync(key, value, options.graceMillis)
        }
      })
  })
  // Made now, in the run's scope (each starts its process on its first command).
  const members = yield* Effect.forEach(
    Array.from({ length: maxExecutors }, () => member),
    (made) => Effect.map(made, (executor) => ({ executor, running: 0 }))
  )
  let inUse = 1
  const pick = () => {
    const free = members.find((m, i) => i < inUse && m.running < perExecutor)
    if (free !== undefined) return free
    if (inUse < members.length) return members[inUse++]!
    return members.reduce((a, b) => (b.running < a.running ? b : a))
  }
  return {
    exec: (what, handlers) =>
      Effect.suspend(() => {
        const chosen = pick()
        chosen.running += 1
        return chosen.executor.exec(what, handlers).pipe(Effect.ensuring(Effect.sync(() => (chosen.running -= 1))))
      }),
    pid: () => members[0]!.executor.pid()
  } satisfies Executor.Executor
})
