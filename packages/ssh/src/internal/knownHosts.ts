/**
 * Looking a host's key up in OpenSSH `known_hosts` files: plain and hashed (`|1|salt|hash`) host names,
 * `[host]:port` entries, comma-separated names, `*`/`?` patterns and `!` negations, `@revoked` lines
 * (`@cert-authority` lines are skipped: certificates are not used here).
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"

export type Lookup =
  | { readonly _tag: "Known" }
  | { readonly _tag: "Unknown" }
  /** The files know another key of the same type for this host (or revoked this one): `where` is `file:line`. */
  | { readonly _tag: "Changed"; readonly where: string; readonly revoked: boolean }

/** The key type a public key blob starts with (`ssh-ed25519`…). */
export const keyType = (blob: Buffer) => {
  if (blob.length < 4) return ""
  const length = blob.readUInt32BE(0)
  return blob.subarray(4, 4 + length).toString("latin1")
}

/** How OpenSSH names a host in known_hosts: `host`, or `[host]:port` off port 22. */
export const hostId = (host: string, port: number) => port === 22 ? host : `[${host}]:${port}`

const glob = (pattern: string, name: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "i")
    .test(name)

const hashed = (entry: string, name: string) => {
  const [, magic, salt, hash] = entry.split("|")
  if (magic !== "1" || salt === undefined || hash === undefined) return false
  const mac = crypto.createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64")
  return mac === hash
}

/** Whether a line's host field names `name`. */
const matches = (field: string, name: string) => {
  if (field.startsWith("|")) return hashed(field, name)
  let found = false
  for (const pattern of field.split(",")) {
    if (pattern.startsWith("!")) {
      if (glob(pattern.slice(1), name)) return false
    } else if (glob(pattern, name)) found = true
  }
  return found
}

/** What `files` say of `blob` as the key of `host:port`. */
export const lookup = (files: ReadonlyArray<string>, host: string, port: number, blob: Buffer): Lookup => {
  const name = hostId(host, port)
  const presented = blob.toString("base64")
  const type = keyType(blob)
  let changed: Lookup | undefined
  for (const file of files) {
    let text: string
    try {
      text = fs.readFileSync(file, "utf8")
    } catch {
      continue
    }
    const lines = text.split("\n")
    for (const [i, raw] of lines.entries()) {
      const fields = raw.trim().split(/\s+/)
      if (fields[0] === undefined || fields[0] === "" || fields[0].startsWith("#")) continue
      const marker = fields[0].startsWith("@") ? fields.shift() : undefined
      const [hosts, lineType, key] = fields
      if (hosts === undefined || key === undefined || marker === "@cert-authority" || !matches(hosts, name)) continue
      if (marker === "@revoked") {
        if (key === presented) return { _tag: "Changed", where: `${file}:${i + 1}`, revoked: true }
        continue
      }
      if (key === presented) return { _tag: "Known" }
      if (lineType === type) changed ??= { _tag: "Changed", where: `${file}:${i + 1}`, revoked: false }
    }
  }
  return changed ?? { _tag: "Unknown" }
}
