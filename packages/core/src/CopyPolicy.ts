/**
 * Tezt cloud's `Agent.copy` rule, independent of the transport: memoized per destination, `mkdir -p` of
 * the parent, skipped when the agent's md5 equals the local one, re-copied on mismatch when the consistency check
 * is on and left alone (with a warning) when it is off; directories are copied file by file.
 */
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as CloudError from "./CloudError.ts"
import type { CopyOptions } from "./Runner.ts"

/** What a transport offers for copies: md5 of a file on the agent (`undefined` if absent) and a file upload. */
export interface CopyTransport {
  readonly agent: string
  md5(remote: string): Effect.Effect<string | undefined, CloudError.CloudError>
  /** Writes the file at `remote` (creating its parents), keeping `mode`. */
  put(local: string, remote: string, mode: number): Effect.Effect<void, CloudError.CloudError>
}

export interface CopyDefaults {
  readonly binariesPath: string
  readonly checkFileConsistency: boolean
}

/** What happened to each file, for tests and the event log. */
export type CopyOutcome = "copied" | "skipped-same" | "skipped-unchecked" | "memoized"

export const md5File = (file: string): string => crypto.createHash("md5").update(fs.readFileSync(file)).digest("hex")

export const make = (transport: CopyTransport, defaults: CopyDefaults) => {
  const done = new Set<string>()
  const outcomes: Array<{ readonly remote: string; readonly outcome: CopyOutcome }> = []

  const copyFile = (local: string, remote: string, options: CopyOptions) =>
    Effect.gen(function*() {
      const remoteMd5 = options.refresh ? undefined : yield* transport.md5(remote)
      const check = options.consistencyCheck ?? defaults.checkFileConsistency
      let outcome: CopyOutcome = "copied"
      if (remoteMd5 !== undefined && !check) {
        outcome = "skipped-unchecked"
        yield* Effect.logWarning(
          `${transport.agent}: ${remote} exists; not checking its content (consistency check off)`
        )
      } else if (remoteMd5 !== undefined && remoteMd5 === md5File(local)) {
        outcome = "skipped-same"
      } else {
        yield* transport.put(local, remote, fs.statSync(local).mode & 0o7777)
      }
      outcomes.push({ remote, outcome })
      if (options.onOutcome !== undefined) yield* options.onOutcome(remote, outcome)
    })

  const copy = (source: string, options: CopyOptions = {}): Effect.Effect<string, CloudError.CloudError> =>
    Effect.gen(function*() {
      const local = path.resolve(source)
      const stat = yield* Effect.try({
        try: () => fs.statSync(local),
        catch: (e) => CloudError.copy(transport.agent, source, "no such local file or directory", { cause: e })
      })
      const destination = options.destination ?? path.posix.join(defaults.binariesPath, path.basename(local))
      if (done.has(destination) && !options.refresh) {
        outcomes.push({ remote: destination, outcome: "memoized" })
        if (options.onOutcome !== undefined) yield* options.onOutcome(destination, "memoized")
        return destination
      }
      const files = stat.isDirectory() ? walk(local) : [""]
      for (const relative of files) {
        yield* copyFile(
          path.join(local, relative),
          relative === "" ? destination : path.posix.join(destination, relative),
          options
        )
      }
      done.add(destination)
      return destination
    })

  return { copy, outcomes: outcomes as ReadonlyArray<{ readonly remote: string; readonly outcome: CopyOutcome }> }
}

/**
 * Regular files under `dir`, as relative posix paths, in a stable order. A symbolic link to a file counts as
 * that file (its content is copied, as `scp -r` does); links to directories are not followed.
 */
const walk = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) =>
      e.isFile() ||
      (e.isSymbolicLink() && fs.statSync(path.join(e.parentPath, e.name), { throwIfNoEntry: false })?.isFile())
    )
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"))
    .toSorted()
