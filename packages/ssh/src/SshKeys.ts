/**
 * The namespace's ssh key: `~/.ssh/<ns>-tf` (ed25519, mode 0600, with its `.pub`), generated on first use, or the
 * user's own `--ssh-private-key`. The private key is read into memory and never logged or put on a command line.
 * A generated key is written whole (a temporary file, flushed, then linked into place), so a crash never leaves
 * a truncated key, and two runs generating it at once end with the same one.
 */
import { AtomicFile, CloudError } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import ssh2 from "ssh2"

export interface Key {
  readonly path: string
  readonly privateKey: string
  /** `ssh-ed25519 AAAA… comment`, for `authorized_keys`. */
  readonly publicKey: string
}

/** Where the namespace's generated key lives. */
export const defaultPath = (namespace: string, home: string = os.homedir()) =>
  path.join(home, ".ssh", `${namespace}-tf`)

/**
 * The key to use: `privateKeyPath` when given (its public half is derived), else the namespace's key, generated
 * when missing.
 */
export const ensure = Effect.fn("SshKeys.ensure")(function*(namespace: string, privateKeyPath?: string, home?: string) {
  const file = privateKeyPath ?? defaultPath(namespace, home)
  return yield* Effect.try({
    try: (): Key => {
      if (privateKeyPath === undefined && !fs.existsSync(file)) {
        // ssh2 writes a malformed ed25519 key when the public half starts with a zero byte (about 1 in 256):
        // generate again until the key parses.
        let pair = ssh2.utils.generateKeyPairSync("ed25519", { comment: `tezt-cloud ${namespace}` })
        for (let i = 0; i < 16 && ssh2.utils.parseKey(pair.private) instanceof Error; i++) {
          pair = ssh2.utils.generateKeyPairSync("ed25519", { comment: `tezt-cloud ${namespace}` })
        }
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
        // Whole or not at all, and never over a key another process has just made (and maybe installed).
        if (AtomicFile.createAtomic(file, pair.private, 0o600)) {
          AtomicFile.writeAtomic(`${file}.pub`, pair.public + "\n", 0o644)
        }
      }
      const privateKey = fs.readFileSync(file, "utf8")
      const parsed = ssh2.utils.parseKey(privateKey)
      if (parsed instanceof Error) throw new Error(`not a private key we can use: ${parsed.message}`)
      const key = Array.isArray(parsed) ? parsed[0] : parsed
      const publicKey = `${key.type} ${key.getPublicSSH().toString("base64")} tezt-cloud ${namespace}`
      return { path: file, privateKey, publicKey }
    },
    catch: (e) =>
      CloudError.config(
        privateKeyPath === undefined ? "--tezt-cloud" : "--ssh-private-key",
        `${file}: ${CloudError.messageOf(e)}`,
        { cause: e }
      )
  })
})
