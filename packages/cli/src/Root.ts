/**
 * The root of the `tezt-cloud` command tree: its name, version and description, and how usage errors are
 * printed (one line naming the problem and where help is). `Cli.ts` hangs every command on it; `agents …`
 * hangs only its own branch (`commands/agents.ts`), so it loads no scenario group, no backend's deployment layer
 * and no monitoring stack.
 */
import { Console, Effect } from "effect"
import { CliOutput, Command } from "effect/cli"

export const version = "0.1.0"

export const description = "Deploy agents, run scenarios on them, watch and tear everything down"

/** Usage errors as one line naming the problem, and where help is. */
export const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.forEach(event.errors, (error) =>
        Console.error(
          `tezt-cloud: error: ${error.message} (see tezt-cloud ${event.commandPath.slice(1).join(" ")} --help)`
        ), {
        discard: true
      })
      : CliOutput.defaultPresenter.present(event)
})

/**
 * Runs `argv` on a tree with only `branch` under the root: what the full tree does for it, without loading the
 * rest of the CLI (scenario groups, backends' deployment layers, monitoring).
 */
export const runBranch = <Name extends string, I, C, E, R>(
  branch: Command.Command<Name, I, C, E, R>,
  argv: ReadonlyArray<string>
) =>
  Command.runWith(
    Command.make("tezt-cloud").pipe(Command.withDescription(description), Command.withSubcommands([branch])),
    { version }
  )(argv).pipe(Effect.provide(presenter))
