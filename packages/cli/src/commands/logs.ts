/**
 * `tezt-cloud logs [--tezt-cloud NS] [--agent A]… [--follow] [--artifacts-dir DIR]`: the log of a namespace's last
 * run (or of the run whose artifacts are in DIR), from its `events.jsonl`, as the run's terminal showed it: every
 * event, or only those of the given agents (their commands, output lines and daemons). On a live run, `--follow`
 * then prints what the run writes until it ends; on a finished one it says that nothing more will come. The
 * agents' own files (daemons' logs, commands' output) are under `<artifacts-dir>/<agent>/`.
 */
import { Artifacts, CloudConfig, CloudError, type RunEvents } from "@tezt-cloud/core"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Root from "../Root.ts"
import * as Terminal from "../Terminal.ts"

/** The run to read: its artifacts dir, and whether it is still running. */
const locate = (stateDir: string, namespace: Option.Option<string>, artifactsDir: Option.Option<string>) =>
  Effect.gen(function*() {
    const given = Option.getOrUndefined(artifactsDir)
    // The namespace (checked as a run's would be) is needed unless the directory is given.
    const named = Option.getOrUndefined(namespace) ?? (given === undefined ? undefined : process.env.TEZT_CLOUD)
    const config = given === undefined || named !== undefined
      ? yield* CloudConfig.resolve({ tezt_cloud: named, localhost: true }, {}, process.env)
      : undefined
    const last = config === undefined ? undefined : Artifacts.lastRun(stateDir, config.namespace)
    const dir = given === undefined ? last?.artifactsDir : path.resolve(given)
    if (dir === undefined) {
      return yield* CloudError.config(
        "--tezt-cloud",
        `no run of ${config?.namespace} is recorded in ${stateDir}: give the namespace of a run, or --artifacts-dir ` +
          `DIR of one`
      )
    }
    const events = path.join(dir, "events.jsonl")
    if (!fs.existsSync(events)) {
      return yield* CloudError.config(
        given === undefined ? "--tezt-cloud" : "--artifacts-dir",
        `${dir} has no events.jsonl: not the artifacts dir of a run (or it was removed)`
      )
    }
    const live = last !== undefined && last.artifactsDir === dir && last.pid !== process.pid && Artifacts.isLive(last)
    return { dir, events, live, last }
  })

/** Reads the complete lines of `file` from `offset`; the new offset. */
const readFrom = (file: string, offset: number, onLine: (line: string) => void) =>
  Effect.sync(() => {
    const fd = fs.openSync(file, "r")
    try {
      const size = fs.fstatSync(fd).size
      if (size <= offset) return offset
      const buffer = Buffer.alloc(size - offset)
      fs.readSync(fd, buffer, 0, buffer.length, offset)
      const end = buffer.lastIndexOf(0x0a)
      if (end < 0) return offset
      for (const line of buffer.subarray(0, end).toString("utf8").split("\n")) if (line !== "") onLine(line)
      return offset + end + 1
    } finally {
      fs.closeSync(fd)
    }
  })

export const command = (stateDir: string) =>
  Command.make("logs", {
    namespace: Flag.String("tezt-cloud").pipe(
      Flag.withDescription("Namespace of the run (default: $TEZT_CLOUD); its last run is read"),
      Flag.optional
    ),
    agents: Flag.String("agent").pipe(
      Flag.withDescription("Only this agent's commands, output and daemons (repeatable; default: everything)"),
      Flag.atLeast(0)
    ),
    follow: Flag.Boolean("follow").pipe(
      Flag.withAlias("f"),
      Flag.withDescription("On a live run, print what it writes until it ends"),
      Flag.withDefault(false)
    ),
    artifactsDir: Flag.String("artifacts-dir").pipe(
      Flag.withDescription("Read the run whose artifacts are in this directory instead"),
      Flag.optional
    )
  }, ({ agents, artifactsDir, follow, namespace }) =>
    Effect.gen(function*() {
      const run = yield* locate(stateDir, namespace, artifactsDir)
      const sink = Terminal.plain(process.stdout)
      const seen = new Set<string>()
      const show = (line: string) => {
        let event: RunEvents.Stamped
        try {
          event = JSON.parse(line) as RunEvents.Stamped
        } catch {
          return
        }
        if ("agent" in event) seen.add(event.agent)
        if (agents.length > 0 && !("agent" in event && agents.includes(event.agent))) return
        sink(event)
      }
      let offset = yield* readFrom(run.events, 0, show)
      const unknown = agents.filter((a) => !seen.has(a))
      if (unknown.length > 0 && !run.live) {
        return yield* CloudError.config(
          "--agent",
          `the run has no agent named ${unknown.join(", ")}; its agents are ${[...seen].join(", ") || "none"}`
        )
      }
      if (!follow) return
      if (!run.live) {
        return yield* Console.error(`tezt-cloud: the run of ${run.dir} is over: nothing more will come`)
      }
      // Until the run's process is gone, then what it wrote last.
      while (Artifacts.isLive(run.last!)) {
        yield* Effect.sleep("250 millis")
        offset = yield* readFrom(run.events, offset, show)
      }
      yield* readFrom(run.events, offset, show)
    }).pipe(Effect.tapError(CloudError.logDetails))).pipe(
      Command.withDescription("Print the log of a namespace's last run, live (--follow) or finished")
    )

/** Runs `argv` (`logs …`) on a command tree with only this branch. */
export const run = (argv: ReadonlyArray<string>, stateDir: string) => Root.runBranch(command(stateDir), argv)
