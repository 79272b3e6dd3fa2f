/**
 * How the CLI process ends. Signals are ours, not the runtime's: the first SIGINT, SIGTERM or SIGHUP (Ctrl+C,
 * `kill`, a closed terminal, a lost ssh session) interrupts the command, which tears everything down gracefully
 * and exits 130; a second one runs the backends' last resort on the runs in progress, bounded in time, and ends at
 * once. A standard output that closes under the run (`tezt-cloud … | head -1`) stops it like a first signal,
 * and never crashes it. The exit code is a value the supervised command ends with, not a global.
 *
 * **Details**
 *
 * Signals and output errors are queued as they come, from the moment the layer is built: one arriving while the
 * CLI is still loading stops the command as soon as it starts. A closed output never counts towards the second
 * signal (`decide`). The runs in progress are the namespaces `track`ed by the scopes of the runs: what the last resort acts on.
 */
import { Console, Context, Duration, Effect, type Exit, Fiber, Layer, Option, Queue, type Scope } from "effect"

/** What a last resort did for one namespace: processes killed, and what it saw still there after. */
export interface LastResort {
  readonly killed: number
  readonly left: number
}

/** A request to stop the command. */
export type Stop =
  | { readonly _tag: "Signal"; readonly signal: NodeJS.Signals }
  | { readonly _tag: "OutputClosed"; readonly code: string }

/** How a supervised command ended. */
export type Ending<E> =
  | {
    readonly _tag: "Ended"
    readonly exit: Exit.Exit<void, E>
    /** The code the command said it succeeded with (`exitWith`), if any. */
    readonly code: number | undefined
    /** Why it was stopped early, if it was. */
    readonly stop: Stop | undefined
  }
  | {
    readonly _tag: "Forced"
    /** The namespaces the last resort acted on. */
    readonly namespaces: ReadonlyArray<string>
    /** What it did, summed; `None` when it did not complete (failed, or not within its bound). */
    readonly result: Option.Option<LastResort>
  }

export class Shutdown extends Context.Service<Shutdown, {
  /** Marks `namespace` as having a run in progress, for the life of the current scope. */
  track(namespace: string): Effect.Effect<void, never, Scope.Scope>
  /** The code the command exits with when it succeeds (`agents exec`: the worst agent's). */
  exitWith(code: number): Effect.Effect<void>
  /** The first request to stop, once there was one (a `--proxy` run detaches unless it was Ctrl+C). */
  readonly stopped: Effect.Effect<Stop | undefined>
  /**
   * Runs `command` until it ends, or until a second signal: then the last resort runs and this returns without
   * waiting for the command's teardown.
   */
  supervise<E, R>(command: Effect.Effect<void, E, R>): Effect.Effect<Ending<E>, never, R>
}>()("@tezt-cloud/cli/Shutdown") {}

export interface Options {
  /** What a second signal does for each namespace with a run in progress (the backends' last resort). */
  readonly lastResort: (namespace: string) => Effect.Effect<LastResort>
  /** How long the last resort may take, for all namespaces together. */
  readonly bound?: Duration.Input | undefined
  /** The signals that mean "stop"; SIGINT, SIGTERM and SIGHUP by default. */
  readonly signals?: ReadonlyArray<NodeJS.Signals> | undefined
  /** Where the run's output goes: its failing (EPIPE, EIO) means "stop". `process.stdout` by default. */
  readonly output?: NodeJS.EventEmitter | undefined
  /** Streams whose errors are only ignored, so that they never crash the process. `process.stderr` by default. */
  readonly quiet?: ReadonlyArray<NodeJS.EventEmitter> | undefined
}

/** Where the requests to stop have led so far. */
export interface State {
  /** Signals received (a closed output is not one). */
  readonly signals: number
  readonly stopping: boolean
}

export const initial: State = { signals: 0, stopping: false }

/**
 * What a request to stop does: the first request interrupts the command, the second signal forces, anything else
 * changes nothing. A closed output is never a second signal: a closed terminal both raises SIGHUP and fails the
 * writes to it, and that is one request to stop, not two.
 */
export const decide = (
  state: State,
  stop: Stop
): { readonly state: State; readonly action: "interrupt" | "force" | "none" } => {
  const signals = state.signals + (stop._tag === "Signal" ? 1 : 0)
  const action = signals >= 2 ? "force" : state.stopping ? "none" : "interrupt"
  return { state: { signals, stopping: true }, action }
}

