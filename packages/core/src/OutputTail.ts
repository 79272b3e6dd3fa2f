/**
 * The tail of a command's output that a `Runner` keeps in its `ExecResult`: the last `max` bytes, held in the
 * chunks they came in (nothing allocated ahead), whatever the command prints; every line still reaches `onLine`.
 */

export interface OutputTail {
  readonly push: (chunk: Uint8Array) => void
  /** The kept bytes as UTF-8 text (a character cut at the start of the tail decodes as U+FFFD). */
  readonly text: () => string
}

export const make = (max: number): OutputTail => {
  const chunks: Array<Uint8Array> = []
  let size = 0
  return {
    push: (chunk) => {
      chunks.push(chunk)
      size += chunk.length
      while (chunks.length > 1 && size - chunks[0]!.length >= max) size -= chunks.shift()!.length
    },
    text: () => {
      // Most commands print nothing on one stream or both: no buffer to join.
      if (size === 0) return ""
      if (chunks.length === 1 && size <= max) {
        const only = chunks[0]!
        return Buffer.from(only.buffer, only.byteOffset, only.byteLength).toString("utf8")
      }
      const all = Buffer.concat(chunks)
      return all.subarray(Math.max(0, all.length - max)).toString("utf8")
    }
  }
}
