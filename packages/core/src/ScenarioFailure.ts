/**
 * How a scenario's failure is told to its author: the error's one line with the place in the scenario's own code
 * where it happened (`file:line:column`), and Effect's trace of it (the error's frames and the spans it crossed,
 * `Agent.run` called from the scenario's line…). The place is the first frame of that trace that is neither the
 * tool's code nor a dependency's: a `TypeError` thrown by the scenario names its line, an agent's command that
 * failed names the line that ran it.
 */
import { Cause } from "effect"
import * as path from "node:path"
import * as url from "node:url"

/** The tool's packages: frames of their sources are the machinery a scenario calls, never the scenario's own. */
const packagesDir = path.resolve(import.meta.dirname, "..", "..") + path.sep
/** This module's own file: the same once the tool is bundled into one file. */
const ownFile = url.fileURLToPath(import.meta.url)

/** A frame of a stack or span trace: `at name (file:line:column)` or `at file:line:column`. */
const frame = /^\s*at (?:.*\()?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?\s*$/

const isMachinery = (file: string) =>
  (file.startsWith(packagesDir) && file.slice(packagesDir.length).split(path.sep)[1] === "src") ||
  file === ownFile || file.includes(`${path.sep}node_modules${path.sep}`)

/** Effect's trace of `cause`: each error with its frames, and the spans it crossed with their call sites. */
export const trace = (cause: Cause.Cause<unknown>): string => Cause.pretty(cause)

/** Where in the scenario's own code `cause` happened, as `file:line:column`; `undefined` when no frame says. */
export const location = (cause: Cause.Cause<unknown>): string | undefined => {
  for (const line of trace(cause).split("\n")) {
    const match = frame.exec(line)
    if (match === null) continue
    const file = match[1]!.startsWith("file:") ? url.fileURLToPath(match[1]!) : match[1]!
    if (!isMachinery(file)) return `${file}:${match[2]}:${match[3]}`
  }
  return undefined
}

/** One line for a cause: the error's message (or "interrupted"), and where in the scenario it happened. */
export const render = (cause: Cause.Cause<unknown>): string => {
  if (Cause.hasInterruptsOnly(cause)) return "interrupted"
  const error = Cause.squash(cause)
  const message = error instanceof Error ? error.message : String(error)
  const at = location(cause)
  return at === undefined ? message : `${message} (at ${at})`
}
