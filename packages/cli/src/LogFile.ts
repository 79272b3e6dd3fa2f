/**
 * `--log-file FILE`: the run's own log (the lines a terminal shows, plain, with every event) appended to a file,
 * rotated like Tezt cloud's logrotate setup: once a day (UTC) or past `maxBytes` (200 MiB), keeping `--log-rotation`
 * old copies (`FILE.1` the newest; 0: never rotated). An external rotator (logrotate without `copytruncate`) moves
 * the file and sends SIGUSR1: the file is then reopened under its name.
 *
 * **Details**
 *
 * SIGUSR1, not SIGHUP as in Tezt cloud: here SIGHUP (a closed terminal, a lost ssh session) means "tear down", as
 * SIGINT and SIGTERM do (`Shutdown`). A write that fails (a full disk) stops the log file with a warning on the
 * terminal, never the run.
 */
import { CloudError, type RunEvents } from "@tezt-cloud/core"
import { Effect, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Terminal from "./Terminal.ts"

/** The size past which the file is rotated, as Tezt cloud's logrotate `maxsize`. */
export const defaultMaxBytes = 200 * 1024 * 1024

/** The signal that reopens the file. */
export const reopenSignal: NodeJS.Signals = "SIGUSR1"

export interface LogFile {
  write(text: string): void
  /** Closes and opens the file again under its name (after an external rotator moved it). */
  reopen(): void
  close(): void
}

const day = (at: number) => new Date(at).toISOString().slice(0, 10)

/** Opens `file` for appending; `keep` old copies (0: no rotation); `now` for the day. */
export const make = (
  file: string,
  options: {
    readonly keep: number
    readonly maxBytes?: number | undefined
    readonly now?: (() => number) | undefined
    readonly onError?: ((message: string) => void) | undefined
  }
): LogFile => {
  const now = options.now ?? Date.now
  const maxBytes = options.maxBytes ?? defaultMaxBytes
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true })
  let fd: number | undefined
  let size = 0
  let opened = day(now())
  const open = () => {
    fd = fs.openSync(file, "a", 0o600)
    size = fs.fstatSync(fd).size
    opened = day(now())
  }
  const closeFd = () => {
    if (fd !== undefined) fs.closeSync(fd)
    fd = undefined
  }
  const rotate = () => {
    closeFd()
    fs.rmSync(`${file}.${options.keep}`, { force: true })
    for (let i = options.keep - 1; i >= 1; i--) {
      if (fs.existsSync(`${file}.${i}`)) fs.renameSync(`${file}.${i}`, `${file}.${i + 1}`)
    }
    if (fs.existsSync(file)) fs.renameSync(file, `${file}.1`)
    open()
  }
  let failed = false
  const guard = (action: () => void) => {
    if (failed) return
    try {
      action()
    } catch (e) {
      failed = true
      closeFd()
      options.onError?.(`${file}: ${e instanceof Error ? e.message : String(e)}: the log file is no longer written`)
    }
  }
  open()
  return {
    write: (text) =>
      guard(() => {
        const bytes = Buffer.from(text)
        if (options.keep > 0 && size > 0 && (size + bytes.length > maxBytes || day(now()) !== opened)) rotate()
        if (fd === undefined) open()
        fs.writeSync(fd!, bytes)
        size += bytes.length
      }),
    reopen: () =>
      guard(() => {
        closeFd()
        open()
      }),
    close: () => guard(closeFd)
  }
}

/**
 * Writes the run's events into `file` as plain lines for the current scope (from the run's first events on:
 * a new subscriber is replayed them), rotated keeping `keep` copies, reopened on SIGUSR1.
 */
export const attach = (
  events: RunEvents.RunEvents["Service"],
  file: string,
  keep: number
): Effect.Effect<void, CloudError.CloudError, Scope.Scope> =>
  Effect.gen(function*() {
    const opened = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const log = make(file, { keep, onError: (message) => process.stderr.write(`tezt-cloud: ${message}\n`) })
          const reopen = () => log.reopen()
          process.on(reopenSignal, reopen)
          return { log, reopen }
        },
        catch: (e) => CloudError.config("--log-file", `cannot write ${file}: ${CloudError.messageOf(e)}`, { cause: e })
      }),
      ({ log, reopen }) =>
        Effect.sync(() => {
          process.off(reopenSignal, reopen)
          log.close()
        })
    )
    yield* events.subscribe(Terminal.plain({ write: (text) => opened.log.write(text) }))
  })
