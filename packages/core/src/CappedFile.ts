/**
 * A file that never grows past a size cap, keeping the tail: what the run writes of chatty output into the
 * artifacts dir (each agent's commands log), so that 100 agents printing without end cannot fill the disk.
 *
 * **Details**
 *
 * Writes go to `file` until it holds half the cap; it is then renamed to `file.older` (replacing the previous
 * one, whose bytes are dropped) and a new `file` begins. On disk there are never more than `maxBytes` bytes, even
 * if the process is killed. `close` joins the two into `file`: a one-line marker saying how many earlier bytes were
 * dropped (`droppedMarker`), then the last `maxBytes` bytes written, cut at a byte (a character cut in two shows as
 * U+FFFD). A file that never reached the cap is left as written, without marker.
 *
 * The calls are synchronous and throw on a failing disk: callers that must not fail (a sink of the run's events)
 * catch and stop writing.
 */
import * as fs from "node:fs"
import * as path from "node:path"

export interface CappedFile {
  readonly file: string
  /** Appends `chunk` (text as UTF-8). */
  write(chunk: string | Uint8Array): void
  /** Bytes dropped so far (written, then discarded to stay under the cap). */
  readonly dropped: () => number
  /** Joins what is kept into `file` (marker first when bytes were dropped) and closes it; idempotent. */
  close(): void
}

/** The first line of a capped file whose start was dropped. */
export const droppedMarker = (dropped: number, kept: number): string =>
  `[tezt-cloud: ${dropped} earlier bytes dropped, the last ${kept} kept]\n`

/**
 * Appends to `file` (creating its directory), capped at `maxBytes` (at least 2). No descriptor stays open between
 * writes: a run of 1000 agents keeps 1000 of these without holding 1000 files open.
 */
export const make = (file: string, maxBytes: number, mode = 0o600): CappedFile => {
  const cap = Math.max(2, Math.floor(maxBytes))
  const half = Math.ceil(cap / 2)
  const older = `${file}.older`
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.appendFileSync(file, "", { mode })
  let size = fs.statSync(file).size
  let dropped = 0
  let closed = false
  /** Drops the older half, if any. */
  const dropOlder = () => {
    if (!fs.existsSync(older)) return
    dropped += fs.statSync(older).size
    fs.rmSync(older)
  }
  /** The current half becomes the older one; a new current half begins. */
  const rotate = () => {
    dropOlder()
    fs.renameSync(file, older)
    size = 0
  }
  return {
    file,
    write: (chunk) => {
      if (closed) return
      let bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk
      if (bytes.length === 0) return
      if (bytes.length > half) {
        // Only its tail can be kept anyway: the rest goes now, and everything written before it.
        if (size > 0) rotate()
        dropOlder()
        dropped += bytes.length - half
        bytes = bytes.subarray(bytes.length - half)
      } else if (size + bytes.length > half && size > 0) {
        rotate()
      }
      fs.appendFileSync(file, bytes, { mode })
      size += bytes.length
    },
    dropped: () => dropped,
    close: () => {
      if (closed) return
      closed = true
      const hasOlder = fs.existsSync(older)
      if (!hasOlder && dropped === 0) return
      const current = fs.existsSync(file) ? fs.readFileSync(file) : Buffer.alloc(0)
      let kept: Buffer = current
      if (hasOlder) {
        const previous = fs.readFileSync(older)
        const room = Math.max(0, cap - current.length)
        const tail = previous.subarray(Math.max(0, previous.length - room))
        dropped += previous.length - tail.length
        kept = Buffer.concat([tail, current])
      }
      const joined = `${file}.joining`
      fs.writeFileSync(joined, Buffer.concat([Buffer.from(droppedMarker(dropped, kept.length)), kept]), { mode })
      fs.renameSync(joined, file)
      fs.rmSync(older, { force: true })
    }
  }
}
