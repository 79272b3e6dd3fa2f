/**
 * The `tezt-cloud` command tree: one command per scenario group (`tezt-cloud <GROUP> [tags…] [options]`), each
 * accepting every run option. A group's command reads its options, selects the group's scenarios having all the
 * tags, lists them (`--list`) or runs them one after the other (`Run.ts`, loaded only then: `--help` and `--list`
 * load no backend, no monitoring stack, no website).
 */
import { CloudError, RunEvents, type Scenario } from "@tezt-cloud/core"
import { Basic } from "@tezt-cloud/scenarios"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as path from "node:path"
import * as url from "node:url"
import * as Backends from "./Backends.ts"
import * as AgentsCommand from "./commands/agents.ts"
import * as CloudCommands from "./commands/cloud.ts"
import * as InitCommand from "./commands/init.ts"
import * as LogsCommand from "./commands/logs.ts"
import * as ProxyCommand from "./commands/proxy.ts"
import * as Options from "./Options.ts"
import * as Root from "./Root.ts"
import * as ScenarioModules from "./ScenarioModules.ts"
import * as Terminal from "./Terminal.ts"

export const version = Root.version

/**
 * Scenario groups of the user's own, from `$TEZT_CLOUD_SCENARIOS`: colon-separated module paths, each exporting
 * `group` (a `Scenario.Group`) or `groups` (an array of them). A module anywhere on disk imports `@tezt-cloud/*` and
 * `effect` from this installation (`ScenarioModules`).
 */
export const loadGroups = async (spec: string | undefined): Promise<ReadonlyArray<Scenario.Group>> => {
  const groups: Array<Scenario.Group> = []
  const files = (spec ?? "").split(":").filter((f) => f !== "")
  if (files.length > 0) ScenarioModules.register()
  for (const file of files) {
    const module = (await import(url.pathToFileURL(path.resolve(file)).href)) as {
      readonly group?: Scenario.Group
      readonly groups?: ReadonlyArray<Scenario.Group>
    }
    if (module.group === undefined && module.groups === undefined) {
      throw new Error(`${file} exports neither "group" nor "groups"`)
    }
    groups.push(...(module.groups ?? []), ...(module.group === undefined ? [] : [module.group]))
  }
  return groups
}

const selectScenarios = (group: Scenario.Group, tags: ReadonlyArray<string>) => {
  const selected = group.scenarios.filter((s) => tags.every((t) => s.tags.includes(t)))
  return selected.length > 0
    ? Effect.succeed(selected)
    : Effect.fail(CloudError.config(
      "tags",
      `no scenario of ${group.name} has all of the tags ${tags.join(" ")}: see tezt-cloud ${group.name} --list`
    ))
}

/** The group's scenarios having all the tags: listed with `--list`, else run (`Run.run`). */
const runGroup = (group: Scenario.Group, stateDir: string, args: {
  readonly tags: ReadonlyArray<string>
  readonly list: boolean
  readonly flags: Record<string, Option.Option<unknown>>
  readonly sink: RunEvents.Sink
  readonly logFile: Option.Option<string>
}) =>
  Effect.gen(function*() {
    const { input, cliOnly } = yield* Options.read(args.flags, process.env)
    const selected = yield* selectScenarios(group, args.tags)
    if (args.list) {
      for (const s of selected) yield* Console.log(`${group.name} ${s.tags.join(" ")}: ${s.title}`)
      return
    }
    const Run = yield* Effect.promise(() => import("./Run.ts"))
    return yield* Run.run(group, stateDir, {
      tags: args.tags,
      selected,
      input,
      cliOnly,
      sink: args.sink,
      logFile: Option.getOrUndefined(args.logFile)
    })
  })

const groupCommand = (group: Scenario.Group, stateDir: string) =>
  Command.make(group.name, {
    flags: Options.flags,
    tags: Argument.String("tags").pipe(
      Argument.withDescription("Run only the scenarios having all these tags"),
      Argument.variadic()
    ),
    list: Flag.Boolean("list").pipe(
      Flag.withDescription("List the matching scenarios and exit"),
      Flag.withDefault(false)
    ),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print the run's events as JSON lines"),
      Flag.withDefault(false)
    ),
    logFile: Flag.String("log-file").pipe(
      Flag.withDescription(
        "Also write the run's log to FILE, rotated daily or past 200 MiB keeping --log-rotation copies; SIGUSR1 " +
          "reopens it for an external rotator (SIGHUP tears the run down, like Ctrl+C)"
      ),
      Flag.optional
    )
  }, (args) => {
    const sink = Terminal.sinkFor(args.json)
    return runGroup(group, stateDir, { ...args, sink }).pipe(
      // The one line is the CLI's to print; with --log-level debug, the errors under it go to the log first.
      Effect.tapError(CloudError.logDetails),
      Effect.provide(RunEvents.RunEvents.layerWithLogger([sink]))
    )
  }).pipe(Command.withDescription(group.description))

/** The whole command tree for the built-in groups, the backends' `CLOUD` `jobs`, and `extra` groups. */
export const command = (
  stateDir: string,
  extra: ReadonlyArray<Scenario.Group> = [],
  jobs: ReadonlyArray<Scenario.Scenario> = []
) =>
  Command.make("tezt-cloud").pipe(
    Command.withDescription(Root.description),
    Command.withSubcommands([
      groupCommand(Basic.group, stateDir),
      groupCommand(CloudCommands.group(stateDir, jobs), stateDir),
      AgentsCommand.command(stateDir),
      LogsCommand.command(stateDir),
      ProxyCommand.command(stateDir),
      InitCommand.command,
      ...extra.map((g) => groupCommand(g, stateDir))
    ])
  )

/** Runs the CLI on `argv` (without the node and script paths). */
export const run = (argv: ReadonlyArray<string>, stateDir: string, extra: ReadonlyArray<Scenario.Group> = []) =>
  // The backends' jobs are the CLOUD group's only: any other command (and `--help`) loads no backend.
  (argv.includes(CloudCommands.name) ? Backends.jobs(stateDir) : Effect.succeed([])).pipe(
    Effect.flatMap((jobs) => Command.runWith(command(stateDir, extra, jobs), { version })(argv)),
    Effect.provide(Root.presenterFor([Basic.group.name, "CLOUD", ...extra.map((g) => g.name)]))
  )
