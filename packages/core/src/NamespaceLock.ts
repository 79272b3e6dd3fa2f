/**
 * One live run per namespace. A run that deploys, and `CLOUD clean up`, hold the namespace's lock for their
 * scope; a second one is refused with one line naming the live holder's pid, so it can never tear down, or clean
 * up, what the first one still uses (its agents, control socket and deployment record).
 *
 * **Details**
 *
 * - File: `<state-dir>/<ns>/lock`, JSON naming the holder: pid, the process's start time (field 22 of
 *   `/proc/<pid>/stat`, in clock ticks since boot), what it runs and since when.
 * - Taken atomically: the holder's record is written whole to a temporary file and hard-linked to `lock`, which
 *   fails when `lock` exists (`AtomicFile.createAtomic`).
 * - Stale when its pid is gone, a zombie, or another process now (the same pid with another start time: pids are
 *   reused; `ProcessLiveness`), or when it is not a record at all. A stale lock is moved aside and removed, then taken again; if what
 *   was moved aside turns out to be a lock another process took meanwhile (not the stale one: another inode), it
 *   is put back. Two processes breaking the same stale lock at the same instant as a third takes it is the one
 *   race left.
 * - Released when the scope closes, only if the lock is still the holder's own. A `kill -9` leaves it; it is then
 *   stale, and the next run or clean up takes it over.
 */
import { Effect, type Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as AtomicFile from "./AtomicFile.ts"
import * as CloudError from "./CloudError.ts"
import * as Ledger from "./Ledger.ts"
import * as ProcessLiveness from "./ProcessLiveness.ts"

/** Who holds a namespace. */
export interface Holder {
  readonly pid: number
  /** The process's start time (`/proc/<pid>/stat` field 22); empty where there is no `/proc`. */
  readonly start: string
  /** What it runs, for messages: `tezt-cloud BASIC simple`. */
  readonly what: string
  /** When it took the lock (ISO 8601). */
  readonly since: string
}

/** The lock file of a namespace. */
export const lockFile = (root: string, namespace: string): string =>
  path.join(Ledger.namespaceDir(root, namespace), "lock")

/** Whether the recorded holder is still the process that took the lock. */
const isLive = (holder: Holder) => ProcessLiveness.isLive(holder.pid, holder.start)

const parseHolder = (text: string): Holder | undefined => {
  try {
    const u = JSON.parse(text) as Partial<Holder> | null
    return typeof u === "object" && u !== null && Number.isInteger(u.pid) && (u.pid ?? 0) > 0 &&
        typeof u.start === "string" && typeof u.what === "string" && typeof u.since === "string"
      ? (u as Holder)
      : undefined
  } catch {
    return undefined
  }
}

/** The lock as it is: its inode and its holder (`undefined` when it is not a record), or `undefined` if none. */
const readLock = (file: string): { readonly ino: number; readonly holder: Holder | undefined } | undefined => {
  let fd: number
  try {
    fd = fs.openSync(file, "r")
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined
    throw e
  }
  try {
    return { ino: fs.fstatSync(fd).ino, holder: parseHolder(fs.readFileSync(fd, "utf8")) }
  } finally {
    fs.closeSync(fd)
  }
}

/** The namespace's live holder, if any: a stale lock holds nothing. */
export const holder = (root: string, namespace: string): Holder | undefined => {
  const lock = readLock(lockFile(root, namespace))
  return lock?.holder !== undefined && isLive(lock.holder) ? lock.holder : undefined
}

/** Removes the stale lock whose inode is `ino`, and only it. */
const breakStale = (file: string, ino: number) => {
  const aside = `${file}.stale-${process.pid}-${crypto.randomBytes(4).toString("hex")}`
  try {
    fs.renameSync(file, aside)
  } catch (e) {
    // Another process broke it first.
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return
    throw e
  }
  try {
    if (fs.statSync(aside).ino !== ino) {
      // Not the stale lock: one another process has just taken. Put back (a link never replaces a lock).
      try {
        fs.linkSync(aside, file)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
      }
    }
  } finally {
    fs.rmSync(aside, { force: true })
  }
}

const held = (namespace: string, live: Holder, hint: string) =>
  CloudError.config(
    "--tezt-cloud",
    `namespace ${namespace} is in use by '${live.what}' (pid ${live.pid}, since ${live.since}): stop it first${hint}`
  )

/**
 * Takes the namespace's lock for the current scope, as `what` (shown to whoever is refused); fails with one line
 * naming the live holder's pid, then `hint` (", or give another --tezt-cloud"), when another process holds it.
 */
export const acquire = Effect.fn("NamespaceLock.acquire")(function*(
  root: string,
  namespace: string,
  what: string,
  hint = ""
): Effect.fn.Return<void, CloudError.CloudError, Scope.Scope> {
  const file = lockFile(root, namespace)
  const own: Holder = {
    pid: process.pid,
    start: ProcessLiveness.startTime(process.pid) ?? "",
    what,
    since: new Date().toISOString()
  }
  const take = Effect.try({
    try: () => {
      Ledger.ensureNamespaceDir(root, namespace)
      // Each round either takes the lock, finds a live holder, or removes a stale lock: a few are enough.
      for (let round = 0; round < 8; round++) {
        if (AtomicFile.createAtomic(file, JSON.stringify(own) + "\n", 0o600)) return { ino: fs.statSync(file).ino }
        const lock = readLock(file)
        if (lock === undefined) continue
        if (lock.holder !== undefined && isLive(lock.holder)) return { holder: lock.holder }
        breakStale(file, lock.ino)
      }
      throw new Error("it keeps changing: another process takes and leaves it again and again")
    },
    catch: (e) =>
      CloudError.state(file, `cannot take the namespace's lock: ${CloudError.messageOf(e)}`, {
        cause: e
      })
  })
  const taken = yield* Effect.acquireRelease(take, (result) =>
    Effect.sync(() => {
      if (!("ino" in result)) return
      // Only our own lock is ours to remove.
      const lock = readLock(file)
      if (lock?.ino === result.ino) fs.rmSync(file, { force: true })
    }))
  if ("holder" in taken) return yield* held(namespace, taken.holder, hint)
})
