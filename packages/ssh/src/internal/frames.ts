/**
 * The executor's framing (see executor.pl): a frame is a type byte, a request id (u32 BE), a payload length
 * (u32 BE) and the payload. What comes from the host is not trusted: every frame is checked (a known type, a
 * length within that type's bound, a payload of the right form) before anything is allocated for it, and the
 * first frame that fails the check ends the stream with a one-line reason.
 */

/** Header bytes: type, id, length. */
export const headerBytes = 9

/** A frame to the executor. */
export const encode = (type: string, id: number, payload: Buffer | string = ""): Buffer => {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload
  const header = Buffer.alloc(headerBytes)
  header.write(type, 0, "latin1")
  header.writeUInt32BE(id, 1)
  header.writeUInt32BE(body.length, 5)
  return Buffer.concat([header, body])
}

/** The most output one `O`/`E` frame carries: the executor reads 64 KiB at a time. */
export const maxOutputPayload = 64 * 1024

/** The longest payload of each frame type the executor sends, and what its payload must be. */
const rules: Record<string, { readonly max: number; readonly form?: RegExp }> = {
  // Ready: the executor's pid. Started: the command's pid. Exit: the command's code (0-255).
  R: { max: 10, form: /^[1-9]\d{0,9}$/ },
  S: { max: 10, form: /^[1-9]\d{0,9}$/ },
  X: { max: 3, form: /^(?:\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5])$/ },
  O: { max: maxOutputPayload },
  E: { max: maxOutputPayload },
  A: { max: 0 },
  // Failed to start: a short message.
  F: { max: 4096 }
}

/** Why the bytes `type`, `length` (and `payload`, once there) are not a frame, or `undefined`. */
const problem = (type: number, length: number, payload?: Buffer): string | undefined => {
  const letter = String.fromCharCode(type)
  const rule = rules[letter]
  const name = type >= 0x21 && type <= 0x7e ? `'${letter}'` : `0x${type.toString(16).padStart(2, "0")}`
  if (rule === undefined) return `a frame of unknown type ${name}`
  if (length > rule.max) return `a frame of type ${name} of ${length} bytes (at most ${rule.max})`
  if (payload !== undefined && rule.form !== undefined && !rule.form.test(payload.toString("latin1"))) {
    return `a frame of type ${name} whose payload is not a number in range`
  }
  return undefined
}

/**
 * Splits a byte stream into checked frames. After the first bad frame, `onCorrupt` is called once with the
 * reason and the rest of the stream is ignored.
 */
export const parser = (
  onFrame: (type: string, id: number, payload: Buffer) => void,
  onCorrupt: (reason: string) => void
) => {
  let pending: Buffer = Buffer.alloc(0)
  // Chunks of a frame's payload that cannot complete it yet: joined once it is all there (not on every chunk).
  let waiting: Array<Buffer> = []
  let waitingBytes = 0
  let need = 0
  let corrupt = false
  return (chunk: Buffer) => {
    if (corrupt) return
    if (pending.length + waitingBytes + chunk.length < need) {
      waiting.push(chunk)
      waitingBytes += chunk.length
      return
    }
    pending = Buffer.concat([pending, ...waiting, chunk])
    waiting = []
    waitingBytes = 0
    need = 0
    let offset = 0
    while (pending.length - offset >= headerBytes) {
      const type = pending[offset]!
      const id = pending.readUInt32BE(offset + 1)
      const length = pending.readUInt32BE(offset + 5)
      // Checked before waiting for the payload: a huge length never makes us keep (or allocate) that much.
      const early = problem(type, length)
      const complete = pending.length - offset >= headerBytes + length
      const payload = early === undefined && complete
        ? Buffer.from(pending.subarray(offset + headerBytes, offset + headerBytes + length))
        : undefined
      const bad = early ?? (payload === undefined ? undefined : problem(type, length, payload))
      if (bad !== undefined) {
        corrupt = true
        pending = Buffer.alloc(0)
        return onCorrupt(bad)
      }
      if (payload === undefined) {
        need = headerBytes + length
        break
      }
      onFrame(String.fromCharCode(type), id, payload)
      offset += headerBytes + length
    }
    pending = offset === pending.length ? Buffer.alloc(0) : pending.subarray(offset)
  }
}
