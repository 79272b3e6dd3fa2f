/**
 * How much one orchestrator does at once, whatever the number of agents: one run drives 1000 agents without
 * running out of file descriptors (where Tezt cloud is known to stop, past ~100 VMs) or memory. Backends
 * read these bounds when their layer is built and share them between all the agents of a run.
 *
 * **Details**
 *
 * - `deploys`: agents being created at once.
 * - `teardowns`: agents being torn down at once (`Teardown.pool`); each agent's failure is reported as its own
 *   teardown step and holds only itself.
 * - `commands`: commands (`exec`) running at once per backend instance, each holding a local process and its
 *   pipes (or a channel): past it, commands wait for a slot. Daemons (`spawn`) hold no pipe and do not count.
 *
 * **Gotchas**
 *
 * Commands that wait for each other (a server `exec`ed on one agent, its clients on others) must stay under
 * `commands` together, or they wait forever: start servers with `spawn`.
 */
import { Context } from "effect"

export interface Limits {
  readonly deploys: number
  readonly teardowns: number
  readonly commands: number
}

/** The defaults: about 260 descriptors for command pipes at most, far under the usual `ulimit -n` of 1024. */
export const defaults: Limits = { deploys: 32, teardowns: 32, commands: 128 }

/** The run's limits; a test or a benchmark provides other values. */
export const Limits = Context.Reference<Limits>("@tezt-cloud/core/Limits", { defaultValue: () => defaults })
