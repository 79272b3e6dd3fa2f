/**
 * Files and directories from an agent to this machine, the reverse of `Runner.copy`, over nothing but the
 * agent's `Runner.exec`: one implementation for every backend (process sandboxes, ssh hosts, containers, GCP VMs,
 * the proxy's agents). `Agent.fetch` and `tezt-cloud agents fetch` use it; so does the run, to keep the daemons'
 * logs in the artifacts dir before the agents go.
 *
 * **Details**
 *
 * The agent runs one `sh` script: a file is sent through `base64`, a directory through `tar -cf - . | base64`
 * (so the agent needs `base64`, and `tar` for directories); the lines are decoded here as they arrive and written
 * to a temporary name that is renamed into place once complete. The path means what it means to `exec`: an
 * absolute path the agent's sandbox has is its own (`Sandbox.mapArgv`), a relative one is under the agent's home.
 * The transfer is `quiet`: its lines are not run events, so neither the terminal nor `events.jsonl` see them.
 *
 * With `tailBytes`, only the last bytes of a file come, after a marker line saying how many were dropped
 * (`CappedFile.droppedMarker`): how a chatty daemon's log is kept bounded.
 *
 * A directory's links and special files are skipped, and nothing is written outside the local directory
 * whatever the agent sends.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { droppedMarker } from "./CappedFile.ts"
import * as CloudError from "./CloudError.ts"
import * as Untar from "./internal/untar.ts"
import type { Runner } from "./Runner.ts"

export interface FetchOptions {
  /** Only the last `tailBytes` bytes of a file (a directory comes whole). */
  readonly tailBytes?: number | undefined
}

export interface Fetched {
  /** Where it is on this machine. */
  readonly local: string
  readonly kind: "file" | "directory"
  /** Bytes written (a directory: the archive's size). */
  readonly bytes: number
  /** Bytes of the file left out by `tailBytes`. */
  readonly dropped: number
}

/**
 * `sh -c script sh PATH TAIL`: a first line `f SIZE` or `d`, then the content in base64; exit 3 with why on
 * stderr when PATH is neither a readable file nor a directory. A failing `tar` or `tail` fails the script (its
 * status comes back through fd 4, as a pipeline's own is the last command's).
 */
export const script = `p=$1; n=$2
b64() { { { "$@"; echo $? >&4; } | base64 >&3; } 4>&1; }
exec 3>&1
if [ -d "$p" ]; then
  cd "$p" || exit 3
  echo d
  s=$(b64 tar -cf - .)
elif [ -f "$p" ] && [ -r "$p" ]; then
  echo "f $(wc -c <"$p")"
  if [ "$n" -gt 0 ]; then s=$(b64 tail -c "$n" "$p"); else s=$(b64 cat "$p"); fi
elif [ -e "$p" ]; then
  echo "not a readable file nor a directory" >&2; exit 3
else
  echo "no such file or directory" >&2; exit 3
fi
[ "$s" = 0 ] || exit 4`

/** Where `remote` goes by default: `<dir>/<its basename>`. */
export const defaultLocal = (dir: string, remote: string): string =>
  path.join(dir, path.posix.basename(path.posix.resolve("/", remote)) || "root")

/** Fetches `remote` from `agent` (through `runner`) to `local`. */
export const fetch = Effect.fn("Fetch.fetch")(function*(
  agent: string,
  runner: Pick<Runner, "exec">,
  remote: string,
  local: string,
  options?: FetchOptions
) {
  yield* Effect.annotateCurrentSpan({ agent, remote, local })
  const failed = (message: string, cause?: unknown) =>
    CloudError.copy(agent, remote, message, cause === undefined ? undefined : { cause })
  const partial = `${local}.part-${process.pid}`
  let header: string | undefined
  let kind: "file" | "directory" | undefined
  let fd: number | undefined
  let untar: Untar.Untar | undefined
  let pending = ""
  let bytes = 0
  let size = 0
  let error: unknown
  const write = (data: Buffer) => {
    bytes += data.length
    if (fd !== undefined) fs.writeSync(fd, data)
    else untar?.push(data)
  }
  const start = (line: string) => {
    header = line
    fs.mkdirSync(path.dirname(local), { recursive: true })
    if (line === "d") {
      kind = "directory"
      fs.rmSync(partial, { recursive: true, force: true })
      untar = Untar.make(partial)
    } else {
      kind = "file"
      size = Number(line.slice(2))
      fd = fs.openSync(partial, "w", 0o644)
      const kept = options?.tailBytes ?? 0
      if (kept > 0 && size > kept) fs.writeSync(fd, droppedMarker(size - kept, kept))
    }
  }
  const onLine = ({ line, stream }: { readonly line: string; readonly stream: "stdout" | "stderr" }) =>
    Effect.sync(() => {
      if (stream === "stderr" || error !== undefined) return
      try {
        if (header === undefined) return start(line)
        // base64 lines are whole 4-character groups; a remainder waits for the next line.
        const all = pending + line
        const whole = all.length - (all.length % 4)
        pending = all.slice(whole)
        if (whole > 0) write(Buffer.from(all.slice(0, whole), "base64"))
      } catch (e) {
        error = e
      }
    })
  const cleanup = Effect.sync(() => {
    if (fd !== undefined) fs.closeSync(fd)
    fd = undefined
    fs.rmSync(partial, { recursive: true, force: true })
  })
  const result = yield* runner.exec("/bin/sh", ["-c", script, "sh", remote, String(options?.tailBytes ?? 0)], {
    onLine,
    quiet: true
  }).pipe(Effect.onError(() => cleanup))
  if (error !== undefined) {
    yield* cleanup
    return yield* failed(`cannot write ${local}: ${CloudError.messageOf(error)}`, error)
  }
  if (result.exitCode !== 0 || kind === undefined) {
    yield* cleanup
    const why = result.stderr.trim().split("\n").at(-1) ?? ""
    return yield* failed(
      result.exitCode === 3
        ? why
        : `the transfer exited with code ${result.exitCode}${why === "" ? "" : `: ${why}`} ` +
          `(the agent needs base64, and tar for a directory)`
    )
  }
  return yield* Effect.try({
    try: (): Fetched => {
      if (pending !== "") write(Buffer.from(pending, "base64"))
      if (fd !== undefined) fs.closeSync(fd)
      fd = undefined
      untar?.end()
      // A file replaces a file there; a directory is never merged into, nor replaces, one there.
      if (kind === "directory" && fs.existsSync(local)) {
        throw new Error("it exists already: give a local path that does not exist yet")
      }
      fs.renameSync(partial, local)
      const kept = options?.tailBytes ?? 0
      return { local, kind: kind!, bytes, dropped: kind === "file" && kept > 0 ? Math.max(0, size - kept) : 0 }
    },
    catch: (e) => failed(`cannot write ${local}: ${CloudError.messageOf(e)}`, e)
  }).pipe(Effect.tapError(() => cleanup))
})
