/**
 * Whether a recorded process still runs. A pid alone does not say it: pids are reused, so a record names its
 * process by pid and start time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot), and the record is
 * stale when that pid is gone, a zombie, or another process now (the same pid with another start time).
 *
 * **Details**
 *
 * - Where the system has no `/proc`, the start time is empty and only the pid is checked (`kill(pid, 0)`; a
 *   process of another user counts as running).
 * - A record without a start time (written before records carried one) is checked by its pid alone.
 */
import * as fs from "node:fs"

/** A process's start time, or `undefined` when it is gone; empty when this system has no `/proc`. */
export const startTime = (pid: number): string | undefined => {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    if (fs.existsSync("/proc/self/stat")) return undefined
    try {
      process.kill(pid, 0)
      return ""
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === "EPERM" ? "" : undefined
    }
  }
  // The command name (field 2) may hold spaces and parentheses: the fields that follow come after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // fields[0] is the state (field 3): a zombie has exited.
  return fields[0] === "Z" ? undefined : fields[19]
}

/**
 * Whether process `pid` runs and, when `started` is given (not `undefined` nor empty), is the one that started
 * then, not another that reuses its pid.
 */
export const isLive = (pid: number, started?: string | undefined): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false
  const now = startTime(pid)
  return now !== undefined && (started === undefined || started === "" || now === "" || now === started)
}
