/**
 * Files that are never seen half-written: `writeAtomic` writes a temporary file beside the target (same
 * directory, so the same file system), flushes it to disk, and renames it over the target. A reader, or a run
 * that starts after a crash, finds the old content or the new one, whole. The state the tool keeps across
 * processes (the live run's record, the namespace's ssh key) is written this way.
 *
 * **Details**
 *
 * - The temporary file is created with `mode` (and set to it, whatever the umask), so a secret is never readable
 *   by others, not even for a moment; the target ends with `mode` even when it existed with another one.
 * - After the rename the directory is flushed too, so the new name survives a power cut.
 * - A failed write leaves the target as it was and removes the temporary file.
 * - `createAtomic` creates a file only if it does not exist yet (a hard link of the temporary file, which never
 *   replaces a name): of two processes generating the same key at once, both end with the one that won.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

/** Flushes a directory's entries (a created, renamed or removed name) to disk. */
export const syncDirectory = (dir: string): void => {
  const fd = fs.openSync(dir, "r")
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Writes `content` to a new temporary file beside `file`, flushed, with `mode`; then `publish`es it. */
const viaTemporary = <A>(
  file: string,
  content: string | Uint8Array,
  mode: number,
  publish: (temporary: string) => A
): A => {
  const dir = path.dirname(file)
  const temporary = path.join(dir, `.${path.basename(file)}.${process.pid}-${crypto.randomBytes(4).toString("hex")}`)
  const fd = fs.openSync(temporary, "wx", mode)
  let published: A
  try {
    try {
      fs.fchmodSync(fd, mode)
      fs.writeFileSync(fd, content)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    published = publish(temporary)
  } finally {
    fs.rmSync(temporary, { force: true })
  }
  syncDirectory(dir)
  return published
}

/** Replaces `file` with `content`, atomically and durably, with permissions `mode` (default 0600). */
export const writeAtomic = (file: string, content: string | Uint8Array, mode: number = 0o600): void =>
  viaTemporary(file, content, mode, (temporary) => fs.renameSync(temporary, file))

/**
 * Creates `file` with `content` and `mode`, whole and durably, unless it exists: `false` then, and the file is
 * left as it is. Of processes creating the same file at once, exactly one wins; the others see its content.
 */
export const createAtomic = (file: string, content: string | Uint8Array, mode: number = 0o600): boolean =>
  viaTemporary(file, content, mode, (temporary) => {
    try {
      // A hard link, unlike a rename, never replaces an existing name.
      fs.linkSync(temporary, file)
      return true
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false
      throw e
    }
  })
