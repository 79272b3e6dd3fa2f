/**
 * The control API of a proxy: what the local CLI asks the server that supervises the remote run (`ProxyServer`),
 * and what it answers, as schemas; where the server keeps its files on the proxy; and the lines of the run's log.
 * The same module on both sides, so that they cannot disagree.
 *
 * **Details**
 *
 * - Framing: newline-delimited JSON on the server's Unix socket (reached through ssh, see `ProxyClient`), one
 *   request per connection, then the answers, then the server ends the connection.
 * - `Status`: one `Status` answer. `Logs`: `Lines` answers (the log's lines from byte `from`, each batch with the
 *   offset after it), then `End` once the run has ended and every line was sent; without `follow`, `Caught` at
 *   the log's current end instead of waiting. `Input`, `Interrupt`: `Done`. `Stop`: `Done` once the run has
 *   ended (interrupted first if it still runs); the server then removes the namespace's files and exits. Any
 *   request may be answered `Failed`.
 * - The log (`run.jsonl`) holds the orchestrator's events as it prints them (`--json`: one `RunEvents.Stamped`
 *   per line) and what else it prints (its standard error, mostly) as `{"type": "console", "stream", "line",
 *   "at"}` lines. An offset is a byte offset of a
 *   line's start: a client that resumes from the offset after the last line it showed neither loses nor repeats
 *   one (how the local side counts what it showed: `ProxyRecord.showLines`).
 */
import { Option, Schema } from "effect"
import * as path from "node:path"

export const Request = Schema.Union([
  Schema.TaggedStruct("Status", {}),
  Schema.TaggedStruct("Logs", { from: Schema.Int, follow: Schema.Boolean }),
  Schema.TaggedStruct("Input", { line: Schema.String }),
  Schema.TaggedStruct("Interrupt", {}),
  Schema.TaggedStruct("Stop", {})
])
export type Request = typeof Request.Type

export const Status = Schema.Struct({
  namespace: Schema.String,
  state: Schema.Literals(["running", "ended"]),
  /** The orchestrator's pid on the proxy. */
  pid: Schema.Int,
  startedAt: Schema.String,
  /** Its command line (never a secret: they are in the 0600 secrets file). */
  argv: Schema.Array(Schema.String),
  /** Once ended: its exit code (128 + the signal number when a signal ended it). */
  exitCode: Schema.optionalKey(Schema.Int),
  /** How many times it was asked to tear down. */
  interrupts: Schema.Int,
  /** The log's size: the offset where its next line will start. */
  logBytes: Schema.Int
})
export type Status = typeof Status.Type

export const Response = Schema.Union([
  Schema.TaggedStruct("Status", { status: Status }),
  Schema.TaggedStruct("Lines", { lines: Schema.Array(Schema.String), next: Schema.Int }),
  Schema.TaggedStruct("End", { exitCode: Schema.Int }),
  Schema.TaggedStruct("Caught", { next: Schema.Int }),
  Schema.TaggedStruct("Done", {}),
  Schema.TaggedStruct("Failed", { message: Schema.String })
])
export type Response = typeof Response.Type

const RequestJson = Schema.fromJsonString(Request)
const ResponseJson = Schema.fromJsonString(Response)

/** A request as it goes on the socket, newline included. */
export const encodeRequest = (request: Request): string => Schema.encodeSync(RequestJson)(request) + "\n"
/** A response as it goes on the socket, newline included. */
export const encodeResponse = (response: Response): string => Schema.encodeSync(ResponseJson)(response) + "\n"

/** The request on a line, or `undefined` when it is none. */
export const decodeRequest = (line: string): Request | undefined =>
  Option.getOrUndefined(Schema.decodeUnknownOption(RequestJson)(line))
/** The response on a line, or `undefined` when it is none. */
export const decodeResponse = (line: string): Response | undefined =>
  Option.getOrUndefined(Schema.decodeUnknownOption(ResponseJson)(line))

/** A log line of what the orchestrator printed that is not an event (its standard error, mostly). */
export interface ConsoleLine {
  readonly type: "console"
  readonly stream: "stdout" | "stderr"
  readonly line: string
  readonly at: number
}

export const consoleLine = (stream: "stdout" | "stderr", line: string, at: number = Date.now()): string =>
  JSON.stringify({ type: "console", stream, line, at } satisfies ConsoleLine)

/** The variable that tells the orchestrator it runs on the proxy, for the namespace it holds. */
export const onProxyVariable = "TEZT_CLOUD_ON_PROXY"

/** The variable naming the 0600 file the orchestrator on the proxy reads its secrets from. */
export const secretsVariable = "TEZT_CLOUD_SECRETS_FILE"

/** Where everything of the proxy lives, under the remote user's home. */
export const baseDir = (home: string) => path.posix.join(home, ".tezt-cloud-proxy")

/** The runtime and workspace of one bundle (content-addressed: shared by the namespaces of the proxy). */
export const bundleDir = (home: string, hash: string) => path.posix.join(baseDir(home), "bundles", hash)

/** What the proxy holds for one namespace, under `<base>/<namespace>`. */
export const layout = (home: string, namespace: string) => layoutOf(path.posix.join(baseDir(home), namespace))

/** The files of a namespace's directory `dir` on the proxy. */
export const layoutOf = (dir: string) => {
  return {
    dir,
    /** The server's configuration (`ProxyServer.Config`). */
    config: path.posix.join(dir, "server.json"),
    /** The run's secrets, mode 0600, read by the orchestrator (never on a command line or in an environment). */
    secrets: path.posix.join(dir, "secrets.json"),
    socket: path.posix.join(dir, "control.sock"),
    log: path.posix.join(dir, "run.jsonl"),
    /** The server's own output (start-up failures). */
    serverLog: path.posix.join(dir, "server.log"),
    /** The workspace the orchestrator runs in: the bundle, hard-linked, and the scenario's files. */
    workspace: path.posix.join(dir, "workspace"),
    /** The orchestrator's `$TEZT_CLOUD_STATE_DIR`. */
    state: path.posix.join(dir, "state"),
    /** Its `--artifacts-dir`, fetched back by the local side when the run ends. */
    artifacts: path.posix.join(dir, "artifacts")
  }
}
export type Layout = ReturnType<typeof layoutOf>
