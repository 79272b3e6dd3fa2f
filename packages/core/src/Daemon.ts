/**
 * A long-running process started on an agent (`Agent.spawn`). It lives in the scope it was spawned in: when that
 * scope closes (end of the run, failure, Ctrl+C) its whole process tree is killed.
 */
import type { Effect } from "effect"
import type * as CloudError from "./CloudError.ts"

export interface Daemon {
  readonly name: string
  readonly agent: string
  /** The pid on the agent (the process-group leader). */
  readonly pid: number
  /** Where its stdout and stderr go, on the agent. */
  readonly logFile: string
  readonly isRunning: Effect.Effect<boolean>
  /** Kills its process tree now (idempotent); the scope would do it anyway at the end. */
  readonly stop: Effect.Effect<void, CloudError.CloudError>
}
