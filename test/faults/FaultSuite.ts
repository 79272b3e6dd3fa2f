/**
 * The fault suite's harness, shared by its files (one per backend: `process.test.ts`, `ssh-host.test.ts`,
 * `docker.test.ts`, `gcp.test.ts`, so that `npm test` balances them over its lanes): the seed and the replay
 * variables, each backend's plans, the runs at most `TEZT_CLOUD_FAULT_CONCURRENCY` at a time, the check that none
 * leaked or hung, and the table printed at the end.
 *
 * Files of different lanes run at the same time: each backend has a port block of its own inside 10000-19999
 * (`portBlocks`), its own namespaces (`fault-<backend>-…`), and each file its own temporary directory (the test
 * setup's `$TMPDIR`), ssh key and hosts.
 *
 * **Replay**
 *
 * The seed is printed first; `TEZT_CLOUD_FAULT_SEED=<seed>` replays the same plans, and
 * `TEZT_CLOUD_FAULT_ONLY="<backend>/<fault>/<index>"` (as a failure names it) runs one of them alone (ending with
 * `/`, it is a prefix: `ssh-host/` runs the ssh host's plans only; the other files then run nothing).
 * `TEZT_CLOUD_FAULTS` is the number of faults per backend (100 by default), `TEZT_CLOUD_FAULT_SPECIALS` the
 * number of each special fault among them (4; the signals take the rest), `TEZT_CLOUD_FAULT_CONCURRENCY` the runs
 * at once of each file (6 unless the file says otherwise), and `TEZT_CLOUD_FAULT_TABLE=<file>` also appends each
 * file's table there.
 */
import { assert } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as SshHosts from "../fixtures/SshHosts.ts"
import * as FaultPlan from "./FaultPlan.ts"
import * as FaultRun from "./FaultRun.ts"
import * as FaultTable from "./FaultTable.ts"
import * as Leftovers from "./Leftovers.ts"

