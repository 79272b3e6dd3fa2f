/**
 * A live run for the ssh benchmarks, in a process of its own (`node bench/LiveRun.ts`, its input as JSON in
 * `BENCH_LIVE_RUN`): it writes the deployment record (`LiveRecord`, itself as the run), opens the runners
 * `SshSandbox.reattach` opens on it and serves them on the namespace's control socket with `AgentsControl`, as a
 * `--keep-alive` run does (writing its events to `events.jsonl` in `eventsDir` when given, as a run does). It
 * prints `ready` once the socket answers, then answers each line read on stdin with its CPU so far (ms, user and
 * system). It ends when stdin closes. Node's options pass on to it (`--cpu-prof` profiles the live run).
 *
 * Its own process, so that what a benchmark counts as the live run's CPU is the live run's work alone: not the
 * benchmark's (starting the measured clients, reading the hosts' accounting), which a real run never does.
 */
import { AgentsControl, CloudConfig, Ledger, RunEvents } from "@tezt-cloud/core"
import { Effect, Layer } from "effect"
import * as child from "node:child_process"
import * as readline from "node:readline"
import { SshHost, SshSandbox } from "../packages/ssh/src/index.ts"
import * as LiveRecord from "./LiveRecord.ts"

/** What the parent passes. */
export interface Input {
  readonly stateDir: string
  readonly namespace: string
  readonly hosts: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly user: string
  readonly keyFile: string
  readonly eventsDir?: string | undefined
}

/** CPU so far, ms. */
export interface Cpu {
  readonly user: number
  readonly system: number
}

/** A live run in a child process: `cpu()` asks its CPU so far; `close()` ends it. */
export interface LiveRun {
  readonly cpu: () => Promise<Cpu>
  readonly close: () => Promise<void>
}

/** Starts the live run of `input` in a child process; resolves once it serves its socket. */
export const start = async (input: Input): Promise<LiveRun> => {
  const proc = child.spawn(process.execPath, [...process.execArgv, import.meta.filename], {
    env: { ...process.env, BENCH_LIVE_RUN: JSON.stringify(input) },
    stdio: ["pipe", "pipe", "inherit"]
  })
  const lines = readline.createInterface({ input: proc.stdout! })
  const waiting: Array<(line: string) => void> = []
  const exited = new Promise<void>((resolve) => proc.on("close", () => resolve()))
  lines.on("line", (line) => waiting.shift()?.(line))
  const next = () =>
    new Promise<string>((resolve, reject) => {
      waiting.push(resolve)
      void exited.then(() => reject(new Error("the live run ended")))
    })
  const ready = await next()
  if (ready !== "ready") throw new Error(`the live run said ${ready}`)
  return {
    cpu: async () => {
      const answer = next()
      proc.stdin!.write("cpu\n")
      const [user, system] = (await answer).split(" ").map(Number)
      return { user: user!, system: system! }
    },
    close: async () => {
      proc.stdin!.end()
      await exited
    }
  }
}

const serve = (input: Input) =>
  Effect.scoped(Effect.gen(function*() {
    const descriptors = LiveRecord.descriptors(input.hosts, input)
    LiveRecord.write(input.stateDir, input.namespace, descriptors)
    const config = yield* CloudConfig.resolve({ tezt_cloud: input.namespace, localhost: true }, {}, {})
    const events = input.eventsDir === undefined
      ? RunEvents.RunEvents.layerNoop
      : Layer.effectDiscard(Effect.gen(function*() {
        yield* (yield* RunEvents.RunEvents).writeTo(input.eventsDir!)
      })).pipe(Layer.provideMerge(RunEvents.RunEvents.layer([])))
    const runners = yield* SshSandbox.reattach(descriptors, SshHost.settings(config, input.stateDir), {
      oneCommandEach: false
    }).pipe(Effect.provide(events))
    yield* AgentsControl.serve(AgentsControl.socketFile(Ledger.ledgerFile(input.stateDir, input.namespace)), runners)
    yield* Effect.callback<void>((resume) => {
      const lines = readline.createInterface({ input: process.stdin })
      lines.on("line", () => {
        const u = process.cpuUsage()
        process.stdout.write(`${u.user / 1000} ${u.system / 1000}\n`)
      })
      lines.on("close", () => resume(Effect.void))
      process.stdout.write("ready\n")
    })
  }))

if (process.env.BENCH_LIVE_RUN !== undefined && process.argv[1] === import.meta.filename) {
  await Effect.runPromise(serve(JSON.parse(process.env.BENCH_LIVE_RUN) as Input))
}
