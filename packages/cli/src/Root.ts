/**
 * The root of the `tezt-cloud` command tree: its name, version and description, and how errors are printed:
 * one line naming the problem (and, for usage errors, where help is), never a long value quoted back in full. `Cli.ts` hangs every command on it; `agents …`
 * hangs only its own branch (`commands/agents.ts`), so it loads no scenario group, no backend's deployment layer
 * and no monitoring stack.
 */
import { Suggest } from "@tezt-cloud/core"
import { Console, Effect } from "effect"
import { CliOutput, Command } from "effect/cli"

export const version = "0.1.0"

export const description = "Deploy agents, run scenarios on them, watch and tear everything down. " +
  "Groups of your own: $TEZT_CLOUD_SCENARIOS=path/to/Mine.ts[:…], modules exporting `group` or `groups` " +
  "(`tezt-cloud init DIR` makes a repository of them)"

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

/** The commands of the root that are not scenario groups. */
const commands = ["agents", "logs", "proxy", "init"]

/**
 * What an unknown first word gets: the groups and commands there are, and the closest one. The parser then takes
 * every option of the line for the root's, and refuses them too: those lines say nothing more, they are left out.
 */
const unknownGroup = (word: string, groups: ReadonlyArray<string>) =>
  `unknown group "${word}"${Suggest.didYouMean(word, [...groups, ...commands])}: the groups are ${
    groups.join(", ")
  }, and the commands ${commands.join(", ")}`

/** The parser's "Did you mean this?" block, on the line it belongs to: `…: did you mean --localhost?`. */
const suggestionInline = (message: string) =>
  message.replace(
    /\s*\n\s*Did you mean this\?\s*\n\s*([^\n]+)\s*$/,
    (_, option: string) => `: did you mean ${option.trim()}?`
  )

/**
 * Usage errors as one line naming the problem, and where help is. `groups`: the scenario groups of the run, listed
 * when the first word is none of them.
 */
export const presenterFor = (groups: ReadonlyArray<string>) =>
  CliOutput.layerPresenter({
    present: (event) => {
      if (event._tag !== "InvalidInvocation") return CliOutput.defaultPresenter.present(event)
      const help = ["tezt-cloud", ...event.commandPath.slice(1), "--help"].join(" ")
      const unknown = event.errors.find((e) => e._tag === "UnknownSubcommand")
      const atRoot = event.commandPath.length <= 1 && groups.length > 0
      const lines = unknown?._tag === "UnknownSubcommand"
        ? [atRoot ? unknownGroup(unknown.subcommand, groups) : unknown.message]
        : event.errors.map((e) => suggestionInline(e.message))
      return Effect.forEach(lines, (line) =>
        Console.error(`tezt-cloud: error: ${oneLine(shorten(line))} (see ${help})`), {
        discard: true
      })
    }
  })

/** Usage errors as one line naming the problem, and where help is. */
export const presenter = presenterFor([])

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
