/**
 * How the user's scenario modules (`$TEZT_CLOUD_SCENARIOS`) find the tool's packages: a module anywhere on disk, in
 * a repository of its own, imports `@tezt-cloud/*`, `effect` and `@effect/*` from this installation, whatever is
 * (or is not) installed beside it. One copy of each, the CLI's own: the `Cloud` a scenario asks for is the one the
 * run provides, and its effects run on the same `effect`.
 *
 * **Details**
 *
 * A synchronous resolution hook of Node's (`module.registerHooks`), registered before the first scenario module is
 * imported: an import of one of those packages from a file outside this installation resolves as if this file
 * imported it. Any other import (the scenario's own dependencies, relative files) resolves as usual, and so does
 * every import from inside the installation.
 */
import * as module from "node:module"
import * as path from "node:path"
import * as url from "node:url"

/** The installation's root directory: its packages and `node_modules` are under it. */
export const toolRoot = path.resolve(import.meta.dirname, "..", "..", "..")

/** The bare specifiers that resolve from the installation: its packages, `effect` and `@effect/*`, with subpaths. */
export const shared = /^(?:effect|@effect\/[^/]+|@tezt-cloud\/[^/]+)(?:\/.*)?$/

/** Whether the module at `parentURL` is part of the installation (its own imports resolve as usual). */
const insideTool = (parentURL: string) =>
  parentURL.startsWith("file:") && url.fileURLToPath(parentURL).startsWith(toolRoot + path.sep)

/**
 * Makes `shared` specifiers imported from outside the installation resolve from it. A package the installation
 * does not have (an `@effect/*` of the user's own) resolves as usual.
 */
export const register = (): void => {
  module.registerHooks({
    resolve: (specifier, context, nextResolve) => {
      if (!shared.test(specifier) || context.parentURL === undefined || insideTool(context.parentURL)) {
        return nextResolve(specifier, context)
      }
      try {
        return nextResolve(specifier, { ...context, parentURL: import.meta.url })
      } catch {
        return nextResolve(specifier, context)
      }
    }
  })
}
