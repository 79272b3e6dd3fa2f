/**
 * `tezt-cloud agents list|exec|copy|fetch`: ad-hoc fan-out on the agents of a live run (kept with `--keep-alive`), from
 * another terminal, like `kurtosis service exec` or `ansible -m command`. The run lists its agents in
 * `<state-dir>/<ns>/deployment.json` while it lives; each command reaches them the way the run does (local
 * sandbox, or one multiplexed ssh connection per host), in parallel, with output prefixed per agent. The exit code
 * is the worst agent's (255 when an agent could not be reached, as ssh does).
 *
 * **Details**
 *
 * This is the cold path. `agents exec` first tries the run's control socket (`AgentsControl`) from a thin
 * client that does not load this module (`AgentsExecClient.cjs`); it comes here when no run answers there, or
 * with `TEZT_CLOUD_COLD=1`. Both print the same lines and exit with the same code.
 */
import {
  type Agent,
  AgentsControl,
  CloudConfig,
  CloudError,
  Fetch,
  Ledger,
  Orchestrator,
  ProcessLiveness,
  RunEvents,
  type Runner
} from "@tezt-cloud/core"
import * as Protocol from "@tezt-cloud/core/AgentsControlProtocol"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Backends from "../Backends.ts"
import * as Root from "../Root.ts"
import * as Shutdown from "../Shutdown.ts"

const namespaceFlag = Flag.String("tezt-cloud").pipe(
  Flag.withDescription("Namespace of the live run (default: $TEZT_CLOUD)"),
  Flag.optional
)
const agentFlag = Flag.String("agent").pipe(
  Flag.withDescription("Only this agent (repeatable; default: all)"),
  Flag.atLeast(0)
)

/** The live run's record, or a one-line error saying what to do. */
export const load = Effect.fn("Agents.load")(function*(stateDir: string, namespaceOption: Option.Option<string>) {
  const config = yield* CloudConfig.resolve(
    { tezt_cloud: Option.getOrUndefined(namespaceOption), localhost: true },
    {},
    process.env
  )
  const file = Orchestrator.deploymentFile(Ledger.ledgerFile(stateDir, config.namespace))
  if (!fs.existsSync(file)) {
    return yield* CloudError.config(
      "--tezt-cloud",
      `no live run of ${config.namespace}: start one with --keep-alive, then run this from another terminal`
    )
  }
  const record = JSON.parse(fs.readFileSync(file, "utf8")) as Orchestrator.DeploymentRecord
  if (!ProcessLiveness.isLive(record.pid, record.started)) {
    return yield* CloudError.config(
      "--tezt-cloud",
      `the run of ${config.namespace} that kept these agents (pid ${record.pid}) is gone: ` +
        `run 'tezt-cloud CLOUD clean up --tezt-cloud ${config.namespace}' to remove what it left`
    )
  }
  return { config, record }
})

/** The chosen agents' descriptors; an unknown name is an error naming the known ones. */
const choose = (record: Orchestrator.DeploymentRecord, names: ReadonlyArray<string>) =>
  AgentsControl.choose(record.agents, (a) => String(a.agent), names)

/**
 * Runners for the descriptors, in their order, owned by the current scope, through the backends that made them.
 * `oneShot`: each runner runs one command (the backends then skip what only pays off over many, such as an ssh
 * host's persistent executor).
 */
const runnersFor = (
  descriptors: ReadonlyArray<Agent.Descriptor>,
  config: CloudConfig.CloudConfig,
  stateDir: string,
  oneShot: boolean
) =>
  Backends.reattach(descriptors, { config, stateDir, oneCommandEach: oneShot }).pipe(
    Effect.provide(Ledger.Ledger.layer(stateDir, config.namespace)),
    Effect.provide(RunEvents.RunEvents.layerNoop)
  )

const list = (stateDir: string) =>
  Command.make("list", { namespace: namespaceFlag }, ({ namespace }) =>
    Effect.gen(function*() {
      const { record } = yield* load(stateDir, namespace)
      yield* Console.log("AGENT\tBACKEND\tWHERE\tHOME")
      for (const d of record.agents) {
        const where = (yield* Backends.load(d.backend)).where(d)
        yield* Console.log(`${d.agent}\t${d.backend}\t${where}\t${d.home}`)
      }
    }).pipe(Effect.tapError(CloudError.logDetails))).pipe(Command.withDescription("List the agents of a live run"))

const exec = (stateDir: string) =>
  Command.make("exec", {
    namespace: namespaceFlag,
    agents: agentFlag,
    command: Argument.String("command").pipe(
      Argument.withDescription("The command and its arguments (after --)"),
      Argument.variadic({ min: 1 })
    )
  }, ({ agents, command, namespace }) =>
    Effect.scoped(Effect.gen(function*() {
      const { config, record } = yield* load(stateDir, namespace)
      const chosen = yield* choose(record, agents)
      const runners = yield* runnersFor(chosen, config, stateDir, true)
      const [program, ...args] = command
      const codes = yield* Effect.forEach(runners, ([name, runner]) =>
        runner.exec(program!, args, {
          onLine: ({ line, stream }) =>
            stream === "stdout" ? Console.log(`[${name}] ${line}`) : Console.error(`[${name}] ${line}`)
        }).pipe(
          Effect.map((r) => r.exitCode),
          Effect.catch((e) =>
            CloudError.logDetails(e).pipe(
              Effect.andThen(Console.error(`[${name}] error: ${e.message}`)),
              Effect.as(Protocol.agentErrorCode)
            )
          )
        ), { concurrency: "unbounded" })
      yield* (yield* Shutdown.Shutdown).exitWith(Protocol.worstCode(codes))
    })).pipe(Effect.tapError(CloudError.logDetails))).pipe(
      Command.withDescription("Run a command on every (or each --agent) agent of a live run, in parallel")
    )

