/**
 * The append-only record of every resource a run creates, one JSONL file per namespace. An entry is written
 * before the resource exists (or, for a process, the moment its pid is known) and a `release` entry once it is
 * gone, so `tezt-cloud CLOUD clean up` can find what a `kill -9`ed run left behind.
 *
 * **Details**
 *
 * File: `<state-dir>/<ns>/ledger.jsonl`, where the state dir is `$TEZT_CLOUD_STATE_DIR` or
 * `~/.local/state/tezt-cloud`. Appends are synchronous (`appendFileSync`) so that an entry survives a crash
 * of the orchestrator right after it.
 */
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Protocol from "./AgentsControlProtocol.mjs"
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
  // thousand lines, never rewrites them. The directory is made once (again only if it disappears).
  let dirMade = false
  const append = (entry: Entry) =>
    Effect.try({
      try: () => {
        const line = JSON.stringify(entry) + "\n"
        if (!dirMade) {
          fs.mkdirSync(path.dirname(file), { recursive: true })
          dirMade = true
        }
        try {
          fs.appendFileSync(file, line)
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e
          fs.mkdirSync(path.dirname(file), { recursive: true })
          fs.appendFileSync(file, line)
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

/** Reads a ledger file; a missing file is an empty ledger, a torn last line (crash mid-write) is skipped. */
export const read = (file: string): Effect.Effect<ReadonlyArray<Entry>, CloudError.CloudError> =>
  Effect.try({
    try: () => {
      if (!fs.existsSync(file)) return []
      return fs.readFileSync(file, "utf8").split("\n").flatMap((line) => {
        if (line.trim() === "") return []
        try {
          return [JSON.parse(line) as Entry]
        } catch {
          return []
        }
      })
    },
    catch: (e) => CloudError.state(file, `cannot read the ledger: ${CloudError.messageOf(e)}`, { cause: e })
  })

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
