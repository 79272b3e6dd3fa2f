/**
 * The CLI held in a V8 start-up snapshot (`.build/cli/startup.blob`, made by `scripts/build-cli.ts` next to the
 * bundle): `Program`, `effect` and the CLI's command tree are loaded and initialised when the snapshot is built,
 * so that `node --snapshot-blob startup.blob -- ARGS…` (what `./tezt-cloud` runs) only deserialises them.
 *   The modules of a run (backends, monitoring, website…) are in it too, as code not run yet: a command runs
 *   them when it needs them, as with the bundle.
 *
 * **Details**
 *
 * - The snapshot runs the CLI only while it is usable (`CliBuild.snapshotUsable`: the fresh build's, in the
 *   repository it was made in, and neither the sources nor a user's scenario modules to run, which the launcher
 *   avoids). Otherwise the bootstrap runs (it rebuilds what is stale), then `node bin.mjs ARGS…`, as children;
 *   the latter's code is this process's. The launcher does not run the bootstrap before the snapshot: this is
 *   where a stale build is noticed.
 * - Nothing that depends on the run may be read or opened while the snapshot is built: the arguments, the
 *   environment, the terminal are read by the function the snapshot starts (`deserialized` below).
 * - `agents exec` on a live run takes the fast path of `bin.mjs` (`AgentsExecClient`).
 * - `--help` and `BASIC --list` run once while the snapshot is built (on inert platform services, their output
 *   dropped), so that the bytecode of what every start runs (building the command tree, parsing, the help's
 *   layout, the options' checks) is in the snapshot: V8 compiles a function on its first call, and a start would
 *   otherwise compile them all again. They read nothing but the build's environment, and keep nothing.
 */
import { Console, Effect, FileSystem, Layer, Path, Stdio, Terminal } from "effect"
import { TerminalCapabilities } from "effect/cli"
import { ChildProcessSpawner } from "effect/process"
import * as child from "node:child_process"
import { EventEmitter } from "node:events"
import * as os from "node:os"
import * as path from "node:path"
import * as v8 from "node:v8"
import * as AgentsExecClient from "./AgentsExecClient.mjs"
import * as CliBuild from "./CliBuild.mjs"
import * as Program from "./Program.ts"
import * as Shutdown from "./Shutdown.ts"

/** The start time of the build that made the snapshot (the `built` of its manifest), set by the build. */
declare const __TEZT_CLOUD_BUILT__: number

/** The stack trace limit Node starts with; the build sets it to 0 while the snapshot is made, this sets it back. */
declare const __tcStackTraceLimit: number

/**
 * Runs the CLI with `argv` as children, the bootstrap first (which rebuilds a stale build), then `bin.mjs`, of the
 * repository at `root`; resolves with the code to exit with.
 */
const fallback = (root: string, argv: ReadonlyArray<string>) =>
  new Promise<number>((resolve) => {
    const bootstrap = child.spawnSync("sh", [path.join(root, "scripts", "bootstrap.sh")], { stdio: "inherit" })
    if (bootstrap.status !== 0) return resolve(1)
    const bin = path.join(root, "packages", "cli", "src", "bin.mjs")
    const proc = child.spawn(process.execPath, [bin, ...argv], { stdio: "inherit" })
    // A terminal's signals reach the child too (one process group); others are passed on.
    const forward = (signal: NodeJS.Signals) => () => proc.kill(signal)
    process.on("SIGINT", () => {})
    process.on("SIGTERM", forward("SIGTERM"))
    process.on("SIGHUP", forward("SIGHUP"))
    proc.on("error", () => resolve(1))
    proc.on("exit", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : os.constants.signals[signal])))
  })

/** What the process started from the snapshot runs. */
const deserialized = async () => {
  const argv = process.argv.slice(1)
  const blob = process.execArgv[process.execArgv.indexOf("--snapshot-blob") + 1] ?? ""
  const root = path.resolve(path.dirname(blob), "..", "..")
  const usable = CliBuild.snapshotUsable({
    root,
    builtRoot: CliBuild.repoRoot,
    built: __TEZT_CLOUD_BUILT__,
    env: process.env
  })
  if (!usable) return process.exit(await fallback(root, argv))
  // As if `node bin.mjs ARGS…` ran: a snapshot's process has no script argument, and Effect's `Stdio.args` (the
  // Node platform's) takes the arguments after `process.argv[1]`.
  process.argv.splice(1, 0, path.join(root, "packages", "cli", "src", "bin.mjs"))
  const code = await AgentsExecClient.run(argv, process.env)
  if (code !== undefined) process.exitCode = code
  else process.exit(await Program.run(argv))
}

/** Help's colours, fixed: the terminal's are for the run to find out (Effect's default reads `process.stdin`). */
const capabilities = { canColor: true, canAnimate: false, canPrompt: false }

/**
 * The platform's services as the warm-up needs them: nothing of the process (no standard input opened, no file
 * read, no child spawned).
 */
const inert = Layer.mergeAll(
  FileSystem.layerNoop({}),
  Path.layer,
  Stdio.layerTest({}),
  Layer.succeed(
    Terminal.Terminal,
    Terminal.make({
      columns: Effect.succeed(80),
      rows: Effect.succeed(24),
      size: Effect.die("unused"),
      readInput: Effect.die("unused"),
      readLine: Effect.die("unused"),
      display: () => Effect.void
    })
  ),
  Layer.succeed(ChildProcessSpawner.ChildProcessSpawner, ChildProcessSpawner.make(() => Effect.die("unused")))
)

/** A console that drops what it is given. */
const silent: Console.Console = Object.assign(Object.create(console), { log: () => {}, error: () => {} })

/**
 * What the process's signals and output are to `Shutdown`, for the warm-up: none of the process's (an emitter that
 * never emits), and a last resort that has nothing to do.
 */
const detached = Shutdown.layer({
  lastResort: () => Effect.succeed({ killed: 0, left: 0 }),
  signals: [],
  output: new EventEmitter(),
  quiet: []
})

// The freshness check every start makes too, its result dropped.
CliBuild.fresh()

// The CLI (the command tree of every command but `agents exec` on a live run and `proxy`) is loaded now rather
// than at each run: its modules only define things. `--help` and `BASIC --list` then run once, as a start runs
// them, with their output dropped: V8 keeps the bytecode of the functions they compiled (the command tree's, the
// parser's, the help's layout, the options' checks) in the snapshot, so that a start does not parse and compile
// them again.
void Effect.runPromise(
  Effect.forEach([["--help"], ["BASIC", "--list"]], Program.program).pipe(
    Effect.provide(detached),
    Effect.provideService(Console.Console, silent),
    Effect.provideService(TerminalCapabilities.TerminalCapabilities, capabilities),
    Effect.provide(inert),
    // A warm-up that fails costs nothing but the time it would have saved.
    Effect.exit
  )
)

v8.startupSnapshot.addSerializeCallback(() => {
  Error.stackTraceLimit = __tcStackTraceLimit
})
v8.startupSnapshot.setDeserializeMainFunction(() => void deserialized())
