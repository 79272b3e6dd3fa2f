/**
 * What crosses between this machine and the proxy, over the ssh connection to it: the bundle (skipped when the
 * proxy has its version), a run's files (workspace, scenario files, the namespace's key, the 0600 secrets file,
 * the server's configuration: all on the channel's input, none on a command line), the server's start, and the
 * run's artifacts at its end.
 */
import { type CloudConfig, CloudError } from "@tezt-cloud/core"
import { SshClient } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Bundle from "./Bundle.ts"
import * as Launch from "./Launch.ts"
import * as ProxyImage from "./ProxyImage.ts"
import * as Protocol from "./ProxyProtocol.ts"
import * as ProxyServer from "./ProxyServer.ts"

/** The proxy as shipping sees it: the connection, the namespace's files there, the remote user's home. */
export interface Target {
  readonly connection: SshClient.Connection
  readonly files: Protocol.Layout
  readonly home: string
}

const failure = (what: string) => (e: { readonly message: string }) => CloudError.service(what, e.message)

/** Runs a shell line on the proxy; a non-zero exit is an error naming `what`. */
export const remote = (
  connection: SshClient.Connection,
  what: string,
  line: string,
  stdin?: AsyncIterable<Uint8Array>
) =>
  connection.run(line, stdin).pipe(
    Effect.mapError(failure(`proxy: ${what}`)),
    Effect.flatMap((r) =>
      r.code === 0
        ? Effect.succeed(r.stdout)
        : Effect.fail(CloudError.service(`proxy: ${what}`, `exited with ${r.code}: ${r.stderr.trim()}`))
    )
  )

const q = SshClient.quote

/**
 * The remote user's home, and whether the proxy has the bundle of `hash` there: one round trip (its path is under
 * the home).
 */
export const probe = (connection: SshClient.Connection, hash: string) =>
  remote(
    connection,
    "home",
    `h=$HOME; printf '%s\n' "$h"; ` +
      `test -f "$h"/${q(path.posix.relative("/", Protocol.bundleDir("/", hash)))}/.complete && echo yes; true`
  ).pipe(Effect.map((out) => {
    const [home = "", present] = out.split("\n")
    return { home, present: present === "yes" }
  }))

/**
 * The bundle on the proxy: nothing to do when it has this version (`present`, see `probe`), else the cached
 * tarball streamed there.
 */
export const bundle = (connection: SshClient.Connection, home: string, made: Bundle.Bundle, present: boolean) =>
  Effect.gen(function*() {
    const dir = Protocol.bundleDir(home, made.hash)
    if (present) {
      yield* Effect.logInfo(`proxy: the orchestrator is already there (${made.hash})`)
      return dir
    }
    const tarball = yield* Bundle.tarball(made)
    const size = fs.statSync(tarball).size
    yield* Effect.logInfo(`proxy: shipping the orchestrator (${(size / 1e6).toFixed(1)} MB)`)
    yield* remote(
      connection,
      "bundle upload",
      `set -e; umask 077; d=${q(dir)}; p="$d.part.$$"; rm -rf "$p"; mkdir -p "$p"; tar -xzf - -C "$p"; ` +
        `rm -rf "$d"; mv "$p" "$d"; touch "$d/.complete"; ` +
        // Older bundles go: the namespaces' workspaces are hard-linked copies, which keep their files.
        `for b in "$(dirname "$d")"/*; do [ "$b" = "$d" ] || case "$b" in *.part.*) ;; *) rm -rf "$b" ;; esac; done`,
      fileBytes(tarball)
    )
    return dir
  })

/** What the orchestrator on the proxy needs of the inner backend, besides the user's options. */
export interface Remote {
  /** Its mode, appended to the user's options (`--localhost`; on GCP, the project). */
  readonly args: ReadonlyArray<string>
  /** Its environment (never a secret: the API's endpoint, the zone). */
  readonly env: Readonly<Record<string, string>>
  /** Its secrets (credentials), to the 0600 file with the run's. */
  readonly secrets: Readonly<Record<string, string>>
}

/** What a run ships besides the bundle. */
export interface Run {
  readonly config: CloudConfig.CloudConfig
  readonly run: Omit<Launch.Run, "namespace">
  /** `$TEZT_CLOUD_SCENARIOS` of the command. */
  readonly scenarios: string | undefined
  readonly remote: Remote
}

/**
 * The shell line that makes a namespace's workspace from the bundle at `bundleDir`: a hard-linked copy of it; or,
 * when the bundle came with the proxy's image (`ProxyImage.imageMarker`: a read-only layer, where a hard link
 * copies the file), a directory of symbolic links to its top-level entries, but those that hold scenario files
 * (`scenarioFiles`, relative paths), which are hard-linked copies (those files are added there, not in the bundle).
 */
