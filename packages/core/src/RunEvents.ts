/**
 * The run's event log: deploy, ready, exec, daemon up/down, log lines, teardown, end. Every event is appended to
 * `<artifacts-dir>/events.jsonl` and handed to the run's sinks (the terminal display, `--json`, the website), so
 * all of them show the same story.
 */
import { Context, Effect, Layer, Logger, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Verdict } from "./Verdict.ts"

export type RunEvent =
  | {
    readonly type: "run-start"
    readonly namespace: string
    readonly scenario: string
    readonly backend: string
    readonly artifactsDir: string
  }
  | { readonly type: "deploy-start"; readonly total: number }
  | { readonly type: "agent-ready"; readonly agent: string; readonly ready: number; readonly total: number }
  | { readonly type: "deploy-done"; readonly total: number; readonly millis: number }
  | { readonly type: "exec"; readonly agent: string; readonly command: string }
  | {
    readonly type: "exit"
    readonly agent: string
    readonly command: string
    readonly exitCode: number
    readonly pid: number
  }
  | { readonly type: "output"; readonly agent: string; readonly stream: "stdout" | "stderr"; readonly line: string }
  | { readonly type: "daemon-up"; readonly agent: string; readonly name: string; readonly pid: number }
  | { readonly type: "daemon-down"; readonly agent: string; readonly name: string }
  | { readonly type: "log"; readonly level: string; readonly message: string }
  /** A network fault applied to an agent (`Network`), with the seed it was drawn with, if any. */
  | { readonly type: "network"; readonly agent: string; readonly fault: string; readonly seed?: number }
  /** A success criterion judged while the scenario runs (`Verdict`: its `every`). */
  | { readonly type: "verdict"; readonly verdict: Verdict }
  /** Every success criterion judged once the scenario has ended: the verdict table. */
  | { readonly type: "verdicts"; readonly verdicts: ReadonlyArray<Verdict> }
  | { readonly type: "teardown-start"; readonly total: number }
  | { readonly type: "agent-down"; readonly agent: string; readonly down: number; readonly total: number }
  | {
    readonly type: "teardown-failed"
    readonly step: string
    readonly message: string
    /** The errors under the failure (`CloudError.details`), when it has any. */
    readonly cause?: string
  }
  | {
    readonly type: "run-end"
    readonly ok: boolean
    readonly message: string
    /** Where in the scenario's own code it failed (`file:line:column`), when a frame of its trace says. */
    readonly location?: string
    /** Effect's trace of the failure: the error's frames and the spans it crossed, with their call sites. */
    readonly trace?: string
    /** The errors under the failure (`CloudError.details`), when it has any. */
    readonly cause?: string
  }

export type Stamped = RunEvent & { readonly at: number }

/** Receives every event; must not throw. */
export type Sink = (event: Stamped) => void

export class RunEvents extends Context.Service<RunEvents, {
  emit(event: RunEvent): Effect.Effect<void>
  /** Starts writing `events.jsonl` into `dir` (the artifacts dir, known once the config is resolved). */
  writeTo(dir: string): Effect.Effect<void>
  /**
   * Adds a sink for the current scope (a service started mid-run, e.g. the website). It first receives the last
   * `recentEvents` events, so it sees how the run began.
   */
  subscribe(sink: Sink): Effect.Effect<void, never, Scope.Scope>
}>()("@tezt-cloud/core/RunEvents") {
  /** Events go to the given sinks (and, once `writeTo` is called, to a file). */
  static readonly layer = (sinks: ReadonlyArray<Sink>) => Layer.sync(RunEvents, () => make(sinks).service)

  /** Like `layer`, and `Effect.log*` lines become `log` events of the same stream (file and subscribers too). */
  static readonly layerWithLogger = (sinks: ReadonlyArray<Sink>) =>
    Layer.unwrap(Effect.sync(() => {
      const { dispatch, service } = make(sinks)
      return Layer.mergeAll(Layer.succeed(RunEvents, service), Logger.layer([logger(dispatch)]))
    }))

  /** Events are dropped. */
  static readonly layerNoop = Layer.succeed(
    RunEvents,
    RunEvents.of({ emit: () => Effect.void, writeTo: () => Effect.void, subscribe: () => Effect.void })
  )
}

/** How many past events a new subscriber is replayed. */
export const recentEvents = 1000

const make = (sinks: ReadonlyArray<Sink>) => {
  let fd: number | undefined
  // A ring of the last `recentEvents` events: a run of 1000 agents emits thousands, each kept in O(1).
  const recent: Array<Stamped> = []
  let oldest = 0
  let file: string | undefined
  const all: Array<Sink> = [...sinks, (event) => {
    if (fd === undefined) return
    try {
      fs.writeSync(fd, JSON.stringify(event) + "\n")
    } catch (error) {
      // A sink must not throw: a full or failing disk stops the log, never the run nor its teardown (an event
      // that throws in a finalizer would skip the rest of it, and leave the resource's ledger record behind).
      const failed = fd
      fd = undefined
      try {
        fs.closeSync(failed)
      } catch {
        // already unusable
      }
      const reason = error instanceof Error ? error.message : String(error)
      dispatch({
        type: "log",
        level: "Warning",
        message: `${file}: ${reason}: no more events are written there`,
        at: Date.now()
      })
    }
  }, (event) => {
    if (recent.length < recentEvents) recent.push(event)
    else {
      recent[oldest] = event
      oldest = (oldest + 1) % recentEvents
    }
  }]
  const dispatch: Sink = (event) => {
    for (const sink of all) sink(event)
  }
  const service = RunEvents.of({
    emit: (event) => Effect.sync(() => dispatch({ ...event, at: Date.now() } as Stamped)),
    subscribe: (sink) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          for (let i = 0; i < recent.length; i++) sink(recent[(oldest + i) % recent.length]!)
          all.push(sink)
        }),
        () => Effect.sync(() => void all.splice(all.indexOf(sink), 1))
      ),
    writeTo: (dir) =>
      Effect.sync(() => {
        fs.mkdirSync(dir, { recursive: true })
        file = path.join(dir, "events.jsonl")
        // Private to the user (0600): agents' output lines may hold what others must not read.
        fd = fs.openSync(file, "a", 0o600)
      })
  })
  return { service, dispatch }
}

/** A logger that turns `Effect.log*` into `log` events, so scenario logs reach every sink. */
export const logger = (emit: Sink) =>
  Logger.make<unknown, void>(({ logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    emit({
      type: "log",
      level: logLevel,
      message: parts.map((m) => typeof m === "string" ? m : JSON.stringify(m)).join(" "),
      at: Date.now()
    })
  })
