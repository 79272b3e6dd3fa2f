/**
 * Finding the Debian binaries the monitoring parts run on this machine (`prometheus`), before starting them, so
 * a missing one is a clear error naming the package instead of a spawn failure.
 */
import { CloudError } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** The absolute path of `binary` on `PATH` (plus the sbin directories Debian uses), or `undefined`. */
export const which = (binary: string): string | undefined => {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/local/sbin", "/usr/sbin", "/sbin"]
  for (const dir of dirs.filter((d) => d !== "")) {
    const file = path.join(dir, binary)
    try {
      fs.accessSync(file, fs.constants.X_OK)
      return file
    } catch {
      // not in this directory
    }
  }
  return undefined
}

/** The path of `binary`, or a `ServiceFailed` saying which Debian package to install and how to do without. */
export const require = (
  service: string,
  binary: string,
  hint: string
): Effect.Effect<string, CloudError.CloudError> => {
  const found = which(binary)
  return found === undefined
    ? Effect.fail(CloudError.service(service, `${binary} is not installed on this machine: ${hint}`))
    : Effect.succeed(found)
}
