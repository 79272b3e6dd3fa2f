/**
 * Clock skew on agents, with libfaketime: a runner whose commands and daemons see the wall clock moved by a
 * libfaketime spec (`-10d`, `+2h`, `@2030-01-01 00:00:00`, …), on every backend, since it only adds variables to
 * what the agent's own runner starts (`LD_PRELOAD` of the library, `FAKETIME`).
 *
 * **Details**
 *
 * - The library is looked for on the agent itself (Debian's multiarch path, then `/usr/lib` and `/usr/local/lib`)
 *   the first time a spec is set, with a command of the agent's runner; where it is missing, setting a spec fails
 *   naming the package to install (`libfaketime`). Without a spec nothing is preloaded.
 * - A spec applies to the commands and daemons started after it is set; a running process keeps the clock it
 *   started with.
 * - Only the wall clock moves (`FAKETIME_DONT_FAKE_MONOTONIC=1`: timers and timeouts are unchanged), and child
 *   processes share their parent's clock instead of starting an absolute spec again (`FAKETIME_DONT_RESET=1`).
 */
import { Effect } from "effect"
import * as CloudError from "./CloudError.ts"
import type { Runner } from "./Runner.ts"

/** libfaketime's specs: an offset (`-10d`, `+2.5h`), a start date (`@2030-01-01 00:00:00`) or a frozen one, each
 * with an optional rate (` x2`) or step (` i1`). */
const specPattern = /^(?:[+-]\d+(?:\.\d+)?[smhdy]?|@?\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?: [xi][+-]?\d+(?:\.\d+)?)?$/

/** Why `spec` is not a libfaketime spec, or `undefined` when it is one. */
export const specError = (spec: string): string | undefined =>
  specPattern.test(spec)
    ? undefined
    : `"${spec}" is not a libfaketime spec: give an offset such as -10d, +2h or -30m, or a start date such as ` +
      `"@2030-01-01 00:00:00"`

/** Prints the path of libfaketime on the agent, or exits 1. */
export const probe = [
  "for f in /usr/lib/*-linux-gnu*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1",
  "/usr/local/lib/faketime/libfaketime.so.1; do [ -f \"$f\" ] && { echo \"$f\"; exit 0; }; done; exit 1"
].join(" ")

/** What to do where the library is missing. */
export const missingFix =
  "libfaketime is not installed on the agent: install the Debian package libfaketime there (in its image for " +
  "Docker agents; the project's base image has it)"

/** The variables a command gets under `spec`, with the library at `library`. */
export const environment = (library: string, spec: string): Record<string, string> => ({
  LD_PRELOAD: library,
  FAKETIME: spec,
  FAKETIME_DONT_FAKE_MONOTONIC: "1",
  FAKETIME_DONT_RESET: "1"
})

export interface Skewed {
  /** The agent's runner, with the current spec's variables under each command's own. */
  readonly runner: Runner
  /** Sets the spec of the commands and daemons started from now on (`undefined`: the real clock again). */
  readonly set: (spec: string | undefined) => Effect.Effect<void, CloudError.CloudError>
  /** The current spec. */
  readonly current: Effect.Effect<string | undefined>
}

/** `runner` (agent `agent`'s) with a settable clock skew, none at first. */
export const make = (agent: string, runner: Runner): Skewed => {
  let current: { readonly spec: string; readonly env: Record<string, string> } | undefined
  let library: string | undefined
  const locate = Effect.suspend(() =>
    library !== undefined
      ? Effect.succeed(library)
      : runner.exec("/bin/sh", ["-c", probe]).pipe(
        Effect.flatMap((result) => {
          const found = result.stdout.trim()
          if (result.exitCode !== 0 || found === "") {
            return Effect.fail(CloudError.command(agent, "faketime", missingFix))
          }
          library = found
          return Effect.succeed(found)
        })
      )
  )
  const set = Effect.fn("Faketime.set")(function*(spec: string | undefined) {
    if (spec === undefined) {
      current = undefined
      return
    }
    const invalid = specError(spec)
    if (invalid !== undefined) return yield* CloudError.command(agent, "faketime", invalid)
    const found = yield* locate
    current = { spec, env: environment(found, spec) }
  })
  const withSkew = <O extends { readonly env?: Record<string, string> | undefined }>(options: O | undefined) =>
    current === undefined ? options : { ...options, env: { ...current.env, ...options?.env } }
  return {
    runner: {
      exec: (command, args, options) => Effect.suspend(() => runner.exec(command, args, withSkew(options))),
      spawn: (name, command, args, options) =>
        Effect.suspend(() => runner.spawn(name, command, args, withSkew(options))),
      copy: (source, options) => runner.copy(source, options)
    },
    set,
    current: Effect.sync(() => current?.spec)
  }
}