const count = (variable: string, fallback: number) => {
  const value = process.env[variable]
  if (value === undefined || value === "") return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${variable}=${value}: give a non-negative integer`)
  return n
}

export const seed = FaultPlan.suiteSeed()
const only = process.env.TEZT_CLOUD_FAULT_ONLY

/** How a failure names a run, for `TEZT_CLOUD_FAULT_ONLY`. */
export const id = (plan: FaultPlan.Plan) => `${plan.backend}/${plan.fault}/${plan.index}`

/** A test's overall limit: a safety net, far above what a file takes. */
export const timeout = 1_800_000

/**
 * Each backend's block of ports (2000 from `first`): the block is cut in ranges of 16 (2 agents × 8 ports), one per
 * run, below Linux's ephemeral range (32768 and up), where no other test listens. 18000-19999 is the proxy's.
 */
const portBlocks: Record<FaultPlan.Backend, number> = {
  process: 10_000,
  "ssh-host": 12_000,
  docker: 14_000,
  gcp: 16_000,
  proxy: 18_000
}
const portRange = 16
const portRanges = 2000 / portRange

/** What every run's environment has: Node's compile cache, so that each CLI start costs less CPU. */
export const common = { NODE_COMPILE_CACHE: path.join(os.tmpdir(), "tezt-cloud-fault-compile-cache") }

/** A backend's run target: the host's state of its own, its flags and environment, and what to do after it. */
export interface Backend {
  readonly target: (
    plan: FaultPlan.Plan
  ) => Promise<{ readonly target: FaultRun.Target; readonly done: () => Promise<void> }>
}

export const nothing = async () => {}

/** Runs `task`s at most `n` at a time; a task that ends hands its slot to the next one waiting. */
const limiter = (n: number) => {
  const state = { active: 0 }
  const waiting: Array<() => void> = []
  const acquire = () => {
    if (state.active < n) {
      state.active += 1
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => waiting.push(resolve))
  }
  const release = () => {
    const next = waiting.shift()
    if (next === undefined) state.active -= 1
    else next()
  }
  return async <A>(task: () => Promise<A>): Promise<A> => {
    await acquire()
    try {
      return await task()
    } finally {
      release()
    }
  }
}

/** One backend's fault suite: its plans, its runs, its table. */
export const make = (
  backend: FaultPlan.Backend,
  options: {
    readonly concurrency?: number
    /** The file's own default for `TEZT_CLOUD_FAULTS` (100), for a backend whose runs cost far more. */
    readonly faults?: number
    /** The file's own default for `TEZT_CLOUD_FAULT_SPECIALS` (4). */
    readonly specials?: number
  } = {}
) => {
  const concurrency = Math.max(1, count("TEZT_CLOUD_FAULT_CONCURRENCY", options.concurrency ?? 6))
  // The faults of this backend: 100 unless the file asks for fewer; `TEZT_CLOUD_FAULTS` for every file.
  const faults = count("TEZT_CLOUD_FAULTS", options.faults ?? 100)
  const specialRuns = count("TEZT_CLOUD_FAULT_SPECIALS", options.specials ?? 4)
  console.log(`fault suite (${backend}): seed ${seed} (replay with TEZT_CLOUD_FAULT_SEED=${seed})`)
  const limit = limiter(concurrency)
  const outcomes: Array<FaultRun.Outcome> = []
  const started = Date.now()

  // A range where something listens already (left by an earlier suite's failure) is skipped: a run is charged
  // with its own only.
  const slot = { next: 0 }
  const basePort = () => {
    for (let tries = 0; tries < portRanges; tries++) {
      const base = portBlocks[backend] + (slot.next++ % portRanges) * portRange
      if (Leftovers.listeningPorts(base, base + portRange).length === 0) return base
    }
    throw new Error(
      `every port range of ${backend}'s block ${portBlocks[backend]}-${portBlocks[backend] + 2000} is taken`
    )
  }

  /**
   * The backend's `faults` plans: `specialRuns` of each of its special faults (first: they last longer), then
   * the signal faults in turn.
   */
  const plans = (specials: ReadonlyArray<FaultPlan.Fault>) => {
    const special = specials.flatMap((fault) =>
      Array.from({ length: specialRuns }, (_, i) => FaultPlan.plan(seed, backend, fault, i))
    ).slice(0, faults)
    const signals = Array.from(
      { length: faults - special.length },
      (_, i) => FaultPlan.plan(seed, backend, FaultPlan.signalFaults[i % FaultPlan.signalFaults.length]!, i)
    )
    return [...special, ...signals].filter((p) =>
      only === undefined || (only.endsWith("/") ? id(p).startsWith(only) : id(p) === only)
    )
  }

  /**
   * Runs the plans, `concurrency` at a time, and checks that none leaked or hung. A run whose harness fails (its
   * count of what is left, say) fails the test once every run is over: none is left behind mid-way (a mounted
   * disk, a CLI still running).
   */
  const runAll = async (target: Backend, planned: ReadonlyArray<FaultPlan.Plan>) => {
    const settled = await Promise.allSettled(planned.map((plan) =>
      limit(async () => {
        const { done, target: where } = await target.target(plan)
        try {
          return await FaultRun.run(plan, where, { basePort: where.basePort ?? basePort(), tree: SshHosts.tree })
        } finally {
          await done()
        }
      })
    ))
    const ran = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : [])
    outcomes.push(...ran)
    const broken = settled.flatMap((s, i) =>
      s.status === "rejected" ? [`${FaultPlan.describe(planned[i]!)}: the harness failed: ${String(s.reason)}`] : []
    )
    const failed = ran.filter((o) => o.leaked || o.hung).map((o) =>
      `${FaultPlan.describe(o.plan)}: ${o.outcome}${o.leaked ? `, left ${Leftovers.describe(o.left)}` : ""}` +
      ` [replay: TEZT_CLOUD_FAULT_SEED=${seed} TEZT_CLOUD_FAULT_ONLY="${id(o.plan)}"; namespace ${o.namespace}]` +
      `\n${o.log}`
    )
    assert.deepStrictEqual([...broken, ...failed], [], `${failed.length} of ${ran.length} runs leaked or hung`)
  }

  /** Prints the table of the runs (and appends it to `$TEZT_CLOUD_FAULT_TABLE`): for the file's `afterAll`. */
  const report = () => {
    if (outcomes.length === 0) return
    const table = FaultTable.render(outcomes)
    const seconds = ((Date.now() - started) / 1000).toFixed(0)
    console.log(
      `\nfault suite (${backend}): seed ${seed}, ${outcomes.length} runs in ${seconds} s, ${concurrency} at once\n` +
        table
    )
    const file = process.env.TEZT_CLOUD_FAULT_TABLE
    if (file !== undefined && file !== "") fs.appendFileSync(file, table + "\n")
  }

  return { concurrency, faults, outcomes, plans, runAll, report }
}
