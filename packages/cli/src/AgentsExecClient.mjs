// @ts-check
/**
 * The fast path of `tezt-cloud agents exec`: when the live run of the namespace serves its control socket
 * (`<state-dir>/<ns>/control.sock`, core's `AgentsControl`), send it the command and print what comes back,
 * without loading the CLI. The run's agents are already connected, so a warm fan-out costs one Node start-up and
 * one round trip through the run.
 *
 * **Details**
 *
 * Plain Node, no `effect`, and JavaScript rather than TypeScript, because start-up is the whole cost here
 * (measured on the 2-core development machine): `node -e 0` takes ~80 ms, importing `effect` alone ~0.5 s, the
 * full CLI ~1.1 s, and the first `.ts` module ~50 ms more (Node's type stripper loads a WebAssembly compiler
 * first). This module, `bin.mjs` and core's `AgentsControlProtocol.mjs` load in a few milliseconds.
 *
 * It parses exactly the flags of `agents exec` (`--tezt-cloud NS`, `--agent NAME`…, then `--` and the command),
 * takes the namespace from `--tezt-cloud` or `$TEZT_CLOUD` as the full CLI does, and finds the socket, speaks
 * and frames the protocol with core's `AgentsControlProtocol`, the module the server uses. It prints what the full CLI prints: `[agent] line` on stdout or stderr as the agent wrote it,
 * `[agent] error: …` for an agent whose command could not run, and exits with the worst agent's code (255 for an
 * error). Anything else (another command, `--help`, no socket, a stale socket after a `kill -9` of the run,
 * `TEZT_CLOUD_COLD=1`) returns `undefined`: the full CLI takes over, and says what is wrong if anything is.
 *
 * **Gotchas**
 *
 * Nothing here may import `effect` or a `.ts` module, directly or not (a test checks it). Once the run has
 * accepted the request, the command may be running: there is no fallback from then on.
 */
import * as Protocol from "@tezt-cloud/core/AgentsControlProtocol"
import * as net from "node:net"

/**
 * @typedef {{
 *   readonly namespace: string | undefined
 *   readonly agents: ReadonlyArray<string>
 *   readonly argv: ReadonlyArray<string>
 * }} Invocation
 */

/**
 * `agents exec [--tezt-cloud NS] [--agent NAME]… -- CMD…`, or `undefined` for anything else.
 *
 * @param {ReadonlyArray<string>} argv
 * @returns {Invocation | undefined}
 */
export const parse = (argv) => {
  if (argv[0] !== "agents" || argv[1] !== "exec") return undefined
  /** @type {string | undefined} */
  let namespace
  /** @type {Array<string>} */
  const agents = []
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === "--") {
      const command = argv.slice(i + 1)
      return command.length === 0 ? undefined : { namespace, agents, argv: command }
    }
    const flag = /^--(tezt-cloud|agent)(?:=(.*))?$/.exec(argv[i] ?? "")
    if (flag === null) return undefined
    const value = flag[2] ?? argv[++i]
    if (value === undefined || value.startsWith("-")) return undefined
    if (flag[1] === "agent") agents.push(value)
    else if (namespace === undefined) namespace = value
    else return undefined
  }
  return undefined
}

/**
 * The control socket of the namespace's live run, if the namespace is valid and a socket can have that path.
 *
 * @param {Invocation} invocation
 * @param {Record<string, string | undefined>} env
 * @returns {string | undefined}
 */
export const socketPath = (invocation, env) => {
  const namespace = invocation.namespace ?? (env.TEZT_CLOUD === "" ? undefined : env.TEZT_CLOUD)
  if (namespace === undefined || !Protocol.namespacePattern.test(namespace)) return undefined
  const file = Protocol.socketPath(Protocol.stateDir(env), namespace)
  return Protocol.fitsSocketPath(file) ? file : undefined
}

/**
 * A connection to the socket, or `undefined` when nobody listens (no file, or a dead run's: ECONNREFUSED).
 *
 * @param {string} file
 * @returns {Promise<net.Socket | undefined>}
 */
const connect = (file) =>
  new Promise((resolve) => {
    const socket = net.createConnection(file)
    socket.once("error", () => resolve(undefined))
    socket.once("connect", () => {
      socket.removeAllListeners("error")
      resolve(socket)
    })
  })

