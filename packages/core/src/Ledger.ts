/**
 * The append-only record of every resource a run creates, one JSONL file per namespace. An entry is written
 * before the resource exists (or, for a process, the moment its pid is known) and a `release` entry once it is
 * gone, so `tezt-cloud CLOUD clean up` can find what a `kill -9`ed run left behind.
 *
 * **Details**
 *
 * File: `<state-dir>/<ns>/ledger.jsonl`, where the state dir is `$TEZT_CLOUD_STATE_DIR` or
 * `~/.local/state/tezt-cloud`, both private to the user (0700, the file 0600). Appends are synchronous and
 * flushed to disk (`fsync`, and the directory's when the file is created) so that an entry survives a crash of
 * the orchestrator, or of the machine, right after it. A torn last line does not swallow the next entry, and a
 * line that is not an entry is skipped with a warning. Clean-up removes a recorded path only when it lies inside
 * the namespace's own dirs (`checkInside`, `isInside`).
 */
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Protocol from "./AgentsControlProtocol.cjs"
import * as AtomicFile from "./AtomicFile.ts"
import * as CloudError from "./CloudError.ts"

/** A resource as recorded: what it is (`kind`), a unique `id`, and what clean-up needs to remove it. */
export interface Resource {
  readonly id: string
  readonly kind: string
  readonly data: Record<string, string | number | boolean>
}

export interface Entry extends Resource {
  readonly op: "acquire" | "release"
  readonly at: string
}

/**
 * The state directory of the tool: `$TEZT_CLOUD_STATE_DIR`, else `~/.local/state/tezt-cloud`. Stated in
 * `AgentsControlProtocol`, where the fast `agents exec` client finds it without loading `effect`.
 */
export const stateDir: (env?: Readonly<Record<string, string | undefined>>) => string = Protocol.stateDir

/** Where one namespace's state lives. */
export const namespaceDir = (root: string, namespace: string): string => path.join(root, namespace)

/** The ledger file of a namespace. */
export const ledgerFile = (root: string, namespace: string): string =>
  path.join(namespaceDir(root, namespace), "ledger.jsonl")

export class Ledger extends Context.Service<Ledger, {
  readonly namespace: string
  readonly file: string
  /** Records a resource about to be created. */
  acquire(resource: Resource): Effect.Effect<void, CloudError.CloudError>
  /** Records that a resource is gone. */
  release(id: string): Effect.Effect<void, CloudError.CloudError>
  /** Resources acquired and not released, in acquisition order. */
  readonly outstanding: Effect.Effect<ReadonlyArray<Resource>, CloudError.CloudError>
}>()("@tezt-cloud/core/Ledger") {
  /** A ledger on disk for `namespace` under `root` (see `stateDir`). */
  static readonly layer = (root: string, namespace: string) =>
    Layer.effect(Ledger, Effect.sync(() => makeFile(root, namespace)))

  /** A ledger in memory, for tests and `TestCloud`. */
  static readonly layerMemory = (namespace: string) =>
    Layer.sync(Ledger, () => {
      const entries: Array<Entry> = []
      return Ledger.of({
        namespace,
        file: ":memory:",
        acquire: (r) => Effect.sync(() => void entries.push({ ...r, op: "acquire", at: new Date().toISOString() })),
        release: (id) =>
          Effect.sync(() => void entries.push({ id, kind: "", data: {}, op: "release", at: new Date().toISOString() })),
        outstanding: Effect.sync(() => fold(entries))
      })
    })
}

const makeFile = (root: string, namespace: string) => {
  const file = ledgerFile(root, namespace)
  // Every append is one line at the end of the file, whatever its size: a run of 1000 agents writes a few
  // thousand lines, never rewrites them. The directories are made once (again only if they disappear).
  let dirMade = false
  const append = (entry: Entry) =>
    Effect.try({
      try: () => {
        if (!dirMade) {
          ensureNamespaceDir(root, namespace)
          dirMade = true
        }
        try {
          appendLine(file, JSON.stringify(entry))
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e
          ensureNamespaceDir(root, namespace)
          appendLine(file, JSON.stringify(entry))
        }
      },
      catch: (e) => CloudError.state(file, `cannot append to the ledger: ${CloudError.messageOf(e)}`, { cause: e })
    })
  return Ledger.of({
    namespace,
    file,
    acquire: (resource) => append({ ...resource, op: "acquire", at: new Date().toISOString() }),
    release: (id) => append({ id, kind: "", data: {}, op: "release", at: new Date().toISOString() }),
    outstanding: read(file).pipe(Effect.map(fold))
  })
}

/**
 * Creates the state dir and the namespace's dir, private to the user (0700): they hold the ledger, the live
 * run's record and its control socket, and runs' output. A namespace dir made by an older version is made
 * private too; a state dir that exists is left as it is (it may be the user's own, given in
 * `$TEZT_CLOUD_STATE_DIR`).
 */
export const ensureNamespaceDir = (root: string, namespace: string): string => {
  const dir = namespaceDir(root, namespace)
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  if ((fs.statSync(dir).mode & 0o077) !== 0) fs.chmodSync(dir, 0o700)
  return dir
}

/**
 * Appends one line durably: flushed to disk before it returns, and, when this created the file, the directory
 * too. After a torn last line (a crash mid-write), the line starts on a line of its own.
 */
