/**
 * The CLOUD group: maintenance jobs that deploy nothing (reference §3.4). Built here, not in `scenarios/`,
 * because they drive the backends directly.
 */
import { Cloud, Ledger, Scenario } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as Backends from "../Backends.ts"

/** `CLOUD clean up`: kills the processes and removes the sandboxes a killed run of the namespace left. */
export const cleanUp = (stateDir: string) =>
  Scenario.make({
    title: "Clean up what killed runs of the namespace left",
    tags: ["clean", "up"],
    run: Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      const removed = yield* Backends.cleanUp(stateDir, cloud.config).pipe(
        Effect.provide(Ledger.Ledger.layer(stateDir, cloud.namespace))
      )
      yield* Effect.logInfo(
        `clean up of ${cloud.namespace}: ${removed.processes} process${removed.processes === 1 ? "" : "es"} killed, ` +
          `${removed.sandboxes.length} sandbox${removed.sandboxes.length === 1 ? "" : "es"} removed`
      )
      for (const dir of removed.sandboxes) yield* Effect.logInfo(`removed ${dir}`)
      for (const dir of removed.hosts) yield* Effect.logInfo(`removed ${dir} and its processes`)
    })
  })

export const group = (stateDir: string) => Scenario.group("CLOUD", "Maintenance jobs: clean up, …", [cleanUp(stateDir)])
