// @ts-check
/**
 * The fast path of `tezt-cloud agents exec`: when the live run of the namespace serves its control socket
 * (`<state-dir>/<ns>/control.sock`, core's `AgentsControl`), send it the command and print what comes back,
 * without loading the CLI. The run's agents are already connected, so a warm fan-out costs one Node start-up and
 * one round trip through the run.
 *
 * **Details**
 *
 * Start-up is the whole cost here, so this is plain CommonJS with no dependency but Node's built-ins and core's
 * `AgentsControlProtocol` (CommonJS too). Measured on the 2-core development machine, in CPU per process: a bare
 * `node -e 0` takes ~30 ms; this module, run directly (`node AgentsExecClient.cjs agents exec …`, what the
 * `tezt-cloud` launcher does when the run's socket is there), ~10 ms more; the same code as ES modules ~8 ms more
 * again (the ES loader, and each `import` of a built-in evaluates all of its lazy parts: `node:fs` loads its
 * streams and promises); importing `effect` ~0.5 s; the first `.ts` module ~50 ms (Node's type stripper).
 *
 * It parses exactly the flags of `agents exec` (`--tezt-cloud NS`, `--agent NAME`…, then `--` and the command),
 * takes the namespace from `--tezt-cloud` or `$TEZT_CLOUD` as the full CLI does, and finds the socket, speaks
 * and frames the protocol with core's `AgentsControlProtocol`, the module the server uses. It prints what the
 * full CLI prints: `[agent] line` on stdout or stderr as the agent wrote it, `[agent] error: …` for an agent
 * whose command could not run, and exits with the worst agent's code (255 for an error). Anything else (another
 * command, `--help`, no socket, a stale socket after a `kill -9` of the run, `TEZT_CLOUD_COLD=1`) returns
 * `undefined`: the full CLI takes over (`bin.mjs`, or `main` here), and says what is wrong if anything is.
 *
 * **Gotchas**
 *
 * Nothing here may load `effect`, an ES module or a `.ts` module, directly or not (a test checks it). Once the
 * run has accepted the request, the command may be running: there is no fallback from then on.
 */
const Protocol = require("@tezt-cloud/core/AgentsControlProtocol")
const net = require("node:net")

/**
 * @typedef {{
 *   readonly namespace: string | undefined
 *   readonly agents: ReadonlyArray<string>
 *   readonly argv: ReadonlyArray<string>
 * }} Invocation
 * @typedef {import("@tezt-cloud/core/AgentsControlProtocol").Response} Response
 */

/**
 * `agents exec [--tezt-cloud NS] [--agent NAME]… -- CMD…`, or `undefined` for anything else.
 *
 * @param {ReadonlyArray<string>} argv
 * @returns {Invocation | undefined}
 */
const parse = (argv) => {
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
const socketPath = (invocation, env) => {
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
 * The process's stdout and stderr, each made on first use (making one costs a stream, and `true` on every agent
 * prints nothing), with `onError` on it until `close`.
 *
 * @param {() => void} onError
 */
const outputs = (onError) => {
  /** @type {Map<"stdout" | "stderr", NodeJS.WriteStream>} */
  const opened = new Map()
  return {
    /** @param {"stdout" | "stderr"} name @param {string} text */
    write: (name, text) => {
      let stream = opened.get(name)
      if (stream === undefined) {
        stream = process[name]
        stream.once("error", onError)
        opened.set(name, stream)
      }
      stream.write(text)
    },
    close: () => {
      for (const stream of opened.values()) stream.off("error", onError)
    }
  }
}

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
    // Our reader went away (`| head`): stop the commands too, as a closed pipe stops a local command.
    const output = outputs(() => {
      socket.destroy()
      process.exit(1)
    })
    // The lines of one stream in a row are written at once, per chunk read; a switch of stream flushes, to keep
    // their order.
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
      output.write(pendingStream, pending)
      pending = ""
    }
    /** @param {Response} r */
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
      print("stderr", "\ntezt-cloud: interrupted\n")
      flush()
      process.exit(130)
    }
    process.once("SIGINT", onSignal)
    process.once("SIGTERM", onSignal)
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
      output.close()
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
const run = async (argv, env) => {
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

/**
 * `node AgentsExecClient.cjs ARGS…`, what the `tezt-cloud` launcher runs for `agents exec` when the run's socket
 * is there: the fast path, else (a stale socket) the full CLI in this process, as `bin.mjs` does.
 */
const main = async () => {
  const code = await run(process.argv.slice(2), process.env)
  if (code !== undefined) {
    process.exitCode = code
    return
  }
  const CliBuild = await import("./CliBuild.mjs")
  await CliBuild.runCli(process.env)
}

module.exports = { parse, socketPath, run }

if (require.main === module) void main()