/**
 * Runs `act` on every agent at once; an agent's failure is a line `[agent] error: …` and exit code 1 for it. The
 * command exits with the worst agent's code.
 */
const eachAgent = <R>(
  runners: ReadonlyArray<readonly [string, Runner.Runner]>,
  act: (name: string, runner: Runner.Runner) => Effect.Effect<void, CloudError.CloudError, R>
) =>
  Effect.gen(function*() {
    const codes = yield* Effect.forEach(runners, ([name, runner]) =>
      act(name, runner).pipe(
        Effect.as(0),
        Effect.catch((e) =>
          CloudError.logDetails(e).pipe(Effect.andThen(Console.error(`[${name}] error: ${e.message}`)), Effect.as(1))
        )
      ), { concurrency: "unbounded" })
    yield* (yield* Shutdown.Shutdown).exitWith(Protocol.worstCode(codes))
  })

const copy = (stateDir: string) =>
  Command.make("copy", {
    namespace: namespaceFlag,
    agents: agentFlag,
    destination: Flag.String("destination").pipe(
      Flag.withDescription("Where on each agent (default: its binaries path)"),
      Flag.optional
    ),
    refresh: Flag.Boolean("refresh").pipe(Flag.withDescription("Copy even if up to date"), Flag.withDefault(false)),
    source: Argument.String("source").pipe(Argument.withDescription("Local file or directory"))
  }, ({ agents, destination, namespace, refresh, source }) =>
    Effect.scoped(Effect.gen(function*() {
      const { config, record } = yield* load(stateDir, namespace)
      const runners = yield* runnersFor(yield* choose(record, agents), config, stateDir, false)
      yield* eachAgent(runners, (name, runner) =>
        Effect.gen(function*() {
          // What the agent already had, each file at its path there: said, not silently skipped.
          const same: Array<string> = []
          const unchecked: Array<string> = []
          const remote = yield* runner.copy(source, {
            destination: Option.getOrUndefined(destination),
            refresh,
            onOutcome: (file, outcome) =>
              Effect.sync(() => {
                if (outcome === "skipped-same") same.push(file)
                if (outcome === "skipped-unchecked") unchecked.push(file)
              })
          })
          yield* Console.log(`[${name}] ${remote}`)
          const files = (n: number) => n === 1 ? "the file" : `${n} files`
          if (same.length > 0) {
            yield* Console.log(
              `[${name}] not copied: the agent has ${
                files(same.length)
              } with that content already (--refresh copies anyway)`
            )
          }
          if (unchecked.length > 0) {
            yield* Console.log(
              `[${name}] not copied: the agent has ${files(unchecked.length)} there already, content not compared ` +
                `(--check-file-consistency compares, --refresh copies anyway)`
            )
          }
        }))
    })).pipe(Effect.tapError(CloudError.logDetails))).pipe(
      Command.withDescription("Copy a file or directory to every (or each --agent) agent of a live run")
    )

const fetch = (stateDir: string) =>
  Command.make("fetch", {
    namespace: namespaceFlag,
    agents: agentFlag,
    destination: Flag.String("destination").pipe(
      Flag.withDescription(
        "Local directory to fetch into, as DIR/<agent>/<basename> (default: the run's artifacts dir)"
      ),
      Flag.optional
    ),
    source: Argument.String("source").pipe(
      Argument.withDescription("File or directory on the agents (an absolute path, or relative to each agent's home)")
    )
  }, ({ agents, destination, namespace, source }) =>
    Effect.scoped(Effect.gen(function*() {
      const { config, record } = yield* load(stateDir, namespace)
      const into = Option.getOrUndefined(destination) ?? record.artifactsDir
      if (into === undefined) {
        return yield* CloudError.config(
          "--destination",
          "the run does not say its artifacts dir: give --destination DIR"
        )
      }
      const runners = yield* runnersFor(yield* choose(record, agents), config, stateDir, true)
      yield* eachAgent(runners, (name, runner) =>
        Fetch.fetch(name, runner, source, Fetch.defaultLocal(path.join(into, name), source)).pipe(
          Effect.flatMap((fetched) => Console.log(`[${name}] ${fetched.local}`))
        ))
    })).pipe(Effect.tapError(CloudError.logDetails))).pipe(
      Command.withDescription("Fetch a file or directory from every (or each --agent) agent of a live run")
    )

export const command = (stateDir: string) =>
  Command.make("agents").pipe(
    Command.withDescription("Act on the agents of a live run: list, exec, copy, fetch"),
    Command.withSubcommands([list(stateDir), exec(stateDir), copy(stateDir), fetch(stateDir)])
  )

/**
 * Runs `argv` (`agents …`) on a command tree with only this branch: what the full tree would do, without loading
 * the rest of the CLI.
 */
export const run = (argv: ReadonlyArray<string>, stateDir: string) => Root.runBranch(command(stateDir), argv)
