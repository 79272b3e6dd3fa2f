/**
 * Agents' output as lines, in bounded memory: bytes are split at `\n` (a `\r` before it is dropped), decoded as
 * UTF-8, and a line never grows past `maxLineBytes`. Output without newlines (a binary, a progress bar that only
 * uses `\r`, a hostile command) would otherwise be kept whole until it ends, and could exhaust the orchestrator's
 * memory.
 *
 * **Details**
 *
 * - A line longer than `maxLineBytes` (1 MiB by default) is delivered in pieces of at most `maxLineBytes` bytes,
 *   each as a line of its own, cut between two UTF-8 characters: nothing is dropped, and joined again the pieces
 *   are the line.
 * - A multi-byte character split between two chunks is decoded whole. The last line, without a final newline,
 *   is delivered at the end.
 * - `splitter` is for callbacks (a connection's chunks); `split` for a `Stream` of bytes.
 */
import { Stream } from "effect"

/** The longest line delivered whole. */
export const defaultMaxLineBytes = 1024 * 1024

export interface Splitter {
  /** Takes a chunk of output; calls `onLine` for each line it completes. */
  (chunk: Uint8Array): void
  /** The output has ended: delivers what is left as a last line. */
  readonly end: () => void
}

/** Where a piece of at most `max` bytes of `bytes` ends: never inside a UTF-8 character (unless it is not UTF-8). */
const cutAt = (bytes: Uint8Array, max: number) => {
  let cut = max
  // Continuation bytes are 10xxxxxx: back up to the start of the character they belong to.
  while (cut > max - 4 && cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--
  return cut > max - 4 && cut > 0 ? cut : max
}

const decode = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8")

/** A splitter that calls `onLine` for each line of the output it is given. */
export const splitter = (onLine: (line: string) => void, maxLineBytes: number = defaultMaxLineBytes): Splitter => {
  // The current line's bytes so far: never more than `maxLineBytes`.
  let pending: Array<Uint8Array> = []
  let size = 0
  const take = (bytes: Uint8Array) => {
    if (bytes.length === 0) return
    pending.push(bytes)
    size += bytes.length
  }
  const flush = (): Uint8Array => {
    const line = pending.length === 1 ? pending[0]! : Buffer.concat(pending, size)
    pending = []
    size = 0
    return line
  }
  /** Adds part of a line; while the line is longer than `maxLineBytes`, its first piece is delivered. */
  const add = (part: Uint8Array) => {
    take(part)
    if (size <= maxLineBytes) return
    let rest = flush()
    while (rest.length > maxLineBytes) {
      const cut = cutAt(rest, maxLineBytes)
      onLine(decode(rest.subarray(0, cut)))
      rest = rest.subarray(cut)
    }
    take(rest)
  }
  /** Delivers a line's text (its bytes were at most `maxLineBytes`), without the `\r` of a `\r\n`. */
  const line = (text: string) => onLine(text.endsWith("\r") ? text.slice(0, -1) : text)
  /** Ends the current line at a newline. */
  const complete = (part: Uint8Array) => {
    add(part)
    line(size === 0 ? "" : decode(flush()))
  }
  const push = (chunk: Uint8Array) => {
    let start = 0
    if (size > 0) {
      // The line begun in an earlier chunk.
      const first = chunk.indexOf(0x0a)
      if (first < 0) return add(chunk)
      complete(chunk.subarray(0, first))
      start = first + 1
    }
    const last = chunk.lastIndexOf(0x0a)
    if (last >= start) {
      if (last - start <= maxLineBytes) {
        // The common case: whole lines, none past the bound, decoded at once.
        for (const text of decode(chunk.subarray(start, last)).split("\n")) line(text)
      } else {
        for (
          let newline = chunk.indexOf(0x0a, start);
          newline >= 0 && newline <= last;
          newline = chunk.indexOf(0x0a, start)
        ) {
          complete(chunk.subarray(start, newline))
          start = newline + 1
        }
      }
      start = last + 1
    }
    if (start < chunk.length) add(chunk.subarray(start))
  }
  return Object.assign(push, {
    end: () => {
      if (size > 0) onLine(decode(flush()))
    }
  })
}

/** The lines of a stream of bytes (see the module's details). */
export const split =
  (maxLineBytes: number = defaultMaxLineBytes) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<string, E, R> =>
    Stream.mapAccum(self, () => {
      const lines: Array<string> = []
      return { lines, splitter: splitter((line) => lines.push(line), maxLineBytes) }
    }, (state, chunk) => {
      state.splitter(chunk)
      return [state, state.lines.splice(0)] as const
    }, {
      onHalt: (state) => {
        state.splitter.end()
        return state.lines.splice(0)
      }
    })
