/**
 * The CLOUD group: maintenance jobs that deploy nothing. `clean up` and `prometheus import` are built here, because
 * they drive every backend and the monitoring parts; the backends contribute their own jobs (`CLOUD docker …`).
 * What the built-in jobs do is in `cloudJobs.ts`, loaded when one of them runs.
 */
import { Scenario } from "@tezt-cloud/core"
import { Effect } from "effect"

/** The group's name: the commands that may run one of its jobs are the only ones loading the backends' jobs. */
export const name = "CLOUD"

const bodies = Effect.promise(() => import("./cloudJobs.ts"))

/** `CLOUD clean up`: what killed runs of the namespace left, removed (`cloudJobs.cleanUp`). */
export const cleanUp = (stateDir: string) =>
  Scenario.make({
    title: "Clean up what killed runs of the namespace left",
    tags: ["clean", "up"],
    exclusive: true,
    run: Effect.flatMap(bodies, (j) => j.cleanUp(stateDir))
  })

/** `CLOUD prometheus import`: Prometheus snapshots served until "stop" (`cloudJobs.prometheusImport`). */
export const prometheusImport = (stateDir: string) =>
  Scenario.make({
    title: "Import snapshots into prometheus",
    tags: ["prometheus", "import"],
    run: Effect.flatMap(bodies, (j) => j.prometheusImport(stateDir))
  })

/** The group, with the jobs the backends contribute (`Backends.jobs`) after the built-in ones. */
export const group = (stateDir: string, jobs: ReadonlyArray<Scenario.Scenario>) =>
  Scenario.group(name, "Maintenance jobs: clean up, prometheus import, docker base|build|push|registry, …", [
    cleanUp(stateDir),
    prometheusImport(stateDir),
    ...jobs
  ])