export const workspace = (bundleDir: string, dir: string, scenarioFiles: ReadonlyArray<string>) => {
  const copied = [...new Set(scenarioFiles.map((f) => f.split("/")[0]!))].filter((top) => top !== "")
  const b = q(bundleDir)
  const w = q(dir)
  const entry = copied.length === 0
    ? `ln -s "$e" ${w}/`
    : `case "$(basename "$e")" in ${copied.map(q).join("|")}) cp -al "$e" ${w}/ ;; *) ln -s "$e" ${w}/ ;; esac`
  return `if [ -e ${q(`${bundleDir}/${ProxyImage.imageMarker}`)} ]; then mkdir ${w}; ` +
    `for e in ${b}/* ${b}/.[!.]*; do [ -e "$e" ] || continue; ${entry}; done; else cp -al ${b} ${w}; fi`
}

/**
 * The shell line that writes `files` (each a shell word naming the file, and its content), in their order, from the
 * channel's input, each taking its length of it (`head -c`, which reads no further): their lengths only are on the
 * command line; and that input. What follows the files in the input is the line's next command's.
 */
export const writeFiles = (files: ReadonlyArray<{ readonly target: string; readonly content: string }>) => ({
  line: files.map((f) => `head -c ${Buffer.byteLength(f.content)} > ${f.target}`).join("; "),
  input: Buffer.concat(files.map((f) => Buffer.from(f.content)))
})

/**
 * A file's bytes, opened only when the channel reads this far: a stream made beforehand would open the file on
 * its own, and its error (the file removed by an interrupted run's release, before the channel read it) would have
 * no listener and end the process.
 */
async function* fileBytes(file: string): AsyncGenerator<Uint8Array> {
  yield* fs.createReadStream(file)
}

async function* concat(head: Buffer, tail: Buffer | undefined) {
  yield head
  if (tail !== undefined) yield tail
}

/**
 * The namespace's files on the proxy, in one remote command: its workspace (the bundle, hard-linked, and the
 * scenario's files), the namespace's key, the secrets, the options only a config file carries, the server's
 * configuration (the files, then the scenario files' tarball, on the channel's input).
 */
export const run = (target: Target, bundleDir: string, options: Run) =>
  Effect.gen(function*() {
    const { config } = options
    const { connection, files } = target
    const scenarios = yield* Bundle.scenarioFiles(options.scenarios)
    const written: Array<{ readonly target: string; readonly content: string }> = []
    // The namespace's key, where the orchestrator there looks for it (it reaches agents with it).
    const key = config.sshPrivateKey ?? path.join(os.homedir(), ".ssh", `${config.namespace}-tf`)
    if (fs.existsSync(key)) {
      written.push({ target: `"$HOME/.ssh/"${q(`${config.namespace}-tf`)}`, content: fs.readFileSync(key, "utf8") })
    }
    written.push({
      target: q(files.secrets),
      content: JSON.stringify(Launch.secrets(config, options.remote.secrets))
    })
    const extra = Launch.fileOnly(options.run.input)
    const configFile = Object.keys(extra).length === 0 ? undefined : path.posix.join(files.dir, "options.json")
    if (configFile !== undefined) written.push({ target: q(configFile), content: JSON.stringify(extra) })
    const server: ProxyServer.Config = {
      namespace: config.namespace,
      node: path.posix.join(files.workspace, Bundle.nodePath),
      argv: [
        path.posix.join(files.workspace, Bundle.cliEntry),
        ...Launch.args({ ...options.run, namespace: config.namespace }, files, configFile, options.remote.args)
      ],
      cwd: files.workspace,
      env: Launch.environment({
        home: target.home,
        namespace: config.namespace,
        files,
        scenarios: scenarios.modules,
        extra: options.remote.env
      })
    }
    written.push({ target: q(files.config), content: ProxyServer.encodeConfig(server) })
    const { line, input } = writeFiles(written)
    // The scenario files' tarball is made in memory, whole, before the channel opens.
    const tarball = scenarios.files.length === 0 ? undefined : yield* Bundle.pack(Bundle.repoRoot, scenarios.files)
    yield* remote(
      connection,
      "namespace files",
      `set -e; umask 077; rm -rf ${q(files.dir)}; mkdir -p ${q(files.dir)} ${q(files.state)} "$HOME/.ssh"; ` +
        `${workspace(bundleDir, files.workspace, scenarios.files)}; ${line}` +
        (tarball === undefined ? "" : `; tar -xzf - -C ${q(files.workspace)}`),
      concat(input, tarball)
    )
  })

/** How long the server may take to answer once started: a safety net, the wait itself ends on its signal. */
const serverStartSeconds = 120

/**
 * Starts the server, detached from the session, and waits until it answers: the start command ends when the
 * server says `listening` on the descriptor it was given, or closes it by dying; then `answers` confirms it on
 * the socket.
 */
