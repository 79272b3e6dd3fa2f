/**
 * Finding and killing processes by the marker variables every agent process carries in its environment
 * (`TEZT_CLOUD_NS`, `TEZT_CLOUD_AGENT`, `TEZT_CLOUD_EXEC`). A marker survives `setsid`, double forks and the
 * death of the orchestrator, so this finds a whole tree even when process groups do not.
 *
 * Linux only: it reads `/proc/<pid>/environ` (our own processes: same user, or root).
 */
import * as fs from "node:fs"

/** Pids of live processes whose environment has `key=value` exactly. */
export const findMarked = (key: string, value: string): Array<number> => {
  const needle = `${key}=${value}`
  const found: Array<number> = []
  let entries: Array<string>
  try {
    entries = fs.readdirSync("/proc")
  } catch {
    return found
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (pid === process.pid) continue
    try {
      const environ = fs.readFileSync(`/proc/${entry}/environ`, "latin1")
      if (environ.split("\0").includes(needle) && !isZombie(entry)) found.push(pid)
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return found
}

const isZombie = (pid: string): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1")
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")
  } catch {
    return true
  }
}

const signal = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

/** Sends `sig` to every marked process and to the process groups it leads. */
export const signalMarked = (key: string, value: string, sig: NodeJS.Signals): number => {
  const pids = findMarked(key, value)
  for (const pid of pids) {
    signal(-pid, sig)
    signal(pid, sig)
  }
  return pids.length
}

/**
 * Kills every marked process: SIGTERM, then SIGKILL for those still there after `graceMillis`. Returns how many
 * were found. Synchronous on purpose: it also runs from a signal handler, as the last thing before exit.
 */
export const killMarkedSync = (key: string, value: string, graceMillis: number): number => {
  const found = signalMarked(key, value, "SIGTERM")
  if (found === 0) return 0
  const deadline = Date.now() + graceMillis
  while (Date.now() < deadline && findMarked(key, value).length > 0) sleepSync(20)
  signalMarked(key, value, "SIGKILL")
  const killDeadline = Date.now() + 1000
  while (Date.now() < killDeadline && findMarked(key, value).length > 0) sleepSync(10)
  return found
}

const sleeper = new Int32Array(new SharedArrayBuffer(4))
const sleepSync = (millis: number) => Atomics.wait(sleeper, 0, 0, millis)
