/**
 * The full `tezt-cloud` CLI, loaded by `bin.mjs` when the fast path of `agents exec` does not apply. Signals are
 * ours, not the runtime's: the first Ctrl+C (or SIGTERM) interrupts the run, which tears everything down
 * gracefully and exits 130; a second one force-kills what is left of the run's processes and exits at once.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { CloudError, Ledger } from "@tezt-cloud/core"
import { Cause, Effect, Exit } from "effect"
import { CliError } from "effect/cli"

const argv = process.argv.slice(2)

/** What a second Ctrl+C kills: the processes of the namespaces with a run in progress. */
let forceKill = (): { readonly killed: number; readonly namespaces: string } => ({ killed: 0, namespaces: "" })

const load = async () => {
  // `agents …` acts on a live run from outside: it needs neither the scenario groups (the user's modules) nor
  // the run machinery (backends' deployment layers, monitoring, website), half a second of imports.
  if (argv[0] === "agents") {
    const Agents = await import("./commands/agents.ts")
    return Agents.run(argv, Ledger.stateDir())
  }
  const [Cli, Backends] = await Promise.all([import("./Cli.ts"), import("./Backends.ts")])
  // The second Ctrl+C's last resorts; when a backend cannot load, the run itself fails with the reason.
  const backends = await Effect.runPromise(Effect.orElseSucceed(Backends.all, () => []))
  const extra = await Cli.loadGroups(process.env.TEZT_CLOUD_SCENARIOS).catch((error: unknown) => {
    process.stderr.write(`tezt-cloud: error: ${CloudError.messageOf(error)}\n`)
    return process.exit(1)
  })
  forceKill = () => {
    let killed = 0
    for (const namespace of Cli.activeNamespaces) killed += Backends.forceKill(backends, namespace)
    return { killed, namespaces: [...Cli.activeNamespaces].join(" ") }
  }
  return Cli.run(argv, Ledger.stateDir(), extra)
}

const fiber = Effect.runFork((await load()).pipe(Effect.provide(NodeServices.layer)))

let signals = 0
const onSignal = () => {
  signals += 1
  if (signals === 1) {
    process.stderr.write("\ntezt-cloud: interrupted: tearing down (press Ctrl+C again to force)\n")
    fiber.interruptUnsafe()
    return
  }
  const { killed, namespaces } = forceKill()
  process.stderr.write(
    `\ntezt-cloud: forced exit: killed ${killed} process${killed === 1 ? "" : "es"}` +
      (namespaces === "" ? "\n" : `; run 'tezt-cloud CLOUD clean up --tezt-cloud ${namespaces}' to remove the rest\n`)
  )
  process.exit(130)
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

fiber.addObserver((exit) => {
  // A command may set the exit code it succeeded with (`agents exec`: the worst agent's).
  if (Exit.isSuccess(exit)) process.exit(typeof process.exitCode === "number" ? process.exitCode : 0)
  if (Cause.hasInterruptsOnly(exit.cause)) process.exit(130)
  const error = Cause.squash(exit.cause)
  // CLI usage errors were already printed, as one line, by the CLI's presenter.
  if (CliError.isCliError(error)) process.exit(2)
  process.stderr.write(
    error instanceof CloudError.CloudError
      ? `tezt-cloud: error: ${error.message}\n`
      : `tezt-cloud: internal error: ${Cause.pretty(exit.cause)}\n`
  )
  process.exit(1)
})
