/**
 * The local record of a namespace's proxy, `<state-dir>/<ns>/proxy.json`: which backend made the proxy machine
 * and how to reach it (its agent descriptor: a key's path, never a key), where its files are, what it runs. A
 * rerun of the same command finds it and reattaches instead of deploying again; `CLOUD clean up` finds it too.
 * Beside it, `proxy.offset`: how far in the run's log this machine has shown, so that a reattach shows the rest.
 *
 * **Details**
 *
 * The record is written once the proxy machine answers, before anything is shipped to it; the machine itself is
 * in the ledger before it exists (its backend's record). The offset is rewritten after each line shown (`showLines`).
 */
import { type Agent, CloudError, Ledger } from "@tezt-cloud/core"
import { Effect, Option, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

export const ProxyRecord = Schema.Struct({
  namespace: Schema.String,
  /** The id of the backend that made the proxy machine (its agent's descriptor's `backend`). */
  backend: Schema.String,
  /** The proxy machine, as its backend describes it (`user`, `host`, `port`, `key`…). */
  machine: Schema.Record(Schema.String, Schema.Union([Schema.String, Schema.Number])),
  /** The remote user's home, under which everything of the proxy lives (`ProxyProtocol.baseDir`). */
  home: Schema.String,
  createdAt: Schema.String,
  /** What it runs: `GROUP tag…`, for messages. */
  run: Schema.String,
  /** The local artifacts dir the run's artifacts are fetched into when it ends. */
  artifactsDir: Schema.String,
  /** The ports the website and Prometheus listen on, on the proxy's loopback, when they run. */
  website: Schema.optionalKey(Schema.Int),
  prometheus: Schema.optionalKey(Schema.Int)
})
export type ProxyRecord = typeof ProxyRecord.Type

export const file = (stateDir: string, namespace: string) =>
  path.join(Ledger.namespaceDir(stateDir, namespace), "proxy.json")

export const offsetFile = (stateDir: string, namespace: string) =>
  path.join(Ledger.namespaceDir(stateDir, namespace), "proxy.offset")

/** The proxy machine's descriptor, as its backend's `reattach` takes it. */
export const descriptor = (record: ProxyRecord): Agent.Descriptor => ({ ...record.machine, backend: record.backend })

const decode = Schema.decodeUnknownSync(Schema.fromJsonString(ProxyRecord))

/** The namespace's record, if any; one that cannot be read is an error naming the file and the fix. */
export const read = (
  stateDir: string,
  namespace: string
): Effect.Effect<Option.Option<ProxyRecord>, CloudError.CloudError> => {
  const at = file(stateDir, namespace)
  return Effect.try({
    try: () => fs.existsSync(at) ? Option.some(decode(fs.readFileSync(at, "utf8"))) : Option.none(),
    catch: (e) =>
      CloudError.state(
        at,
        `not a proxy record (${CloudError.messageOf(e)}): run 'tezt-cloud CLOUD clean up --tezt-cloud ${namespace}'`
      )
  })
}

export const write = (stateDir: string, record: ProxyRecord) => {
  const at = file(stateDir, record.namespace)
  return Effect.try({
    try: () => {
      fs.mkdirSync(path.dirname(at), { recursive: true })
      fs.writeFileSync(`${at}.tmp`, JSON.stringify(record, null, 2) + "\n")
      fs.renameSync(`${at}.tmp`, at)
    },
    catch: (e) => CloudError.state(at, `cannot record the proxy: ${CloudError.messageOf(e)}`)
  })
}

/** Removes the record and its offset. */
export const remove = (stateDir: string, namespace: string) =>
  Effect.sync(() => {
    fs.rmSync(file(stateDir, namespace), { force: true })
    fs.rmSync(offsetFile(stateDir, namespace), { force: true })
  })

/** How far the run's log was shown here (0 when never). */
export const readOffset = (stateDir: string, namespace: string): number => {
  try {
    const n = Number(fs.readFileSync(offsetFile(stateDir, namespace), "utf8").trim())
    return Number.isSafeInteger(n) && n >= 0 ? n : 0
  } catch {
    return 0
  }
}

/** Records the offset (synchronously: it must be on disk before the next lines are shown). */
export const writeOffset = (stateDir: string, namespace: string, offset: number): void => {
  const at = offsetFile(stateDir, namespace)
  fs.writeFileSync(`${at}.tmp`, String(offset))
  fs.renameSync(`${at}.tmp`, at)
}

/**
 * Shows a batch of the log's lines, from offset `at` to `next` (the server's offset after them), and records
 * after each line the offset after it: the next client resumes from the last offset recorded.
 *
 * **Details**
 *
 * - A line is shown, then counted; never the other way round. So no line is ever lost, whatever stops this
 *   process; a stop that lets it act (Ctrl+D, Ctrl+C, SIGTERM, a dropped connection) comes between two batches,
 *   when what was shown and what was counted agree: nothing is repeated either. Only a `kill -9` (or a crash)
 *   between showing a line and counting it has that one line shown again by the next client: no output and file
 *   can be written at once, and a line lost would be worse than a line repeated.
 * - Per line, not per batch: a reattach after a long detach gets everything since in one batch, which a kill
 *   would otherwise repeat whole.
 * - The offsets are the lines' byte lengths (UTF-8, plus the newline). When they do not add up to `next` (a log
 *   not written by the server, whose lines were not valid UTF-8), only `next` is recorded, after the batch.
 */
export const showLines = (
  lines: ReadonlyArray<string>,
  at: number,
  next: number,
  show: (line: string) => void,
  record: (offset: number) => void
): void => {
  const ends: Array<number> = []
  for (const line of lines) ends.push((ends.at(-1) ?? at) + Buffer.byteLength(line, "utf8") + 1)
  const exact = (ends.at(-1) ?? at) === next
  for (const [i, line] of lines.entries()) {
    show(line)
    if (exact) record(ends[i]!)
  }
  if (!exact) record(next)
}

/** The ledger kind of a run on a proxy. */
export const runKind = "proxy-run"

/** The ledger record of the run on the proxy: acquired before the server starts, released once it stopped. */
export const ledgerResource = (namespace: string): Ledger.Resource => ({
  id: `proxy-run:${namespace}`,
  kind: runKind,
  data: { namespace }
})
