/**
 * Finding and killing processes by the marker variables every agent process carries in its environment
 * (`TEZT_CLOUD_NS`, `TEZT_CLOUD_AGENT`, `TEZT_CLOUD_EXEC`). A marker survives `setsid`, double forks and the
 * death of the orchestrator, so this finds a whole tree even when process groups do not.
 *
 * Linux only: it reads `/proc/<pid>/environ` (our own processes: same user, or root).
 */
import { Effect } from "effect"
import * as fs from "node:fs"

/**
 * One pass over /proc: for each `KEY=VALUE` needle, the pids of live (not zombie) processes, other than this
 * one, whose environment has it exactly.
 */
const scan = (needles: Iterable<string>): Map<string, Array<number>> => {
  const found = new Map<string, Array<number>>()
  for (const needle of needles) found.set(needle, [])
  let entries: Array<string> = []
  try {
    entries = fs.readdirSync("/proc")
  } catch {
    // no /proc: nothing is found
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (pid === process.pid) continue
    let environ: string
    try {
      environ = fs.readFileSync(`/proc/${entry}/environ`, "latin1")
    } catch {
      continue // gone meanwhile, or not ours
    }
    let zombie: boolean | undefined
    for (const variable of environ.split("\0")) {
      const pids = found.get(variable)
      if (pids === undefined) continue
      zombie ??= isZombie(entry)
      if (!zombie) pids.push(pid)
    }
  }
  return found
}

/** Pids of live processes whose environment has `key=value` exactly. */
export const findMarked = (key: string, value: string): Array<number> => {
  const needle = `${key}=${value}`
  return scan([needle]).get(needle)!
}

/** Finds the pids of live processes whose environment has `key=value` exactly (see `makeFinder`). */
export type Find = (key: string, value: string) => Effect.Effect<Array<number>>

/**
 * A `Find` whose requests made in the same turn of the event loop are answered by one pass over /proc: 1000
 * commands ending together (or 32 agents torn down together) cost one scan of /proc, not one each. Each finder
 * keeps its own waiting requests: a backend's layer (or a reattach, or a clean-up) makes one and shares it.
 */
export const makeFinder = (): Find => {
  /** `key=value` markers waiting for the next pass over /proc, with who waits for each. */
  const waiting = new Map<string, Array<(pids: Array<number>) => void>>()
  let scanScheduled = false

  /** One pass over /proc that answers every waiting request. */
  const scanWaiting = () => {
    scanScheduled = false
    const requests = new Map(waiting)
    waiting.clear()
    const found = scan(requests.keys())
    for (const [needle, resumes] of requests) {
      for (const resume of resumes) resume([...found.get(needle)!])
    }
  }

  return (key, value) =>
    Effect.callback<Array<number>>((resume) => {
      const needle = `${key}=${value}`
      const answer = (pids: Array<number>) => resume(Effect.succeed(pids))
      const resumes = waiting.get(needle) ?? []
      resumes.push(answer)
      waiting.set(needle, resumes)
      if (!scanScheduled) {
        scanScheduled = true
        setImmediate(scanWaiting)
      }
      return Effect.sync(() => {
        const left = (waiting.get(needle) ?? []).filter((r) => r !== answer)
        if (left.length === 0) waiting.delete(needle)
        else waiting.set(needle, left)
      })
    })
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

/** Sends `sig` to each of `pids` and to the process groups they lead. */
export const signalAll = (pids: ReadonlyArray<number>, sig: NodeJS.Signals): void => {
  for (const pid of pids) {
    signal(-pid, sig)
    signal(pid, sig)
  }
}

/** Sends `sig` to every marked process and to the process groups it leads. */
export const signalMarked = (key: string, value: string, sig: NodeJS.Signals): number => {
  const pids = findMarked(key, value)
  signalAll(pids, sig)
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
