/**
 * The full `tezt-cloud` CLI as a function of its arguments: it loads what the command needs, runs it under
 * `Shutdown` (signals, a closed output, the last resort of a second Ctrl+C), and says the code the command ends
 * with: 0 on success (`agents exec`: the worst agent's code), 2 on bad input (usage, a value it cannot use), 3
 * when the scenarios ran but a success criterion was not met, 130 when interrupted, 1 on any other failure. Loading it does nothing else: `Main.ts` runs it on the process's
 * arguments, and the start-up snapshot (`Snapshot.ts`) holds it loaded.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { CloudError, Ledger } from "@tezt-cloud/core"
import { Cause, Console, Effect, Exit, Option } from "effect"
import { CliError } from "effect/cli"
import * as Root from "./Root.ts"
import * as Shutdown from "./Shutdown.ts"

/** The command of `argv`, loading only what it needs. */
const command = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    // `agents …` acts on a live run from outside: it needs neither the scenario groups (the user's modules) nor
    // the run machinery (backends' deployment layers, monitoring, website), half a second of imports.
    if (argv[0] === "agents") {
      const Agents = yield* Effect.promise(() => import("./commands/agents.ts"))
      return yield* Agents.run(argv, Ledger.stateDir())
    }
    // `logs …` reads a run's artifacts: nothing else.
    if (argv[0] === "logs") {
      const Logs = yield* Effect.promise(() => import("./commands/logs.ts"))
      return yield* Logs.run(argv, Ledger.stateDir())
    }
    // `proxy …` acts on a recorded `--proxy` run: no scenario group either.
    if (argv[0] === "proxy") {
      const Proxy = yield* Effect.promise(() => import("./commands/proxy.ts"))
      return yield* Proxy.run(argv, Ledger.stateDir())
    }
    const Cli = yield* Effect.promise(() => import("./Cli.ts"))
    const extra = yield* Effect.tryPromise({
      try: () => Cli.loadGroups(process.env.TEZT_CLOUD_SCENARIOS),
      catch: (error) => CloudError.config("$TEZT_CLOUD_SCENARIOS", CloudError.messageOf(error), { cause: error })
    })
    return yield* Cli.run(argv, Ledger.stateDir(), extra)
  })

/**
 * The last resort of a second signal, per namespace with a run in progress: every backend of the registry kills
 * what it runs for the namespace (local processes, containers by label…), loaded only when it is needed.
 */
const lastResort = (namespace: string) =>
  Effect.promise(() => import("./Backends.ts")).pipe(
    Effect.flatMap((Backends) =>
      Backends.all.pipe(
        Effect.orElseSucceed(() => []),
        Effect.map((backends): Shutdown.LastResort => ({ killed: Backends.forceKill(backends, namespace), left: 0 }))
      )
    )
  )

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "es"}`

/** Tells the user how the command ended, and the code it exits with. */
const conclude = (ending: Shutdown.Ending<unknown>) =>
  Effect.gen(function*() {
    if (ending._tag === "Forced") {
      const done = Option.match(ending.result, {
        onNone: () => "the last resort did not complete",
        onSome: ({ killed, left }) => `killed ${plural(killed, "process")}${left > 0 ? `, ${left} left` : ""}`
      })
      const namespaces = ending.namespaces.join(" ")
      yield* Console.error(
        `\ntezt-cloud: forced exit: ${done}` +
          (namespaces === "" ? "" : `; run 'tezt-cloud CLOUD clean up --tezt-cloud ${namespaces}' to remove the rest`)
      )
      return 130
    }
    const { exit } = ending
    // A command may say which code it succeeded with (`agents exec`: the worst agent's, through `exitWith`).
    if (Exit.isSuccess(exit)) return Shutdown.successCode(ending)
    if (Cause.hasInterruptsOnly(exit.cause)) return 130
    const error = Cause.squash(exit.cause)
    // CLI usage errors were already printed, as one line, by the CLI's presenter.
    if (CliError.isCliError(error)) return 2
    // A value we cannot use (an option, a config file, the environment) is bad input, like a usage error: its
    // message may quote the value back, cut short.
    const badInput = error instanceof CloudError.CloudError && error.reason._tag === "ConfigInvalid"
    yield* Console.error(
      error instanceof CloudError.CloudError
        ? `tezt-cloud: error: ${Root.oneLine(badInput ? Root.shorten(error.message) : error.message)}`
        : `tezt-cloud: internal error: ${Cause.pretty(exit.cause)}`
    )
    // The run worked and judged its criteria: a CI job tells a missed goal from a broken run.
    const missed = error instanceof CloudError.CloudError && error.reason._tag === "CriteriaFailed"
    return badInput ? 2 : missed ? 3 : 1
  })

/**
 * The command of `argv` (the arguments after the executable's) run to its end under `Shutdown`, and the code to
 * exit with; the platform's services and `Shutdown` are the caller's (`run` gives the process's, the start-up
 * snapshot's warm-up inert ones).
 */
export const program = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const shutdown = yield* Shutdown.Shutdown
    return yield* conclude(yield* shutdown.supervise(command(argv)))
  })

/** Runs the command of `argv` (the arguments after the executable's) to its end: the code to exit with. */
export const run = (argv: ReadonlyArray<string>): Promise<number> =>
  Effect.runPromise(
    program(argv).pipe(Effect.provide(Shutdown.layer({ lastResort })), Effect.provide(NodeServices.layer))
  )
