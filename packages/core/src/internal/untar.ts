/**
 * A streaming tar reader that writes a directory's regular files and subdirectories under a local directory, as
 * the bytes arrive (ustar and GNU tar, long names from GNU `L` entries and pax `path` records). It never writes
 * outside that directory: absolute names, names with `..`, links and special files are skipped (counted), so a
 * hostile archive from an agent can neither escape nor plant a link.
 */
import * as fs from "node:fs"
import * as path from "node:path"

export interface Untar {
  push(chunk: Uint8Array): void
  /** Closes the last file; the number of entries skipped. */
  end(): { readonly files: number; readonly skipped: number }
}

const octal = (field: Buffer) => {
  const text = field.toString("latin1").replace(/\0.*$/s, "").trim()
  return text === "" ? 0 : Number.parseInt(text, 8)
}

const text = (field: Buffer) => {
  const nul = field.indexOf(0)
  return field.subarray(0, nul < 0 ? field.length : nul).toString("utf8")
}

/** `name` under `root`, or `undefined` when it would leave it. */
const inside = (root: string, name: string) => {
  const clean = path.posix.normalize(name.replace(/^(\.\/)+/, ""))
  if (clean === "." || clean === "" || clean === "./") return root
  if (path.posix.isAbsolute(clean) || clean.split("/").includes("..")) return undefined
  return path.join(root, clean)
}

/** Extracts into `root` (created). */
export const make = (root: string): Untar => {
  fs.mkdirSync(root, { recursive: true })
  let buffered = Buffer.alloc(0)
  // The entry whose data is being read: where it goes (`fd`), or kept in memory (`meta`: a long name, pax).
  let remaining = 0
  let padding = 0
  let fd: number | undefined
  let meta: Array<Buffer> | undefined
  let metaKind = ""
  let longName: string | undefined
  let files = 0
  let skipped = 0
  const finishData = () => {
    if (fd !== undefined) fs.closeSync(fd)
    fd = undefined
    if (meta !== undefined) {
      const data = Buffer.concat(meta)
      if (metaKind === "L") longName = text(data)
      else {
        const match = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString("utf8"))
        if (match !== null) longName = match[1]
      }
    }
    meta = undefined
  }
  const header = (block: Buffer) => {
    if (block.every((b) => b === 0)) return
    const size = octal(block.subarray(124, 136))
    const type = String.fromCharCode(block[156]!)
    const magic = block.subarray(257, 262).toString("latin1")
    const prefix = magic === "ustar" ? text(block.subarray(345, 500)) : ""
    const own = text(block.subarray(0, 100))
    const name = longName ?? (prefix === "" ? own : `${prefix}/${own}`)
    const mode = octal(block.subarray(100, 108)) & 0o777
    remaining = size
    padding = (512 - (size % 512)) % 512
    if (type === "L" || type === "x") {
      meta = []
      metaKind = type
      return
    }
    longName = undefined
    const target = inside(root, name)
    if (target === undefined) {
      skipped += 1
      return
    }
    if (type === "5") {
      fs.mkdirSync(target, { recursive: true })
    } else if (type === "0" || type === "\0" || type === "7") {
      fs.mkdirSync(path.dirname(target), { recursive: true })
      fs.rmSync(target, { force: true })
      fd = fs.openSync(target, "w", mode | 0o600)
      files += 1
    } else if (type !== "g") {
      skipped += 1
    }
  }
  const push = (chunk: Uint8Array) => {
    buffered = buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([buffered, chunk])
    let offset = 0
    while (true) {
      if (remaining > 0) {
        const take = Math.min(remaining, buffered.length - offset)
        if (take === 0) break
        const part = buffered.subarray(offset, offset + take)
        if (fd !== undefined) fs.writeSync(fd, part)
        else if (meta !== undefined) meta.push(Buffer.from(part))
        remaining -= take
        offset += take
        if (remaining > 0) break
        finishData()
        continue
      }
      if (padding > 0) {
        const take = Math.min(padding, buffered.length - offset)
        padding -= take
        offset += take
        if (padding > 0) break
        continue
      }
      if (buffered.length - offset < 512) break
      finishData()
      header(buffered.subarray(offset, offset + 512))
      offset += 512
      if (remaining === 0 && padding === 0) finishData()
    }
    buffered = buffered.subarray(offset)
  }
  return {
    push,
    end: () => {
      finishData()
      return { files, skipped }
    }
  }
}
