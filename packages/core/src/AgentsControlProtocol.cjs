// @ts-check
/**
 * The protocol of a live run's control socket, in one place for both of its sides: the server, core's
 * `AgentsControl`, and the fast client of `tezt-cloud agents exec`, `packages/cli/src/AgentsExecClient.cjs`.
 * Where the socket is (the state dir, the namespace, the path limit), what crosses it and how it is framed.
 *
 * **Details**
 *
 * Newline-delimited JSON, one request per connection:
 *
 * - request: `{"argv": ["cmd", "arg", …], "agents": ["name", …]}`; no `agents` (or none listed) means all.
 * - accepted: first `{"agents": [the chosen names, in the run's order]}`, then, per agent, any number of
 *   `{"agent", "stream": "stdout" | "stderr", "line"}` and one `{"agent", "exitCode"}` or `{"agent", "error"}`.
 *   The server then ends the connection.
 * - refused (an unknown agent name, a malformed request): one `{"error": message}`, then the end.
 *
 * **Gotchas**
 *
 * Plain CommonJS checked by tsc (`@ts-check`, JSDoc types), requiring nothing but Node built-ins, because the
 * fast client is CommonJS (an ES module costs it Node's ES loader, ~5 ms of CPU). Importing `effect` would cost
 * ~0.5 s, and any `.ts` module ~50 ms more (Node's type stripper is loaded on the first one). ES modules import
 * it as any CommonJS module: its exports are the object literal at the end, which Node's lexer recognises.
 */
const os = require("node:os")
const path = require("node:path")
const { StringDecoder } = require("node:string_decoder")

/**
 * A namespace (`--tezt-cloud`, `$TEZT_CLOUD`): one safe path segment of letters, digits, `.`, `_` or `-`, at
 * most 63, starting with a letter or digit.
 */
const namespacePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/

/**
 * The state directory of the tool: `$TEZT_CLOUD_STATE_DIR`, else `~/.local/state/tezt-cloud`.
 *
 * @param {Readonly<Record<string, string | undefined>>} env
 * @returns {string}
 */
const stateDir = (env = process.env) =>
  env.TEZT_CLOUD_STATE_DIR ?? path.join(os.homedir(), ".local", "state", "tezt-cloud")

/** The socket's file name, in the namespace's directory of the state dir, next to the run's ledger. */
const socketName = "control.sock"

/**
 * Where the namespace's live run serves its control socket.
 *
 * @param {string} root the state dir
 * @param {string} namespace
 * @returns {string}
 */
const socketPath = (root, namespace) => path.join(root, namespace, socketName)

/** Unix socket paths are limited to `sizeof(sun_path)` = 108 bytes, with the final NUL. */
const maxSocketPathBytes = 107

/**
 * Whether a Unix socket can have this path.
 *
 * @param {string} file
 * @returns {boolean}
 */
const fitsSocketPath = (file) => Buffer.byteLength(file) <= maxSocketPathBytes

/** A request line longer than this is refused (a request is a command line and agent names). */
const maxRequestBytes = 1 << 20

/** The exit code of an agent whose command could not run (an `error` response), as ssh reports its own failures. */
const agentErrorCode = 255

/**
 * What `agents exec` exits with: the worst agent's code, 0 for none.
 *
 * @param {Iterable<number>} codes
 * @returns {number}
 */
const worstCode = (codes) => Math.max(0, ...codes)

/**
 * @typedef {{
 *   readonly argv: ReadonlyArray<string>
 *   readonly agents?: ReadonlyArray<string> | undefined
 * }} Request
 */

/**
 * @typedef {{ readonly agents: ReadonlyArray<string> }} Accepted
 * @typedef {{ readonly error: string }} Refused
 * @typedef {{ readonly agent: string; readonly stream: "stdout" | "stderr"; readonly line: string }} Line
 * @typedef {{ readonly agent: string; readonly exitCode: number }} Exited
 * @typedef {{ readonly agent: string; readonly error: string }} Failed
 * @typedef {Accepted | Refused | Line | Exited | Failed} Response
 */

/**
 * One message as it goes on the socket: its JSON and a newline (JSON strings escape newlines).
 *
 * @param {Request | Response} message
 * @returns {string}
 */
const encode = (message) => JSON.stringify(message) + "\n"

/**
 * Cuts a stream into lines: `push` takes the next chunk and returns the lines it completed; `pending` is the
 * length of the unfinished line kept for the next chunk. Bytes are decoded as UTF-8 across chunks: a character
 * cut in two by the socket is joined again.
 */
const makeLineReader = () => {
  const decoder = new StringDecoder("utf8")
  let buffer = ""
  return {
    /**
     * @param {string | Buffer} chunk
     * @returns {Array<string>}
     */
    push: (chunk) => {
      buffer += typeof chunk === "string" ? chunk : decoder.write(chunk)
      const lines = buffer.split("\n")
      buffer = lines.pop() ?? ""
      return lines
    },
    pending: () => buffer.length
  }
}

/**
 * @param {unknown} u
 * @returns {u is ReadonlyArray<string>}
 */
const isStrings = (u) => Array.isArray(u) && u.every((s) => typeof s === "string")

/**
 * @param {string} line
 * @returns {{ readonly json: unknown } | undefined} the line's JSON value, `undefined` when it is not JSON
 */
const parse = (line) => {
  try {
    return { json: JSON.parse(line) }
  } catch {
    return undefined
  }
}

/**
 * @param {unknown} u
 * @returns {Readonly<Record<string, unknown>>} `u` when it is a JSON object, else an empty one
 */
const fieldsOf = (u) => (u !== null && typeof u === "object" && !Array.isArray(u) ? { ...u } : {})

/**
 * The request on a line, or why it is not one.
 *
 * @param {string} line
 * @returns {Request | string}
 */
const decodeRequest = (line) => {
  const parsed = parse(line)
  if (parsed === undefined) return "malformed request: not JSON"
  const u = fieldsOf(parsed.json)
  if (!isStrings(u.argv) || u.argv.length === 0) return "malformed request: argv must be a non-empty array of strings"
  if (u.agents !== undefined && !isStrings(u.agents)) return "malformed request: agents must be strings"
  return { argv: u.argv, agents: u.agents }
}

/**
 * The response on a line, or `undefined` when it is not one.
 *
 * @param {string} line
 * @returns {Response | undefined}
 */
const decodeResponse = (line) => {
  const parsed = parse(line)
  if (parsed === undefined) return undefined
  const { agent, agents, error, exitCode, line: text, stream } = fieldsOf(parsed.json)
  if (typeof agent !== "string") {
    if (isStrings(agents)) return { agents }
    return typeof error === "string" ? { error } : undefined
  }
  if ((stream === "stdout" || stream === "stderr") && typeof text === "string") return { agent, stream, line: text }
  if (typeof exitCode === "number") return { agent, exitCode }
  return typeof error === "string" ? { agent, error } : undefined
}

module.exports = {
  namespacePattern,
  stateDir,
  socketName,
  socketPath,
  maxSocketPathBytes,
  fitsSocketPath,
  maxRequestBytes,
  agentErrorCode,
  worstCode,
  encode,
  makeLineReader,
  decodeRequest,
  decodeResponse,
}