/**
 * Sends the request and prints the responses; resolves to the exit code, or `undefined` when the run went away
 * before accepting the request (nothing ran).
 *
 * @param {net.Socket} socket
 * @param {Invocation} invocation
 * @returns {Promise<number | undefined>}
 */
const exchange = (socket, invocation) =>
  new Promise((resolve) => {
    /** @type {ReadonlyArray<string> | undefined} */
    let accepted
    /** @type {number | undefined} */
    let refused
    /** @type {Map<string, number>} */
    const codes = new Map()
    const reader = Protocol.makeLineReader()
    // Lines of one stream in a row are written at once; a switch of stream flushes, to keep their order.
    let pending = ""
    /** @type {"stdout" | "stderr"} */
    let pendingStream = "stdout"
    /** @param {"stdout" | "stderr"} stream @param {string} text */
    const print = (stream, text) => {
      if (stream !== pendingStream) flush()
      pendingStream = stream
      pending += text
    }
    const flush = () => {
      if (pending === "") return
      ;(pendingStream === "stdout" ? process.stdout : process.stderr).write(pending)
      pending = ""
    }
    /** @param {Protocol.Response} r */
    const onResponse = (r) => {
      if (!("agent" in r)) {
        if ("agents" in r) accepted = r.agents
        else {
          print("stderr", `tezt-cloud: error: ${r.error}\n`)
          // Unknown agents or a malformed request: bad input, as the cold path's ConfigInvalid.
          refused = 2
        }
      } else if ("stream" in r) print(r.stream, `[${r.agent}] ${r.line}\n`)
      else if ("exitCode" in r) codes.set(r.agent, r.exitCode)
      else {
        print("stderr", `[${r.agent}] error: ${r.error}\n`)
        codes.set(r.agent, Protocol.agentErrorCode)
      }
    }
    const onSignal = () => {
      // Closing the connection makes the run interrupt the commands, which kills them on the agents.
      socket.destroy()
      flush()
      process.stderr.write("\ntezt-cloud: interrupted\n")
      process.exit(130)
    }
    // Our reader went away (`| head`): stop the commands too, as a closed pipe stops a local command.
    const onOutputError = () => {
      socket.destroy()
      process.exit(1)
    }
    process.once("SIGINT", onSignal)
    process.once("SIGTERM", onSignal)
    process.stdout.once("error", onOutputError)
    process.stderr.once("error", onOutputError)
    socket.setEncoding("utf8")
    socket.on("data", (/** @type {string} */ chunk) => {
      for (const line of reader.push(chunk)) {
        const response = Protocol.decodeResponse(line)
        if (response === undefined) {
          print("stderr", `tezt-cloud: internal error: not a control response: ${line.slice(0, 200)}\n`)
          refused = 1
          socket.destroy()
          break
        }
        onResponse(response)
      }
      flush()
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      process.off("SIGINT", onSignal)
      process.off("SIGTERM", onSignal)
      process.stdout.off("error", onOutputError)
      process.stderr.off("error", onOutputError)
      if (refused !== undefined) return resolve(refused)
      if (accepted === undefined) return resolve(undefined)
      for (const agent of accepted) {
        if (!codes.has(agent)) {
          print("stderr", `[${agent}] error: the run ended before the command did\n`)
          codes.set(agent, Protocol.agentErrorCode)
        }
      }
      flush()
      resolve(Protocol.worstCode(codes.values()))
    })
    socket.write(Protocol.encode({ argv: invocation.argv, agents: invocation.agents }))
  })

/**
 * Runs `argv` through the live run's control socket when it applies; `undefined` means the full CLI must.
 *
 * @param {ReadonlyArray<string>} argv the arguments, without node and the script
 * @param {Record<string, string | undefined>} env
 * @returns {Promise<number | undefined>} the exit code
 */
export const run = async (argv, env) => {
  if (env.TEZT_CLOUD_COLD !== undefined && env.TEZT_CLOUD_COLD !== "" && env.TEZT_CLOUD_COLD !== "0") {
    return undefined
  }
  const invocation = parse(argv)
  if (invocation === undefined) return undefined
  const file = socketPath(invocation, env)
  if (file === undefined) return undefined
  const socket = await connect(file)
  return socket === undefined ? undefined : exchange(socket, invocation)
}
