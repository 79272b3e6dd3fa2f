/**
 * What the CLI checks of the user's input around `CloudConfig.resolve`, so that bad input is one short line naming
 * the option and the fix, before anything is created: the size of every value (on the command line, in the config
 * file, in the environment variables the configuration reads), the config file itself (a regular file of bounded
 * size, its keys of bounded length), and the `--ssh-private-key` file (a private file of the user's).
 *
 * **Details**
 *
 * A refused value is never quoted back, only its size: it may be a secret, or a megabyte.
 */
import { CloudConfig, CloudError } from "@tezt-cloud/core"
import { Effect, Option } from "effect"
import * as fs from "node:fs"

/** The longest value of an option, in bytes: Linux's longest path, and far more than a name, URL or token needs. */
export const maxValueBytes = 4096

/** The largest config file, in bytes. */
export const maxConfigFileBytes = 1024 * 1024

/** The longest key of a config file, in bytes (keys are option names). */
const maxKeyBytes = 256

/** The largest private key file, in bytes (an RSA key of 16384 bits is about 12 KiB). */
const maxKeyFileBytes = 64 * 1024

/** The environment variables `CloudConfig.resolve` reads. */
export const environmentNames = [
  "TEZT_CLOUD",
  "TEZT_CLOUD_AUTH_USERNAME",
  "TEZT_CLOUD_AUTH_PASSWORD",
  "TEZTCLOUD_SLACK_BOT_TOKEN",
  "TEZT_CLOUD_GRAFANA_TOKEN",
  "USER"
] as const satisfies ReadonlyArray<keyof CloudConfig.Environment>

const bytes = (text: string) => Buffer.byteLength(text, "utf8")

/** The size of the first string of `value` (a string or a list of them) that is too long. */
const oversized = (value: unknown): number | undefined => {
  const texts = typeof value === "string" ? [value] : Array.isArray(value) ? value : []
  for (const text of texts) {
    if (typeof text === "string" && bytes(text) > maxValueBytes) return bytes(text)
  }
  return undefined
}

const tooLong = (option: string, size: number) =>
  CloudError.config(option, `the value is ${size} bytes long: give one of at most ${maxValueBytes} bytes`)

/** Refuses a command-line value longer than `maxValueBytes`, naming its flag. */
export const flags = (parsed: Readonly<Record<string, Option.Option<unknown>>>) =>
  Effect.forEach(CloudConfig.options, (spec) => {
    const size = oversized(Option.getOrUndefined(parsed[spec.flag] ?? Option.none()))
    return size === undefined ? Effect.void : Effect.fail(tooLong(`--${spec.flag}`, size))
  }, { discard: true })

/** Refuses a variable the configuration reads that is longer than `maxValueBytes`, naming it. */
export const environment = (env: CloudConfig.Environment) =>
  Effect.forEach(environmentNames, (name) => {
    const size = oversized(env[name])
    return size === undefined ? Effect.void : Effect.fail(tooLong(`$${name}`, size))
  }, { discard: true })

/**
 * The options of `--config-file FILE`: a regular file of at most `maxConfigFileBytes`, whose keys and values are
 * of bounded length, then `CloudConfig.decodeFile`.
 */
export const configFile = (file: string) =>
  Effect.gen(function*() {
    const option = "--config-file"
    // A device or a FIFO could be read forever (or block on open): only a regular file is opened.
    const stat = yield* Effect.try({
      try: () => fs.statSync(file),
      catch: (e) => CloudError.config(option, `cannot read ${file}: ${CloudError.messageOf(e)}`, { cause: e })
    })
    if (!stat.isFile()) {
      return yield* CloudError.config(option, `${file} is not a regular file: give a JSON file of options`)
    }
    if (stat.size > maxConfigFileBytes) {
      return yield* CloudError.config(
        option,
        `${file} is ${stat.size} bytes long: a config file holds options, at most ${maxConfigFileBytes} bytes`
      )
    }
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (e) => CloudError.config(option, `cannot read ${file}: ${CloudError.messageOf(e)}`, { cause: e })
    })
    yield* fileEntries(file, text)
    return yield* CloudConfig.decodeFile(file, text)
  })

/** Refuses a key or a value of the config file's object that is too long (other faults are `decodeFile`'s). */
const fileEntries = (file: string, text: string) =>
  Effect.gen(function*() {
    const json = yield* Effect.try(() => JSON.parse(text) as unknown).pipe(Effect.orElseSucceed(() => undefined))
    if (typeof json !== "object" || json === null || Array.isArray(json)) return
    for (const [key, value] of Object.entries(json)) {
      if (bytes(key) > maxKeyBytes) {
        return yield* CloudError.config(
          `${file}: a key of ${bytes(key)} bytes`,
          "keys are the snake_case names of the CLI options"
        )
      }
      // `scenario_specific` is the scenario's own JSON: the file's size bounds it.
      const size = key === "scenario_specific" ? undefined : oversized(value)
      if (size !== undefined) return yield* tooLong(`${file}: key "${key}"`, size)
    }
  })

/**
 * Refuses a `--ssh-private-key` that ssh would not use, before anything is created: missing, not a regular file,
 * unreadable, too big to be a key, or readable by other users (ssh's "UNPROTECTED PRIVATE KEY FILE").
 */
export const privateKey = (file: string) =>
  Effect.gen(function*() {
    const option = "--ssh-private-key"
    const stat = yield* Effect.try({
      try: () => fs.statSync(file),
      catch: (e) =>
        CloudError.config(option, `cannot read ${file}: ${CloudError.messageOf(e)}: give a private key file`, {
          cause: e
        })
    })
    if (!stat.isFile() || stat.size > maxKeyFileBytes) {
      return yield* CloudError.config(option, `${file} is not a private key file: give the path of one`)
    }
    const mode = stat.mode & 0o777
    if ((mode & 0o077) !== 0) {
      return yield* CloudError.config(
        option,
        `${file} can be read by other users (mode ${mode.toString(8).padStart(4, "0")}): chmod 600 ${file}`
      )
    }
    yield* Effect.try({
      try: () => fs.accessSync(file, fs.constants.R_OK),
      catch: (e) =>
        CloudError.config(
          option,
          `cannot read ${file}: ${CloudError.messageOf(e)}: it must be a file of yours, mode 0600`,
          { cause: e }
        )
    })
  })