export const startServer = <E extends { readonly message: string }>(
  target: Target,
  answers: Effect.Effect<unknown, E>,
  /** The server's module in the workspace (`Bundle.server`). */
  server: string = Bundle.serverEntry
) =>
  Effect.gen(function*() {
    const { connection, files } = target
    const node = path.posix.join(files.workspace, Bundle.nodePath)
    const serve = path.posix.join(files.workspace, server)
    // The server's modules load from the bundle's compile cache (filled when a proxy image was made).
    const cache = path.posix.join(files.workspace, Bundle.compileCache)
    const command = `setsid -f ${q(node)} ${q(serve)} ${q(files.dir)}`
    const failed = (why: string) =>
      remote(connection, "server log", `tail -n 20 ${q(files.serverLog)} 2>/dev/null || true`).pipe(
        Effect.orElseSucceed(() => ""),
        Effect.flatMap((log) =>
          CloudError.service("proxy", `its server did not start: ${why}${log.trim() === "" ? "" : `\n${log.trim()}`}`)
        )
      )
    // Descriptor 3 of the server is the pipe `head` reads: its first line, or its end if the server dies.
    const said = yield* remote(
      connection,
      "server start",
      `cd ${q(files.dir)} && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$HOME" LANG=C.UTF-8 ` +
        `NODE_COMPILE_CACHE=${q(cache)} ${ProxyServer.readyFdVariable}=3 ${command} ` +
        `3>&1 < /dev/null >> ${q(files.serverLog)} 2>&1 | head -n 1`
    ).pipe(
      Effect.timeoutOrElse({
        duration: `${serverStartSeconds} seconds`,
        orElse: () => failed(`it did not answer within ${serverStartSeconds} s`)
      })
    )
    if (said.trim() !== ProxyServer.readyLine) return yield* failed("it exited before it answered")
    yield* answers.pipe(
      Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.fail(new Error("no answer in 30 s")) }),
      Effect.catch((e) => failed(`it said it listens, but its socket does not answer: ${e.message}`))
    )
  })

/**
 * Fetches the run's artifacts from the proxy into `dir`: the proxy's `tar` output goes straight into a `tar` here,
 * started on its first bytes (none when the run has no artifacts there), with no tarball on this machine: a
 * forced exit or a `kill -9` during the fetch leaves nothing in the temporary directory.
 */
export const artifacts = (target: Target, dir: string) =>
  Effect.gen(function*() {
    const { connection, files } = target
    let tar: child.ChildProcess | undefined
    let stderr = ""
    // The channel waits while the local tar is behind (memory stays bounded whatever the artifacts' size), and
    // reads on once it drained or died.
    let flow: SshClient.Flow | undefined
    let paused = false
    const readOn = () => {
      if (!paused) return
      paused = false
      flow?.resume()
    }
    const extract = () => {
      fs.mkdirSync(dir, { recursive: true })
      const proc = child.spawn("tar", ["-xzf", "-", "-C", dir], { stdio: ["pipe", "ignore", "pipe"] })
      proc.stderr!.on("data", (d: Buffer) => void (stderr += d.toString()))
      // A tar that died: its exit says why.
      proc.stdin!.on("error", () => {})
      proc.stdin!.on("drain", readOn)
      proc.on("close", readOn)
      return proc
    }
    const write = (chunk: Buffer) => {
      const proc = (tar ??= extract())
      if (!proc.stdin!.write(chunk) && proc.exitCode === null && proc.signalCode === null && !paused) {
        paused = true
        flow?.pause()
      }
    }
    const ended = (proc: child.ChildProcess) =>
      Effect.callback<number | null>((resume) => {
        if (proc.exitCode !== null || proc.signalCode !== null) resume(Effect.succeed(proc.exitCode))
        else proc.once("close", (code: number | null) => resume(Effect.succeed(code)))
        proc.stdin!.end()
      })
    const exit = yield* connection.exec(
      `test -d ${q(files.artifacts)} || exit 3; tar -czf - -C ${q(files.artifacts)} .`,
      { onStdout: write, onStderr: () => {}, onFlow: (f) => (flow = f) }
    ).pipe(
      Effect.mapError(failure("proxy: artifacts")),
      Effect.onExit((end) => Effect.sync(() => end._tag === "Failure" && tar?.kill("SIGKILL")))
    )
    if (exit.code === 3) return
    const extracted = tar === undefined ? 0 : yield* ended(tar)
    if (exit.code !== 0) return yield* CloudError.service("proxy: artifacts", `tar exited with ${exit.code}`)
    if (extracted !== 0) {
      return yield* CloudError.service("proxy: artifacts", `tar failed: ${stderr.trim() || `exit ${extracted}`}`)
    }
    yield* Effect.logInfo(`proxy: the run's artifacts are in ${dir}`)
  })