/** What the user is told when the first request to stop arrives. */
export const announce = (stop: Stop): string =>
  stop._tag === "OutputClosed"
    ? `tezt-cloud: the standard output is closed (${stop.code}): tearing down`
    : `\ntezt-cloud: interrupted (${stop.signal}): tearing down (press Ctrl+C again to force)`

/** What a signal does once the layer is released: nothing (the process is exiting). */
const ignoreLate = () => {}

/**
 * The code a command that succeeded exits with: its own (`exitWith`), else 0; 130 when a signal asked it to stop
 * (its teardown completed, but the user was told "interrupted" and the run did not end on its own).
 */
export const successCode = (ending: { readonly code: number | undefined; readonly stop: Stop | undefined }): number =>
  ending.stop?._tag === "Signal" ? 130 : ending.code ?? 0

/** The process' signals and output, listened to for the layer's life. */
export const layer = (options: Options) =>
  Layer.effect(
    Shutdown,
    Effect.gen(function*() {
      const stops = yield* Queue.unbounded<Stop>()
      const running = new Map<string, number>()
      let code: number | undefined
      let firstStop: Stop | undefined
      const signals = options.signals ?? ["SIGINT", "SIGTERM", "SIGHUP"]
      const output = options.output ?? process.stdout
      const quiet = options.quiet ?? [process.stderr]
      const onSignal = (signal: NodeJS.Signals) => void Queue.offerUnsafe(stops, { _tag: "Signal", signal })
      const onOutputError = (error: NodeJS.ErrnoException) =>
        void Queue.offerUnsafe(stops, { _tag: "OutputClosed", code: error.code ?? error.message })
      const ignore = () => {}
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          for (const signal of signals) process.on(signal, onSignal)
          output.on("error", onOutputError)
          for (const stream of quiet) stream.on("error", ignore)
        }),
        () =>
          Effect.sync(() => {
            // The process exits right after the layer: a signal in between must not kill it with the default
            // action (dying of SIGINT after a complete teardown, before the exit code is set). One shared
            // listener, added once, ignores such late signals.
            for (const signal of signals) {
              if (!process.listeners(signal).includes(ignoreLate)) process.on(signal, ignoreLate)
              process.off(signal, onSignal)
            }
            // A write still pending may fail while the process exits: it must not crash it then either.
            output.off("error", onOutputError)
            output.on("error", ignore)
          })
      )

      const lastResort = (namespaces: ReadonlyArray<string>) =>
        Effect.forEach(namespaces, options.lastResort, { concurrency: "unbounded" }).pipe(
          Effect.map((results) =>
            results.reduce((a, b) => ({ killed: a.killed + b.killed, left: a.left + b.left }), { killed: 0, left: 0 })
          ),
          Effect.timeoutOption(options.bound ?? Duration.seconds(5)),
          // Whatever goes wrong in it, the forced exit still happens.
          Effect.catchCause(() => Effect.succeedNone)
        )

      /** Waits for requests to stop: the first interrupts `fiber`, a second signal forces. */
      const watch = (fiber: Fiber.Fiber<void, unknown>, first: (stop: Stop) => void) =>
        Effect.gen(function*() {
          let state = initial
          while (true) {
            const stop = yield* Queue.take(stops)
            const next = decide(state, stop)
            state = next.state
            if (next.action === "force") break
            if (next.action === "none") continue
            first(stop)
            yield* Console.error(announce(stop))
            fiber.interruptUnsafe()
          }
          const namespaces = [...running.keys()]
          const result = yield* lastResort(namespaces)
          return { _tag: "Forced", namespaces, result } as const
        })

      return Shutdown.of({
        track: (namespace) =>
          Effect.acquireRelease(
            Effect.sync(() => void running.set(namespace, (running.get(namespace) ?? 0) + 1)),
            () =>
              Effect.sync(() => {
                const count = running.get(namespace) ?? 0
                if (count <= 1) running.delete(namespace)
                else running.set(namespace, count - 1)
              })
          ),
        exitWith: (exitCode) => Effect.sync(() => void (code = exitCode)),
        stopped: Effect.sync(() => firstStop),
        supervise: <E, R>(command: Effect.Effect<void, E, R>) =>
          Effect.gen(function*() {
            // Detached: after a second signal this returns without waiting for the command's teardown.
            const fiber = yield* Effect.forkDetach(command)
            const ended = Fiber.await(fiber).pipe(
              Effect.map((exit): Ending<E> => ({ _tag: "Ended", exit, code, stop: firstStop }))
            )
            return yield* Effect.raceFirst(ended, watch(fiber, (stop) => void (firstStop = stop)))
          })
      })
    })
  )
