/**
 * The root of the `tezt-cloud` command tree: its name, version and description, and how usage errors are
 * printed (one line naming the problem and where help is). `Cli.ts` hangs every command on it; `agents …`
 * hangs only its own branch (`commands/agents.ts`), so it loads no scenario group, no backend's deployment layer
 * and no monitoring stack.
 */
import { Console, Effect } from "effect"
import { CliOutput } from "effect/cli"

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