const appendLine = (file: string, line: string) => {
  let created = true
  let fd: number
  try {
    fd = fs.openSync(file, "ax", 0o600)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
    created = false
    fd = fs.openSync(file, "a+")
  }
  try {
    const stat = fs.fstatSync(fd)
    // A ledger an older version made readable by others is made private.
    if ((stat.mode & 0o077) !== 0) fs.fchmodSync(fd, 0o600)
    const size = stat.size
    const last = Buffer.alloc(1)
    const torn = size > 0 && fs.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a
    fs.writeSync(fd, (torn ? "\n" : "") + line + "\n")
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  if (created) AtomicFile.syncDirectory(path.dirname(file))
}

/**
 * Reads a ledger file; a missing file is an empty ledger. A line that is not an entry (a torn write after a
 * crash, or anything else) is skipped with a warning naming the file and the line.
 */
export const read = (file: string): Effect.Effect<ReadonlyArray<Entry>, CloudError.CloudError> =>
  Effect.try({
    try: () => fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "",
    catch: (e) => CloudError.state(file, `cannot read the ledger: ${CloudError.messageOf(e)}`, { cause: e })
  }).pipe(Effect.flatMap((text) => {
    const entries: Array<Entry> = []
    const skipped: Array<number> = []
    text.split("\n").forEach((line, i) => {
      if (line.trim() === "") return
      const entry = parseEntry(line)
      if (entry === undefined) skipped.push(i + 1)
      else entries.push(entry)
    })
    return Effect.as(
      Effect.forEach(skipped, (n) => Effect.logWarning(`${file}:${n}: not a ledger entry, skipped`), {
        discard: true
      }),
      entries
    )
  }))

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** A line as an entry, or `undefined` when it is not JSON of one (`null`, a number, a torn line…). */
const parseEntry = (line: string): Entry | undefined => {
  let u: unknown
  try {
    u = JSON.parse(line)
  } catch {
    return undefined
  }
  if (!isRecord(u) || typeof u.id !== "string" || typeof u.kind !== "string") return undefined
  if ((u.op !== "acquire" && u.op !== "release") || !isRecord(u.data)) return undefined
  const data = Object.values(u.data).every((v) => ["string", "number", "boolean"].includes(typeof v))
  return data ? (u as unknown as Entry) : undefined
}

const fold = (entries: ReadonlyArray<Entry>): ReadonlyArray<Resource> => {
  const live = new Map<string, Resource>()
  for (const e of entries) {
    if (e.op === "acquire") live.set(e.id, { id: e.id, kind: e.kind, data: e.data })
    else live.delete(e.id)
  }
  return [...live.values()]
}

/**
 * Acquires a resource in the current scope with its ledger record around it: `acquire` is recorded first,
 * `release` once `release` has run. The record of a resource whose release failed stays outstanding.
 */
export const scoped = <A, E, R, E2, R2>(
  record: Resource,
  acquire: Effect.Effect<A, E, R>,
  release: (a: A) => Effect.Effect<void, E2, R2>
) =>
  Effect.gen(function*() {
    const ledger = yield* Ledger
    yield* ledger.acquire(record)
    return yield* Effect.acquireRelease(
      acquire,
      (a) => release(a).pipe(Effect.andThen(ledger.release(record.id)), Effect.ignore)
    )
  })

/**
 * Whether `candidate` lies strictly inside `root` (not `root` itself), by their normalized paths: what clean-up
 * checks before it removes a path the ledger recorded, so that an edited or corrupt ledger never makes it
 * `rm -rf` anything else. `posix`: for paths on a remote host, whatever this machine is.
 */
export const isInside = (root: string, candidate: string, posix = false): boolean => {
  const p = posix ? path.posix : path
  if (!p.isAbsolute(root) || !p.isAbsolute(candidate)) return false
  const relative = p.relative(p.normalize(root), p.normalize(candidate))
  return relative !== "" && relative !== ".." && !relative.startsWith(`..${p.sep}`) && !p.isAbsolute(relative)
}

/**
 * Fails unless the recorded local path `candidate` lies inside `root`, also once symbolic links are resolved
 * (a link on the way out of `root` does not make the path inside). Returns `candidate`.
 */
export const checkInside = (root: string, candidate: string): Effect.Effect<string, CloudError.CloudError> =>
  Effect.suspend(() => {
    const refuse = () =>
      Effect.fail(
        CloudError.state(candidate, `refusing to remove it: the ledger recorded it, but it is not inside ${root}`)
      )
    if (!isInside(root, candidate)) return refuse()
    // No root, nothing under it: removing the path is a no-op (a run killed after its teardown removed the
    // sandboxes' directory, before the ledger said so).
    if (!fs.existsSync(root)) return Effect.succeed(candidate)
    // The deepest part of the path that exists, resolved, must still be inside the resolved root.
    let existing = path.dirname(path.normalize(candidate))
    while (!fs.existsSync(existing) && existing !== path.dirname(existing)) existing = path.dirname(existing)
    const realRoot = fs.realpathSync(root)
    const realParent = fs.realpathSync(existing)
    return realParent === realRoot || isInside(realRoot, realParent) ? Effect.succeed(candidate) : refuse()
  })
