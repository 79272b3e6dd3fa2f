/**
 * Daemons the stack runs on agents (netdata, the process exporter): the Debian binary looked up on the agent
 * first, so a missing one is a clear error naming the option to drop, and readiness polled over HTTP from this
 * machine, bounded, stopping early when the daemon dies.
 */
import { type Agent, CloudError } from "@tezt-cloud/core"
import { Effect, Schedule } from "effect"
import * as Http from "./http.ts"

/** The path of `binary` on the agent (its `PATH`, then the sbin directories), or a `ServiceFailed`. */
export const locate = (service: string, agent: Agent.Agent, binary: string, option: string) =>
  agent.exec("sh", [
    "-c",
    "command -v \"$1\" && exit 0; for d in /usr/local/sbin /usr/sbin /sbin; do [ -x \"$d/$1\" ] && echo \"$d/$1\" && exit 0; done; exit 1",
    "sh",
    binary
  ]).pipe(
    Effect.flatMap((r) =>
      r.exitCode === 0 && r.stdout.trim() !== ""
        ? Effect.succeed(r.stdout.trim().split("\n")[0]!)
        : Effect.fail(
          CloudError.service(
            service,
            `${binary} is not installed on agent ${agent.name} (Debian package ${binary}): install it or drop ${option}`
          )
        )
    )
  )

/** Polls `url` until it answers 200 (every 100 ms, at most `attempts` times), failing early if `isRunning` is false. */
export const waitReady = (
  service: string,
  agent: Agent.Agent,
  url: string,
  isRunning: Effect.Effect<boolean>,
  logFile: string,
  attempts = 300
) =>
  Effect.gen(function*() {
    if (!(yield* isRunning)) return yield* Effect.fail(true as const)
    const response = yield* Http.request(service, url)
    if (response.status !== 200) return yield* Effect.fail(false as const)
  }).pipe(
    Effect.catchTag("CloudError", () => Effect.fail(false as const)),
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: attempts, while: (dead) => !dead }),
    Effect.mapError((dead) =>
      CloudError.service(
        service,
        `${dead ? "exited" : `not ready after ${attempts / 10} s`} on agent ${agent.name} (log: ${logFile})`
      )
    )
  )
