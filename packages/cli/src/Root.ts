/**
 * The root of the `tezt-cloud` command tree: its name, version and description, and how errors are printed:
 * one line naming the problem (and, for usage errors, where help is), never a long value quoted back in full. `Cli.ts` hangs every command on it; `agents …`
 * hangs only its own branch (`commands/agents.ts`), so it loads no scenario group, no backend's deployment layer
 * and no monitoring stack.
 */
import { Console, Effect } from "effect"
import { CliOutput, Command } from "effect/cli"

export const version = "0.1.0"

export const description = "Deploy agents, run scenarios on them, watch and tear everything down"

/** The longest value a usage error quotes back in full. */
const maxQuoted = 60

/**
 * A usage error's message with every long quoted value cut to its start and its size: the parser quotes the value
 * it refused, which may be a megabyte.
 */
export const shorten = (message: string): string =>
  // Quotes are paired from the left: the text between two quoted values is never taken for one.
  message.replaceAll(
    /"([^"]*)"/g,
    (quoted, value: string) =>
      value.length > maxQuoted ? `"${value.slice(0, 20)}…" (${Buffer.byteLength(value, "utf8")} bytes)` : quoted
  )

/** A message on one line: control characters (a newline in a value quoted back) are written as escapes. */
export const oneLine = (message: string): string =>
  // oxlint-disable-next-line no-control-regex
  message.replaceAll(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1))

/** Usage errors as one line naming the problem, and where help is. */
export const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.forEach(event.errors, (error) =>
        Console.error(
          `tezt-cloud: error: ${oneLine(shorten(error.message))} (see tezt-cloud ${
            event.commandPath.slice(1).join(" ")
          } --help)`
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
