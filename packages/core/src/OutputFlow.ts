/**
 * The output of a command that arrives as callbacks (chunks of stdout and stderr, from a channel or an executor),
 * made into what `Runner.exec` gives: lines to an effectful `onLine`, in order, with flow control, and the tail of
 * each stream kept for the result.
 *
 * **Details**
 *
 * Lines wait in a queue for `onLine`; past `high` lines or `highChars` characters the source is paused
 * (backpressure up to the command), below `low` lines and `lowChars` it reads on. Memory stays bounded whatever
 * the command prints, in many short lines or in a few long ones (up to 1 MiB each).
 */
import { Effect, Fiber } from "effect"
import * as OutputLines from "./OutputLines.ts"
import * as OutputTail from "./OutputTail.ts"
import type * as Runner from "./Runner.ts"

/** How a source is paused and resumed. */
export interface Flow {
  readonly pause: () => void
  readonly resume: () => void
}

/** The callbacks a source calls. */
export interface Handlers {
  readonly onPid: (pid: number) => void
  readonly onStdout: (chunk: Buffer) => void
  readonly onStderr: (chunk: Buffer) => void
  readonly onFlow: (flow: Flow) => void
}

export interface OutputFlow {
  readonly handlers: Handlers
  /**
   * Runs `source` (which calls `handlers`) while its lines go to `onLine` (in a fiber started by the first line);
   * ends once both are done.
   */
  readonly run: <A, E, R>(source: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly stdout: () => string
  readonly stderr: () => string
  /** The pid the source gave (`onPid`), 0 until then. */
  readonly pid: () => number
}

const high = 4096
const low = 256
const highChars = 16 * 1024 * 1024
const lowChars = 1024 * 1024

export const make = (options: {
  readonly maxOutputBytes: number
  readonly onLine: (line: Runner.OutputLine) => Effect.Effect<void>
}): OutputFlow => {
  const out = OutputTail.make(options.maxOutputBytes)
  const err = OutputTail.make(options.maxOutputBytes)
  const queue: Array<Runner.OutputLine> = []
  let queuedChars = 0
  let pid = 0
  let flow: Flow | undefined
  let paused = false
  let finished = false
  let wake: (() => void) | undefined
  // The consumer is started by the first line: a command that prints nothing costs no fiber for it.
  let startConsumer: (() => void) | undefined
  let consumer: Fiber.Fiber<void> | undefined
  let consumerFailed = false
  const push = (stream: "stdout" | "stderr") => (line: string) => {
    queue.push({ stream, line })
    queuedChars += line.length
    if ((queue.length >= high || queuedChars >= highChars) && !paused && !consumerFailed && flow) {
      paused = true
      flow.pause()
    }
    if (consumer === undefined) startConsumer?.()
    else wake?.()
  }
  const stdoutLines = OutputLines.splitter(push("stdout"))
  const stderrLines = OutputLines.splitter(push("stderr"))
  const consume = Effect.gen(function*() {
    while (true) {
      if (queue.length === 0) {
        if (finished) return
        yield* Effect.callback<void>((resume) => {
          wake = () => {
            wake = undefined
            resume(Effect.void)
          }
          return Effect.sync(() => {
            wake = undefined
          })
        })
        continue
      }
      const taken = queue.splice(0, queue.length)
      queuedChars = 0
      for (const item of taken) yield* options.onLine(item)
      if (paused && queue.length < low && queuedChars < lowChars) {
        paused = false
        flow?.resume()
      }
    }
  })
  return {
    handlers: {
      onPid: (p) => (pid = p),
      onStdout: (chunk) => {
        out.push(chunk)
        stdoutLines(chunk)
      },
      onStderr: (chunk) => {
        err.push(chunk)
        stderrLines(chunk)
      },
      onFlow: (f) => (flow = f)
    },
    run: (source) =>
      Effect.withFiber((parent) => {
        startConsumer = () => {
          const fiber = Effect.runForkWith(parent.context)(consume)
          consumer = fiber
          fiber.addObserver((exit) => {
            if (exit._tag === "Success") return
            // It died (`onLine` did): the source must not stay paused for it; its failure is `run`'s once the
            // source has ended.
            consumerFailed = true
            if (paused) {
              paused = false
              flow?.resume()
            }
          })
        }
        if (queue.length > 0) startConsumer()
        return source.pipe(
          Effect.ensuring(Effect.sync(() => {
            stdoutLines.end()
            stderrLines.end()
            finished = true
            wake?.()
          })),
          Effect.flatMap((a) => consumer === undefined ? Effect.succeed(a) : Effect.as(Fiber.join(consumer), a)),
          Effect.onExit((exit) =>
            exit._tag === "Failure" && consumer !== undefined ? Fiber.interrupt(consumer) : Effect.void
          )
        )
      }),
    stdout: () => out.text(),
    stderr: () => err.text(),
    pid: () => pid
  }
}
